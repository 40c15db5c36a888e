"""Churn training sets: labels as of many cut-offs, point-in-time features from Feast, time splits.

Labels follow :mod:`features.labels` (alive at T, churned = no qualifying activity or
an explicit cancellation in (T, T + H], H = ``settings.churn.horizon_days``).

- Only cut-offs whose label window has fully passed (T + H <= the last event) are used.
- Splits are by time with an embargo: a training cut-off's label window ends at or
  before the first validation cut-off, and a validation cut-off's at or before the
  first test cut-off, so no label of an earlier split looks into a later one.

A labelled snapshot (``tenure ingest customers FILE --label-column COL``: one row per customer,
attributes and a yes/no label, no cut-off dates) is the other kind of training set:
:func:`build_snapshot_training_set` turns the labelled customers into features (their typed
attributes, :mod:`features.attributes`, plus activity features when events exist) and
:func:`split_snapshot` splits them at random, stratified by the label, with a seed.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from tenure.features.labels import CANCEL_EVENT, LABEL_COLUMN, label_churn, matured_cutoffs

__all__ = ["CANCEL_EVENT", "LABEL_COLUMN", "TimeSplit", "build_churn_training_set", "build_snapshot_training_set",
           "check_point_in_time", "has_labelled_snapshot", "label_churn", "matured_cutoffs", "split_by_time",
           "split_cutoffs", "split_snapshot"]

logger = logging.getLogger(__name__)

ENTITY_COLUMNS = ("customer_id", "event_timestamp")
SNAPSHOT_VALID_SHARE = 0.2
SNAPSHOT_TEST_SHARE = 0.2
SNAPSHOT_PROFILE_COLUMNS = ("plan", "region", "acquisition_channel")
"""Canonical customer columns used as categorical features of a snapshot when they hold values."""


@dataclasses.dataclass(frozen=True)
class TimeSplit:
    """Rows of a training set split by cut-off time (DataFrames with features and ``label``)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def cutoffs(self) -> dict[str, list[pd.Timestamp]]:
        """The cut-offs in each part, for logging."""
        return {
            name: sorted(part["event_timestamp"].unique())
            for name, part in (("train", self.train), ("valid", self.valid), ("test", self.test))
        }


def split_cutoffs(cutoffs: list[pd.Timestamp], validation_cutoffs: int, test_cutoffs: int,
                  horizon_days: int) -> tuple[list[pd.Timestamp], list[pd.Timestamp], list[pd.Timestamp]]:
    """The (train, validation, test) cut-offs of :func:`split_by_time`, from the sorted cut-offs alone
    (the distributed engine splits a frame it does not hold).

    Raises
    ------
    ValueError
        When there are too few cut-offs for the three parts.
    """
    need = validation_cutoffs + test_cutoffs + 1
    if len(cutoffs) < need:
        raise ValueError(
            f"need at least {need} matured cut-offs ({validation_cutoffs} validation + {test_cutoffs} test + "
            f"1 training), found {len(cutoffs)}; build more feature snapshots over a longer history "
            "(tenure features build --start ... --every 7d) or lower churn.validation_cutoffs/test_cutoffs"
        )
    horizon = pd.Timedelta(days=horizon_days)
    test_times = cutoffs[-test_cutoffs:]
    valid_times = [t for t in cutoffs if t + horizon <= test_times[0]][-validation_cutoffs:]
    train_times = [t for t in cutoffs if valid_times and t + horizon <= valid_times[0]]
    if not valid_times or not train_times:
        raise ValueError(
            f"the cut-offs ({len(cutoffs)}, {cutoffs[0].date()} .. {cutoffs[-1].date()}) do not leave room for "
            f"training and validation windows whose {horizon_days}-day label windows end before the next part "
            "starts; a longer history is needed (or fewer validation/test cut-offs)"
        )
    return train_times, valid_times, test_times


def split_by_time(frame: pd.DataFrame, validation_cutoffs: int, test_cutoffs: int, horizon_days: int) -> TimeSplit:
    """Split a training set by cut-off: earliest for training, then validation, latest for test.

    Training cut-offs whose label window would reach past the first validation cut-off are
    dropped (embargo), and likewise validation cut-offs against the first test cut-off.

    Raises
    ------
    ValueError
        When there are too few cut-offs for the three parts.
    """
    cutoffs = sorted(pd.to_datetime(frame["event_timestamp"], utc=True).unique())
    train_times, valid_times, test_times = split_cutoffs(cutoffs, validation_cutoffs, test_cutoffs, horizon_days)
    ts = pd.to_datetime(frame["event_timestamp"], utc=True)
    split = TimeSplit(
        train=frame[ts.isin(train_times)].reset_index(drop=True),
        valid=frame[ts.isin(valid_times)].reset_index(drop=True),
        test=frame[ts.isin(test_times)].reset_index(drop=True),
    )
    for name, part in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        classes = part[LABEL_COLUMN].nunique()
        if classes < 2:
            raise ValueError(
                f"the {name} window has a single class (label {part[LABEL_COLUMN].iloc[0] if len(part) else 'none'}, "
                f"{len(part)} rows); churn cannot be learned or judged there; use more data or a different horizon"
            )
    return split


def check_point_in_time(
    frame: pd.DataFrame,
    events: pd.DataFrame,
    customers: pd.DataFrame,
    items: pd.DataFrame,
    sample: int = 300,
    random_state: int = 0,
    tolerance: float = 1e-6,
) -> None:
    """Recompute a sample of training rows from events up to their cut-off and compare.

    Every activity feature of a row at cut-off T must equal the value the feature code
    computes from the events at or before T. A feature that saw later events (leakage), or
    a snapshot stamped with the wrong time, makes them differ.

    Raises
    ------
    ValueError
        Naming the first feature, customer and cut-off that differ.
    """
    from tenure.features.customer_features import (
        CUSTOMER_ACTIVITY_FEATURES,
        compute_customer_features,
    )

    columns = [c for c in CUSTOMER_ACTIVITY_FEATURES if c in frame.columns]
    if frame.empty or not columns:
        return
    rows = frame.sample(min(sample, len(frame)), random_state=random_state)
    for cutoff, part in rows.groupby("event_timestamp"):
        ids = set(part["customer_id"])
        recomputed = compute_customer_features(
            events[events["customer_id"].isin(ids)], customers[customers["customer_id"].isin(ids)], items, cutoff
        ).set_index("customer_id")
        got = part.set_index("customer_id")[columns].astype(float)
        want = recomputed.reindex(got.index)[columns].astype(float)
        diff = ~(np.isclose(got.to_numpy(), want.to_numpy(), atol=tolerance, equal_nan=True))
        if diff.any():
            i, j = map(int, np.argwhere(diff)[0])
            raise ValueError(
                f"feature {columns[j]!r} of customer {got.index[i]} at cut-off {cutoff} is {got.iat[i, j]} but "
                f"{want.iat[i, j]} when recomputed from events up to the cut-off: the training frame "
                "leaks information from after the cut-off (or a snapshot carries the wrong time)"
            )


def build_churn_training_set(settings, store=None, verify_sample: int = 300) -> pd.DataFrame:
    """Labels at every matured snapshot time, joined point-in-time to the ``churn_v1`` features.

    The cut-offs are the ``event_timestamp`` values of the batch feature table (``tenure
    features build``) whose label window has passed; features come from Feast's
    ``get_historical_features`` through :func:`feature_repo.store.get_training_frame`, whole
    cut-offs of at most ``settings.churn.join_rows_per_call`` rows per call, so memory stays bounded.
    A sample of ``verify_sample`` rows is recomputed from raw events as a leakage guard
    (:func:`check_point_in_time`); 0 skips it.

    Returns
    -------
    DataFrame, one row per (customer, cut-off): ``customer_id``, ``event_timestamp``,
    ``label`` and the feature service's features.
    """
    from tenure.feature_repo.definitions import CHURN_SERVICE
    from tenure.feature_repo.store import get_training_frame
    from tenure.features.snapshots import CUSTOMER_TABLE
    from tenure.features.tables import read_customers, read_events

    table = settings.paths.features_dir / CUSTOMER_TABLE
    if not table.exists():
        raise ValueError(f"no feature table at {table}; run `tenure features build` first")
    snapshot_times = pd.read_parquet(table, columns=["event_timestamp"])["event_timestamp"].unique()
    customers = read_customers(settings)
    events = read_events(settings, columns=["customer_id", "event_at", "event_type"])
    if events.empty:
        raise ValueError("no events ingested; the churn label needs activity history (tenure ingest ...)")
    data_end = events["event_at"].max()
    cutoffs = matured_cutoffs(pd.to_datetime(snapshot_times, utc=True), data_end, settings.churn.horizon_days)
    earliest = data_end - pd.Timedelta(days=settings.churn.history_days)
    cutoffs = [t for t in cutoffs if t >= earliest]
    if not cutoffs:
        raise ValueError(
            f"no feature snapshot is at least {settings.churn.horizon_days} days before the last event "
            f"({data_end}); the training window is empty: build snapshots earlier in the history"
        )
    labels = label_churn(events, customers, cutoffs, settings.churn.horizon_days, settings.churn.qualifying_event_types)
    del events  # not needed during the join, which is the memory peak
    labels = _without_withdrawn(settings, labels)
    if labels.empty:
        raise ValueError("no customer is alive at any cut-off; the training window is empty")
    logger.info("labelled %d rows over %d cut-offs (churn rate %.3f)", len(labels), len(cutoffs), labels[LABEL_COLUMN].mean())
    frame = get_training_frame(settings, labels, feature_service=CHURN_SERVICE, store=store,
                               rows_per_call=settings.churn.join_rows_per_call)
    del labels
    if verify_sample:
        from tenure.features.tables import read_items

        rows = frame.sample(min(verify_sample, len(frame)), random_state=0)
        ids = set(rows["customer_id"])
        guard_events = read_events(settings, start=min(cutoffs) - pd.Timedelta(days=365), end=max(cutoffs),
                                   customer_ids=ids)  # only the sampled customers: memory stays small
        customers = customers[customers["customer_id"].isin(ids)]
        check_point_in_time(rows, guard_events, customers, read_items(settings), sample=len(rows))
    return frame



def _without_withdrawn(settings, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of customers who have not withdrawn the ``profiling`` consent (privacy/consent.py)."""
    from tenure.privacy.consent import withdrawn_customers

    withdrawn = withdrawn_customers(settings, "profiling")
    if not withdrawn:
        return frame
    keep = ~frame["customer_id"].isin(withdrawn)
    logger.info("left out %d rows of %d customers who withdrew the profiling consent",
                int((~keep).sum()), len(withdrawn))
    return frame[keep].reset_index(drop=True)


# --- labelled snapshots ----------------------------------------------------------------------------

def has_labelled_snapshot(settings) -> bool:
    """Whether the workspace's customers table holds churn labels (``--label-column`` at ingest)."""
    from tenure.features.tables import customers_have_labels

    return customers_have_labels(settings)


def build_snapshot_training_set(settings) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The labelled customers as a training frame: attributes (+ activity features when there are events).

    Features: every used attribute (numbers, yes/no as 1/0, categories; ``ignore`` columns never),
    the canonical ``plan``/``region``/``acquisition_channel`` when they hold values, and, when
    events were ingested too, the activity features of :mod:`features.customer_features` as of
    the last event (the snapshot's time). Columns that are constant over the labelled customers
    are left out (they cannot tell anyone apart).

    Returns
    -------
    (frame, numeric, categorical): the frame has one row per labelled customer with
    ``customer_id``, ``event_timestamp`` (the snapshot time: the last event, else the time of
    the customers table), ``label`` (0/1) and the features; then the numeric and categorical
    feature names.

    Raises
    ------
    ValueError
        When no customer has a label, or the labels have a single class.
    """
    from tenure.features.attributes import attribute_features, read_attribute_types
    from tenure.features.tables import read_customers, read_events

    customers = read_customers(settings, missing_ok=True)
    if "churned" not in customers.columns or customers["churned"].isna().all():
        raise ValueError(
            f"no labelled customers under {settings.paths.tables_dir}: ingest a snapshot with its label, "
            "`tenure ingest customers FILE --label-column COL` (COL holds yes/no, true/false or 1/0)"
        )
    labelled = customers[customers["churned"].notna()].reset_index(drop=True)
    label = labelled["churned"].astype(bool).astype(np.int64)
    if label.nunique() < 2:
        raise ValueError(f"all {len(labelled)} labelled customers have the same label ({bool(label.iloc[0])}); "
                         "churn cannot be learned from one class")
    types = {c: k for c, k in read_attribute_types(settings).items() if c in labelled.columns and k != "ignore"}
    frame = attribute_features(labelled, types)
    categorical = [c for c, k in types.items() if k == "category"]
    for column in SNAPSHOT_PROFILE_COLUMNS:
        if column in labelled.columns and column not in frame.columns and labelled[column].notna().any():
            frame[column] = labelled[column].astype(object).where(labelled[column].notna(), None).to_numpy()
            categorical.append(column)
    events = read_events(settings, columns=["customer_id", "event_at", "event_type", "item_id", "quantity",
                                            "amount", "nps", "csat", "resolution_hours"])
    if len(events):
        from tenure.features.customer_features import (
            CUSTOMER_ACTIVITY_FEATURES,
            compute_customer_features,
        )
        from tenure.features.tables import read_items

        as_of = events["event_at"].max()
        known = labelled.assign(signup_at=labelled["signup_at"].fillna(as_of))
        activity = compute_customer_features(events, known, read_items(settings, missing_ok=True), as_of)
        activity = activity.set_index("customer_id").reindex(frame["customer_id"])
        for column in CUSTOMER_ACTIVITY_FEATURES:
            if column not in frame.columns:
                frame[column] = activity[column].to_numpy(dtype=np.float64)
        logger.info("snapshot: %d events joined as activity features as of %s", len(events), as_of)
    else:
        from tenure.features.tables import table_path

        stamps = [p.stat().st_mtime for p in table_path(settings, "customers").glob("*.parquet")]
        as_of = pd.Timestamp(max(stamps), unit="s", tz="UTC").floor("s") if stamps else pd.Timestamp.now(tz="UTC")
    features = [c for c in frame.columns if c != "customer_id"]
    constant = [c for c in features if frame[c].nunique(dropna=False) < 2]
    if constant:
        logger.info("snapshot: leaving out constant columns %s", constant)
    features = [c for c in features if c not in constant]
    if not features:
        raise ValueError("the labelled customers have no usable attribute (every column is constant, an id or "
                         "free text); see the types `tenure ingest` printed and data.attribute_types")
    categorical = [c for c in categorical if c in features]
    numeric = [c for c in features if c not in categorical]
    out = frame[["customer_id", *features]].copy()
    out.insert(1, "event_timestamp", pd.Timestamp(as_of).tz_convert("UTC"))
    out.insert(2, LABEL_COLUMN, label.to_numpy())
    out = _without_withdrawn(settings, out)
    logger.info("snapshot: %d labelled customers, churn rate %.3f, %d numeric + %d categorical features",
                len(out), float(label.mean()), len(numeric), len(categorical))
    return out, numeric, categorical


def split_snapshot(frame: pd.DataFrame, random_state: int, valid_share: float = SNAPSHOT_VALID_SHARE,
                   test_share: float = SNAPSHOT_TEST_SHARE) -> TimeSplit:
    """Random train / validation / test customers, stratified by ``label`` (60/20/20 by default).

    A snapshot has no cut-off dates to split by time; the same seed gives the same split.

    Raises
    ------
    ValueError
        When a part would hold fewer than 2 customers of either class.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < valid_share < 1 or not 0 < test_share < 1 or valid_share + test_share >= 1:
        raise ValueError(f"valid_share and test_share must be in (0, 1) with a sum below 1, "
                         f"got {valid_share} and {test_share}")
    counts = frame[LABEL_COLUMN].value_counts()
    smallest = int(counts.min()) if len(counts) == 2 else 0
    if smallest * min(valid_share, test_share) < 2:
        raise ValueError(f"too few labelled customers to split: {dict(counts)} by label; each of train, "
                         "validation and test needs at least 2 of each class (about 10 churners or more)")
    rest, test = train_test_split(frame, test_size=test_share, stratify=frame[LABEL_COLUMN],
                                  random_state=random_state)
    train, valid = train_test_split(rest, test_size=valid_share / (1 - test_share), stratify=rest[LABEL_COLUMN],
                                    random_state=random_state)
    return TimeSplit(train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True))
