"""Customer x item confidence matrix for the recommender, built from canonical events.

How an event becomes confidence (see docs/recommender.md):

* only events with an ``item_id`` and an ``event_type`` listed in ``event_weights`` count;
  every such event adds its type's weight once (``quantity`` is not multiplied in, so one
  large order does not drown a customer's other signals);
* optional time decay: each event's weight is multiplied by ``0.5 ** (age_days / half_life)``,
  age measured from ``as_of`` (default: the latest event);
* weights of one customer-item pair are summed; a negative weight (``return``) subtracts
  and the sum is clipped at 0, so a bought-then-returned item ends at 0 and leaves the matrix;
* optional BM25 / TF-IDF re-weighting (implicit's ``bm25_weight`` / ``tfidf_weight``,
  applied with items as documents, as in implicit's own examples);
* customers whose ``consent_personalization`` is not True (False, or unknown because they are
  missing from the customers table) are left out entirely.

Beside the confidence matrix a purchase-count matrix is kept (same rows and columns):
it drives "exclude purchased" and the buy-again / blend modes; and the repurchase timing
(:class:`registry.recommender_runtime.RepurchaseTiming`: when each customer last bought each
item, and how regularly items are rebought), which the learned blend reads.

Also here: the share of purchases that are repeats (what ``exclude_purchased: auto`` is decided
from) and the next-basket split (each customer's last order held out).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tenure.registry.recommender_runtime import DAY_SECONDS, RepurchaseTiming

logger = logging.getLogger(__name__)

PURCHASE_EVENT_TYPES: tuple[str, ...] = ("purchase",)
WEIGHTINGS: tuple[str, ...] = ("none", "bm25", "tfidf")


@dataclasses.dataclass
class InteractionMatrix:
    """Confidence and purchase matrices with their id mappings.

    Attributes
    ----------
    user_items:
        CSR matrix, customers x items, float32 confidence (>= 0, explicit zeros removed).
    purchases:
        CSR matrix, customers x items, float32 number of purchases (net of returns, >= 0).
    timing:
        When each customer last bought each item and how regularly items are rebought
        (:func:`repurchase_timing`), same rows and columns.
    customer_ids, item_ids:
        Arrays of str: row ``u`` of both matrices is ``customer_ids[u]``, column ``i`` is
        ``item_ids[i]``.
    """

    user_items: sp.csr_matrix
    purchases: sp.csr_matrix
    customer_ids: np.ndarray
    item_ids: np.ndarray
    timing: RepurchaseTiming | None = None

    @property
    def customer_index(self) -> dict[str, int]:
        """customer_id -> row."""
        return {c: i for i, c in enumerate(self.customer_ids.tolist())}

    @property
    def item_index(self) -> dict[str, int]:
        """item_id -> column."""
        return {c: i for i, c in enumerate(self.item_ids.tolist())}

    @property
    def shape(self) -> tuple[int, int]:
        return self.user_items.shape

    @property
    def nnz(self) -> int:
        return int(self.user_items.nnz)


def consenting_customers(customers: pd.DataFrame | None) -> set[str] | None:
    """Ids of customers whose ``consent_personalization`` is True; None when no table is given."""
    if customers is None:
        return None
    if "customer_id" not in customers.columns:
        raise ValueError("customers table needs a 'customer_id' column")
    if "consent_personalization" not in customers.columns:
        raise ValueError(
            "customers table needs a 'consent_personalization' column to decide who may be "
            "personalised; add it (bool) to the customers file"
        )
    consent = customers["consent_personalization"].fillna(False).astype(bool).to_numpy()
    return set(customers["customer_id"].astype(str).to_numpy()[consent].tolist())


def _validate_weights(event_weights: Mapping[str, float]) -> None:
    if not event_weights:
        raise ValueError("event_weights is empty: give at least one event type a weight, e.g. {'purchase': 5}")
    if not any(w > 0 for w in event_weights.values()):
        raise ValueError(f"event_weights needs at least one positive weight, got {dict(event_weights)}")


def build_interactions(
    events: pd.DataFrame,
    customers: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    *,
    event_weights: Mapping[str, float],
    half_life_days: float | None = None,
    as_of: pd.Timestamp | None = None,
    weighting: str = "none",
    purchase_event_types: Sequence[str] = PURCHASE_EVENT_TYPES,
    item_ids: Sequence[str] | None = None,
    verbose: bool = True,
) -> InteractionMatrix:
    """Build the customers x items confidence matrix.

    Parameters
    ----------
    events:
        DataFrame, one row per event (canonical ``events`` shape: ``customer_id``,
        ``event_at``, ``event_type``, ``item_id``).
    customers:
        DataFrame, one row per customer with ``consent_personalization``; when given, only
        consenting customers are kept. None keeps everyone (for data without consent, e.g.
        MovieLens).
    items:
        DataFrame, one row per item; every listed item gets a column even without events.
    event_weights:
        Confidence added per event of each type; types not listed are ignored.
    half_life_days:
        Half-life of the time decay in days; None disables decay.
    as_of:
        Reference time of the decay; default the latest event.
    weighting:
        ``none``, ``bm25`` or ``tfidf``.
    purchase_event_types:
        Event types that count as a purchase in the purchase-count matrix (``return``
        subtracts one purchase).
    item_ids:
        Fixed column order (e.g. the training columns when building the test matrix);
        events on other items are dropped.
    verbose:
        Log the matrix's size at INFO (False: DEBUG; the cluster builds one block per partition
        and logs the stacked matrix once).

    Returns
    -------
    InteractionMatrix
    """
    _validate_weights(event_weights)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if half_life_days is not None and half_life_days <= 0:
        raise ValueError(f"time decay half-life must be positive days or None, got {half_life_days}")
    missing = {"customer_id", "event_at", "event_type", "item_id"} - set(events.columns)
    if missing:
        raise ValueError(f"events table lacks columns {sorted(missing)}; see docs/CONTRACTS.md")

    types = events["event_type"].to_numpy()
    keep = events["item_id"].notna().to_numpy() & np.isin(
        types, list(set(event_weights) | set(purchase_event_types) | {"return"})
    )
    ev = events.loc[keep, ["customer_id", "item_id", "event_type", "event_at"]]
    allowed = consenting_customers(customers)
    if allowed is not None:
        before = ev["customer_id"].nunique()
        ev = ev[ev["customer_id"].astype(str).isin(allowed)]
        logger.info("consent: %d of %d customers with item events may be personalised",
                    ev["customer_id"].nunique(), before)

    # Columns: fixed order, or items table + items seen in events (sorted for stable ids).
    if item_ids is not None:
        item_index = pd.Index(np.asarray(item_ids, dtype=object).astype(str))
    else:
        known = set(ev["item_id"].astype(str).unique().tolist())
        if items is not None:
            known |= set(items["item_id"].astype(str).tolist())
        item_index = pd.Index(sorted(known))
    cols = item_index.get_indexer(ev["item_id"].astype(str))
    in_catalogue = cols >= 0
    ev, cols = ev[in_catalogue], cols[in_catalogue]
    rows, customer_ids = pd.factorize(ev["customer_id"].astype(str), sort=True)
    n_rows, n_cols = len(customer_ids), len(item_index)
    ev_types = ev["event_type"].to_numpy()

    weights = pd.Series(ev_types).map(dict(event_weights)).fillna(0.0).to_numpy(dtype=np.float64)
    if half_life_days is not None and len(ev):
        at = pd.to_datetime(ev["event_at"], utc=True)
        ref = pd.Timestamp(as_of) if as_of is not None else at.max()
        if ref.tzinfo is None:
            ref = ref.tz_localize("UTC")
        age_days = ((ref - at).dt.total_seconds().to_numpy() / 86400.0).clip(min=0)
        weights = weights * np.power(0.5, age_days / half_life_days)

    def _matrix(values: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix((values, (rows, cols)), shape=(n_rows, n_cols), dtype=np.float64)
        m.sum_duplicates()
        m.data = np.clip(m.data, 0, None)  # returns subtract; never below 0
        m.eliminate_zeros()
        return m.astype(np.float32)

    user_items = _matrix(weights)
    buys = np.isin(ev_types, list(purchase_event_types)).astype(np.float64) - (ev_types == "return")
    purchases = _matrix(buys)

    if weighting != "none" and user_items.nnz:
        from implicit.nearest_neighbours import bm25_weight, tfidf_weight

        item_users = user_items.T.tocsr()
        weighted = bm25_weight(item_users, K1=100, B=0.8) if weighting == "bm25" else tfidf_weight(item_users)
        user_items = sp.csr_matrix(weighted.T, dtype=np.float32)
        user_items.data = np.clip(user_items.data, 0, None)
        user_items.eliminate_zeros()

    logger.log(logging.INFO if verbose else logging.DEBUG, "interactions: %d customers x %d items, %d non-zero",
               n_rows, n_cols, user_items.nnz)
    is_buy = np.isin(ev_types, list(purchase_event_types))
    timing = repurchase_timing(rows[is_buy], cols[is_buy], pd.to_datetime(ev["event_at"][is_buy], utc=True),
                               (n_rows, n_cols))
    return InteractionMatrix(
        user_items=user_items.tocsr(),
        purchases=purchases.tocsr(),
        customer_ids=np.asarray(customer_ids, dtype=str),
        item_ids=np.asarray(item_index, dtype=str),
        timing=timing,
    )


def day_numbers(at: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Timestamps (UTC) as day numbers: days since 1970-01-01, fractional."""
    values = pd.DatetimeIndex(at)
    if values.tz is None:
        values = values.tz_localize("UTC")
    return values.as_unit("s").asi8.astype(np.float64) / DAY_SECONDS


def repurchase_timing(rows: np.ndarray, cols: np.ndarray, at: pd.Series, shape: tuple[int, int]) -> RepurchaseTiming:
    """Repurchase timing from purchase events (row, column, time), one entry per event.

    Purchases of one pair at the same moment count once (one order). Intervals are the gaps
    between consecutive distinct purchase times of one customer-item pair; an item's interval is
    the median of its pairs' gaps pooled, its repeat rate the share of its buyers with two or
    more distinct purchase times; the shop's clock (``recency_scale_days``) is the median of all
    gaps (7 days when nobody rebought anything).
    """
    n_cols = shape[1]
    days = day_numbers(at) if len(rows) else np.empty(0)
    frame = pd.DataFrame({"r": np.asarray(rows, np.int64), "c": np.asarray(cols, np.int64), "d": days})
    frame = frame.drop_duplicates().sort_values(["r", "c", "d"], kind="stable")
    same_pair = (frame["r"].to_numpy()[1:] == frame["r"].to_numpy()[:-1]) & (
        frame["c"].to_numpy()[1:] == frame["c"].to_numpy()[:-1])
    gaps = pd.DataFrame({"r": frame["r"].to_numpy()[1:][same_pair], "c": frame["c"].to_numpy()[1:][same_pair],
                         "gap": np.diff(frame["d"].to_numpy())[same_pair]})
    last = frame.groupby(["r", "c"], sort=True)["d"].max()
    last_bought = sp.csr_matrix((last.to_numpy(), (last.index.get_level_values(0), last.index.get_level_values(1))),
                                shape=shape, dtype=np.float64)
    pair_gap = gaps.groupby(["r", "c"], sort=True)["gap"].median()
    pair_gap = pair_gap[pair_gap > 0]
    pair_interval = sp.csr_matrix(
        (pair_gap.to_numpy(), (pair_gap.index.get_level_values(0), pair_gap.index.get_level_values(1))),
        shape=shape, dtype=np.float64)
    item_interval = np.full(n_cols, np.nan)
    by_item = gaps.groupby("c")["gap"].median()
    item_interval[by_item.index.to_numpy()] = by_item.to_numpy()
    buyers = np.bincount(last.index.get_level_values(1), minlength=n_cols).astype(np.float64)
    repeaters = np.bincount(pair_gap.index.get_level_values(1), minlength=n_cols).astype(np.float64)
    repeat_rate = np.divide(repeaters, buyers, out=np.zeros(n_cols), where=buyers > 0)
    scale = float(np.median(gaps["gap"])) if len(gaps) else 7.0
    as_of = float(frame["d"].max()) if len(frame) else 0.0
    return RepurchaseTiming(last_bought=last_bought, pair_interval=pair_interval, item_interval=item_interval,
                            item_repeat_rate=repeat_rate, recency_scale_days=max(scale, 1e-3), as_of_days=as_of)


def repeat_purchase_share(events: pd.DataFrame, purchase_event_types: Sequence[str] = PURCHASE_EVENT_TYPES) -> float:
    """Share of purchases that are repeats: of an item the same customer bought at an earlier time.

    One customer buying one item several times at one moment (one order) counts once. 0.0 when
    there are no purchases with an item.
    """
    buys = events[events["event_type"].isin(list(purchase_event_types)) & events["item_id"].notna()]
    if buys.empty:
        return 0.0
    lines = buys[["customer_id", "item_id", "event_at"]].drop_duplicates()
    pairs = lines[["customer_id", "item_id"]].drop_duplicates()
    return float((len(lines) - len(pairs)) / len(lines))


def decide_exclude_purchased(repeat_share: float, threshold: float) -> bool:
    """``exclude_purchased: auto``: exclude bought items unless at least ``threshold`` of purchases are repeats."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"repeat-share threshold must be within [0, 1], got {threshold}")
    return repeat_share < threshold


def last_order_split(
    events: pd.DataFrame,
    purchase_event_types: Sequence[str] = PURCHASE_EVENT_TYPES,
    order_window_hours: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Next-basket split: each customer's last order is held out, everything before it is history.

    The canonical events carry no order id: a customer's last order is their purchases within
    ``order_window_hours`` of their last purchase (0 = the purchases at exactly that moment).
    Customers with one order only have no history and so are not evaluated (their order stays
    out of both parts).

    Returns
    -------
    (history, last_orders, order_at):
        ``history``: all events (any type) strictly before the customer's last order starts;
        ``last_orders``: the purchase events of each last order; ``order_at``: Series
        customer_id -> the time of the last purchase (the moment of the "request").
    """
    if order_window_hours < 0:
        raise ValueError(f"order window must be >= 0 hours, got {order_window_hours}")
    if events.empty:
        raise ValueError("no events to split: ingest or generate data first")
    at = pd.to_datetime(events["event_at"], utc=True)
    cust = events["customer_id"].astype(str)
    is_buy = events["event_type"].isin(list(purchase_event_types)).to_numpy() & events["item_id"].notna().to_numpy()
    last_at = at[is_buy].groupby(cust[is_buy]).max()
    start = last_at - pd.Timedelta(hours=order_window_hours)
    row_start = cust.map(start)  # NaT for customers who never bought
    in_last = is_buy & (at >= row_start).to_numpy()
    before = ((at < row_start) | row_start.isna()).to_numpy()  # customers who never bought: all history
    has_history = cust.map(at[is_buy & before].groupby(cust[is_buy & before]).size()).fillna(0).to_numpy() > 0
    return events[before], events[in_last & has_history], last_at


def time_split(
    events: pd.DataFrame, holdout_days: int, end: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Split events at one global cut-off ``holdout_days`` before the end (never at random).

    Returns
    -------
    (train, test, cutoff):
        ``train`` has events with ``event_at < cutoff``, ``test`` those in ``[cutoff, end]``.
    """
    if holdout_days < 1:
        raise ValueError(f"holdout must be at least 1 day, got {holdout_days}")
    if events.empty:
        raise ValueError("no events to split: ingest or generate data first")
    at = pd.to_datetime(events["event_at"], utc=True)
    end = at.max() if end is None else pd.Timestamp(end)
    cutoff = end - pd.Timedelta(days=holdout_days)
    if cutoff <= at.min():
        raise ValueError(
            f"holdout of {holdout_days} days starts at {cutoff}, before the first event {at.min()}: "
            "use a shorter recommender.holdout_days or more history"
        )
    train_mask = (at < cutoff).to_numpy()
    test_mask = (~train_mask) & (at <= end).to_numpy()
    return events[train_mask], events[test_mask], cutoff


def holdout_targets(
    test_events: pd.DataFrame,
    train: InteractionMatrix,
    target_event_types: Sequence[str] = PURCHASE_EVENT_TYPES,
) -> dict[int, np.ndarray]:
    """Relevant items per training row: items the customer acted on in the holdout.

    Only customers present in the training matrix and items among its columns count;
    customers new in the holdout are cold-start and are not part of the ranking metrics.

    Returns
    -------
    dict
        training row -> sorted array of item columns (unique).
    """
    ev = test_events[test_events["event_type"].isin(list(target_event_types)) & test_events["item_id"].notna()]
    rows = pd.Index(train.customer_ids).get_indexer(ev["customer_id"].astype(str))
    cols = pd.Index(train.item_ids).get_indexer(ev["item_id"].astype(str))
    ok = (rows >= 0) & (cols >= 0)
    pairs = pd.DataFrame({"r": rows[ok], "c": cols[ok]}).drop_duplicates()
    return {int(r): np.sort(g["c"].to_numpy()) for r, g in pairs.groupby("r")}
