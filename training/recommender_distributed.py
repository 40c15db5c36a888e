"""The recommender's interaction matrices and evaluation splits on a Dask cluster (``compute.engine: dask``).

A customer's events all live in one customer-hash partition (:mod:`compute.partitions`), so the
local split functions (:func:`training.interactions.last_order_split`, the time cut-off of
:func:`training.interactions.time_split`) and :func:`training.interactions.build_interactions` run
per partition and give exactly that partition's customers' rows. The driver receives the CSR
non-zeros, the rebuy gaps and the held-out (customer, item) pairs, never the events; it stacks the
rows in the local row order, applies BM25 / TF-IDF (a whole-matrix step) and pools the gaps.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tenure.training.interactions import (
    WEIGHTINGS,
    InteractionMatrix,
    _validate_weights,
    build_interactions,
    consenting_customers,
    day_numbers,
    last_order_split,
)

if TYPE_CHECKING:
    from distributed import Client

    from tenure.settings import Settings

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ["event_type", "item_id"]
"""Event columns the recommender reads (with ``customer_id`` and ``event_at``)."""

Rule = tuple
"""How a partition's events are split: ``("all",)``; ``("time", cutoff, end)`` (history before ``cutoff``,
held out ``cutoff <= event_at <= end``: :func:`training.interactions.time_split`'s masks); ``("last_order",
hours, depth)`` (:func:`training.interactions.last_order_split` applied ``depth`` times: 1 = each customer's
last order held out, 2 = the order before it, on the history of the first)."""
ALL: Rule = ("all",)


@dataclasses.dataclass
class EventPartitions:
    """The events and customers of one run, bucketed by customer and held on the workers.

    ``events`` and ``customers``: aligned lists of per-partition delayed frames (persisted);
    ``collections``: the persisted Dask frames (kept so the workers keep the data until released).
    """

    events: list[Any]
    customers: list[Any]
    collections: tuple[Any, ...] = ()

    def release(self) -> None:
        """Let the workers drop the partitions."""
        self.events, self.customers, self.collections = [], [], ()


@dataclasses.dataclass
class ClusterSplit:
    """One split built on the cluster: the history's matrix and what was held out.

    ``held_out``: one row per held-out (customer, item) pair of a target event type (``customer_id``,
    ``item_id``, ``event_type``), what :func:`training.interactions.holdout_targets` reads;
    ``order_at``: for last-order rules, customer -> the time of their last purchase (held-out customers only);
    ``n_history`` and ``n_held_out``: events (any type) on either side, as the local split returns them.
    """

    train: InteractionMatrix
    held_out: pd.DataFrame
    order_at: pd.Series | None = None
    n_history: int = 0
    n_held_out: int = 0


@dataclasses.dataclass
class EventStats:
    """Whole-table figures of the events, summed over partitions: first and last event time, events, and the
    purchase lines and (customer, item) pairs of :func:`training.interactions.repeat_purchase_share`."""

    first: pd.Timestamp | None
    last: pd.Timestamp | None
    n_events: int
    purchase_lines: int
    purchase_pairs: int

    @property
    def repeat_share(self) -> float:
        """Share of purchases that are repeats (0.0 without purchases), as ``repeat_purchase_share``."""
        if not self.purchase_lines:
            return 0.0
        return float((self.purchase_lines - self.purchase_pairs) / self.purchase_lines)


# --- reading ------------------------------------------------------------------------------------

def _without(events: pd.DataFrame, withdrawn: frozenset[str]) -> pd.DataFrame:
    """A partition's events in time order (stable), less the customers who withdrew personalisation."""
    events = events.reset_index(drop=True)
    if withdrawn:
        events = events[~events["customer_id"].astype(str).isin(withdrawn)]
    return events.sort_values("event_at", kind="stable").reset_index(drop=True)


def event_partitions(settings: Settings, client: Client, withdrawn: Iterable[str] = ()) -> EventPartitions:
    """Read the events (one task per file) and customers, bucket them by customer and persist them on the workers.

    ``withdrawn``: customers left out entirely (the local ``load_data`` drops their events too).
    """
    import dask

    from tenure.compute.partitions import read_customers_partitioned, read_events_partitioned

    n = settings.compute.partitions
    gone = frozenset(str(c) for c in withdrawn)
    events = read_events_partitioned(settings, n, EVENT_COLUMNS)
    events = events.map_partitions(_without, gone, meta=events._meta.reset_index(drop=True))
    customers = read_customers_partitioned(settings, n)
    events, customers = dask.persist(events, customers)
    return EventPartitions(events.to_delayed(), customers.to_delayed(), (events, customers))


def _stats_part(events: pd.DataFrame, purchase_event_types: tuple[str, ...]) -> tuple:
    at = events["event_at"]
    buys = events[events["event_type"].isin(list(purchase_event_types)) & events["item_id"].notna()]
    lines = buys[["customer_id", "item_id", "event_at"]].drop_duplicates()
    pairs = lines[["customer_id", "item_id"]].drop_duplicates()
    return (at.min() if len(at) else None, at.max() if len(at) else None, len(events), len(lines), len(pairs))


def event_stats(client: Client, parts: EventPartitions, purchase_event_types: Sequence[str]) -> EventStats:
    """:class:`EventStats` of the partitions (one small tuple per partition reaches the driver)."""
    import dask

    got = client.gather(client.compute([dask.delayed(_stats_part)(e, tuple(purchase_event_types))
                                        for e in parts.events]))
    firsts = [g[0] for g in got if g[0] is not None]
    lasts = [g[1] for g in got if g[1] is not None]
    return EventStats(first=min(firsts) if firsts else None, last=max(lasts) if lasts else None,
                      n_events=sum(g[2] for g in got), purchase_lines=sum(g[3] for g in got),
                      purchase_pairs=sum(g[4] for g in got))


def _latest_before_part(events: pd.DataFrame, cutoff: pd.Timestamp):
    at = events["event_at"][events["event_at"] < cutoff]
    return at.max() if len(at) else None


def latest_before(client: Client, parts: EventPartitions, cutoff: pd.Timestamp) -> pd.Timestamp | None:
    """The latest event time strictly before ``cutoff`` (the end of a time split's training part)."""
    import dask

    got = [t for t in client.gather(client.compute([dask.delayed(_latest_before_part)(e, cutoff)
                                                    for e in parts.events])) if t is not None]
    return max(got) if got else None


# --- one partition ------------------------------------------------------------------------------

def split_events(events: pd.DataFrame, rule: Rule, purchase_event_types: Sequence[str]
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series | None]:
    """(history, held_out, order_at) of one partition's events under ``rule`` (see :data:`Rule`)."""
    kind = rule[0]
    if kind == "all":
        return events, events.iloc[:0], None
    if kind == "time":
        _, cutoff, end = rule
        at = pd.to_datetime(events["event_at"], utc=True)
        before = (at < cutoff).to_numpy()
        return events[before], events[~before & (at <= end).to_numpy()], None
    if kind != "last_order":
        raise ValueError(f"unknown split rule {rule!r}")
    _, hours, depth = rule
    history, held, order_at = events, events.iloc[:0], pd.Series(dtype="datetime64[ns, UTC]")
    for _ in range(int(depth)):
        if history.empty:  # last_order_split refuses no events; an empty partition holds nothing out
            return history, events.iloc[:0], pd.Series(dtype="datetime64[ns, UTC]")
        history, held, order_at = last_order_split(history, purchase_event_types, hours)
    return history, held, order_at


def _kept_events(events, customers, event_weights, purchase_event_types, consent: bool):
    """A partition's item events of the counted types, of consenting customers (build_interactions' filter)."""
    events = events.reset_index(drop=True)
    keep = events["item_id"].notna().to_numpy() & np.isin(
        events["event_type"].to_numpy(), list(set(event_weights) | set(purchase_event_types) | {"return"}))
    ev = events.loc[keep, ["customer_id", "item_id", "event_type", "event_at"]]
    allowed = consenting_customers(customers.reset_index(drop=True)) if consent else None
    if allowed is not None:
        ev = ev[ev["customer_id"].astype(str).isin(allowed)]
    return ev


def _history(events, customers, rule, event_weights, purchase_event_types, consent: bool):
    history, held, order_at = split_events(events.reset_index(drop=True), rule, purchase_event_types)
    kept = _kept_events(history, customers, event_weights, purchase_event_types, consent)
    return kept, held, order_at, len(history)


def _scan_part(events, customers, rule, event_weights, purchase_event_types, consent: bool):
    """Pass 1 of a partition: the items its kept history names, and their latest time."""
    ev, *_ = _history(events, customers, rule, event_weights, purchase_event_types, consent)
    return set(ev["item_id"].astype(str).unique().tolist()), (ev["event_at"].max() if len(ev) else None)


def _build_part(events, customers, rule, event_weights, half_life_days, as_of, purchase_event_types,
                target_event_types, item_ids, consent: bool):
    """Pass 2 of a partition: its customers' rows of the history's matrices (the local function), the rebuy gaps
    (item column, days) the item-level timing pools over every customer, the held-out target pairs and, for
    last-order rules, the time of each held-out customer's last order."""
    ev, held, order_at, n_history = _history(events, customers, rule, event_weights, purchase_event_types, consent)
    ev = ev.sort_values("event_at", kind="stable").reset_index(drop=True)
    matrix = build_interactions(ev, None, None, event_weights=event_weights, half_life_days=half_life_days, as_of=as_of,
                                weighting="none", purchase_event_types=purchase_event_types, item_ids=item_ids,
                                verbose=False)
    # the gaps between one pair's distinct purchase times (training.interactions.repurchase_timing's rule)
    buys = ev[ev["event_type"].isin(list(purchase_event_types))]
    cols = pd.Index(item_ids).get_indexer(buys["item_id"].astype(str))
    frame = pd.DataFrame({"r": buys["customer_id"].astype(str).to_numpy(), "c": cols,
                          "d": day_numbers(pd.to_datetime(buys["event_at"], utc=True)) if len(buys) else []})
    frame = frame[frame["c"] >= 0].drop_duplicates().sort_values(["r", "c", "d"], kind="stable")
    same = (frame["r"].to_numpy()[1:] == frame["r"].to_numpy()[:-1]) & (frame["c"].to_numpy()[1:] == frame["c"].to_numpy()[:-1])
    gaps = pd.DataFrame({"c": frame["c"].to_numpy()[1:][same], "gap": np.diff(frame["d"].to_numpy())[same]})
    targets = held[held["event_type"].isin(list(target_event_types)) & held["item_id"].notna()]
    pairs = targets[["customer_id", "item_id", "event_type"]].drop_duplicates(["customer_id", "item_id"])
    if order_at is not None:
        order_at = order_at[order_at.index.astype(str).isin(set(pairs["customer_id"].astype(str)))]
    return matrix, gaps, pairs.reset_index(drop=True), order_at, (n_history, len(held))


# --- the driver ---------------------------------------------------------------------------------

def split_on_cluster(client: Client, parts: EventPartitions, rule: Rule = ALL, *, event_weights,
                     half_life_days: float | None = None, as_of=None, weighting: str = "none",
                     purchase_event_types: Sequence[str] = ("purchase",),
                     target_event_types: Sequence[str] = ("purchase",), item_ids=None,
                     catalogue: Sequence[str] = (), consent: bool = True) -> ClusterSplit:
    """The history of ``rule`` as :func:`training.interactions.build_interactions` builds it, and what it holds out.

    Parameters are those of ``build_interactions``; ``catalogue``: the items table's ids (each gets a column
    when ``item_ids`` is None, as the local ``items`` argument); ``consent``: keep only customers whose stored
    ``consent_personalization`` is True.

    Returns
    -------
    ClusterSplit, whose matrix equals the local one on the same history.
    """
    import dask
    import scipy.sparse as sp

    from tenure.registry.recommender_runtime import RepurchaseTiming

    _validate_weights(event_weights)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    weights, buys, targets = dict(event_weights), tuple(purchase_event_types), tuple(target_event_types)
    pairs = list(zip(parts.events, parts.customers, strict=True))
    columns, ref = item_ids, as_of
    if columns is None or (half_life_days is not None and ref is None):
        scans = client.gather(client.compute([dask.delayed(_scan_part)(e, c, rule, weights, buys, consent)
                                              for e, c in pairs]))
        if columns is None:  # the items table + items named by kept events, sorted (the local rule)
            columns = sorted(set().union(*[s[0] for s in scans]) | {str(i) for i in catalogue})
        if ref is None:
            stamps = [s[1] for s in scans if s[1] is not None]
            ref = max(stamps) if stamps else None
    columns = list(np.asarray(columns, dtype=object).astype(str))
    futures = client.compute([dask.delayed(_build_part)(e, c, rule, weights, half_life_days, ref, buys, targets,
                                                        columns, consent) for e, c in pairs])
    built = client.gather(futures)  # each: the non-zeros of its customers' rows, gaps, held-out pairs
    ids = (np.concatenate([np.asarray(m.customer_ids, dtype=str) for m, *_ in built]) if built
           else np.array([], str))
    order = np.argsort(ids, kind="stable")
    n_cols = len(columns)

    def stack(get) -> sp.csr_matrix:
        blocks = [get(m) for m, *_ in built]
        return sp.vstack(blocks, format="csr")[order] if blocks else sp.csr_matrix((0, n_cols))

    user_items = stack(lambda m: m.user_items).astype(np.float32)
    purchases = stack(lambda m: m.purchases).astype(np.float32)
    if weighting != "none" and user_items.nnz:  # as build_interactions: items as documents, over every customer
        from implicit.nearest_neighbours import bm25_weight, tfidf_weight

        item_users = user_items.T.tocsr()
        weighted = bm25_weight(item_users, K1=100, B=0.8) if weighting == "bm25" else tfidf_weight(item_users)
        user_items = sp.csr_matrix(weighted.T, dtype=np.float32)
        user_items.data = np.clip(user_items.data, 0, None)
        user_items.eliminate_zeros()
    last_bought = stack(lambda m: m.timing.last_bought)
    pair_interval = stack(lambda m: m.timing.pair_interval)
    gaps = pd.concat([g for _, g, *_ in built], ignore_index=True) if built else pd.DataFrame({"c": [], "gap": []})
    item_interval = np.full(n_cols, np.nan)
    by_item = gaps.groupby("c")["gap"].median()
    item_interval[by_item.index.to_numpy(dtype=np.int64)] = by_item.to_numpy()
    buyers = np.bincount(last_bought.indices, minlength=n_cols).astype(np.float64)
    repeaters = np.bincount(pair_interval.indices, minlength=n_cols).astype(np.float64)
    stamps = [m.timing.as_of_days for m, *_ in built if m.timing.last_bought.nnz]
    timing = RepurchaseTiming(
        last_bought=last_bought, pair_interval=pair_interval, item_interval=item_interval,
        item_repeat_rate=np.divide(repeaters, buyers, out=np.zeros(n_cols), where=buyers > 0),
        recency_scale_days=max(float(np.median(gaps["gap"])) if len(gaps) else 7.0, 1e-3),
        as_of_days=max(stamps) if stamps else 0.0)
    matrix = InteractionMatrix(user_items=user_items.tocsr(), purchases=purchases.tocsr(), customer_ids=ids[order],
                               item_ids=np.asarray(columns, dtype=str), timing=timing)
    held = [b[2] for b in built]
    held_out = (pd.concat(held, ignore_index=True) if held else
                pd.DataFrame({"customer_id": [], "item_id": [], "event_type": []}))
    stamps_at = [b[3] for b in built if b[3] is not None]
    order_at = pd.concat(stamps_at) if stamps_at else None
    logger.info("split %s on the cluster: %d customers x %d items, %d non-zero, %d held-out pairs, from %d partitions",
                rule[0], matrix.shape[0], n_cols, matrix.nnz, len(held_out), len(built))
    return ClusterSplit(train=matrix, held_out=held_out, order_at=order_at,
                        n_history=sum(b[4][0] for b in built), n_held_out=sum(b[4][1] for b in built))
