"""Churn training sets: labels as of many cut-offs, point-in-time features from Feast, time splits.

Labels follow :mod:`features.labels` (alive at T, churned = no qualifying activity or
an explicit cancellation in (T, T + H], H = ``settings.churn.horizon_days``).

- Only cut-offs whose label window has fully passed (T + H <= the last event) are used.
- Splits are by time with an embargo: a training cut-off's label window ends at or
  before the first validation cut-off, and a validation cut-off's at or before the
  first test cut-off, so no label of an earlier split looks into a later one.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from features.labels import CANCEL_EVENT, LABEL_COLUMN, label_churn, matured_cutoffs

__all__ = ["CANCEL_EVENT", "LABEL_COLUMN", "TimeSplit", "build_churn_training_set", "check_point_in_time",
           "label_churn", "matured_cutoffs", "split_by_time"]

logger = logging.getLogger(__name__)

ENTITY_COLUMNS = ("customer_id", "event_timestamp")


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
    from features.customer_features import CUSTOMER_ACTIVITY_FEATURES, compute_customer_features

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
    from feature_repo.definitions import CHURN_SERVICE
    from feature_repo.store import get_training_frame
    from features.snapshots import CUSTOMER_TABLE
    from features.tables import read_customers, read_events

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
    if labels.empty:
        raise ValueError("no customer is alive at any cut-off; the training window is empty")
    logger.info("labelled %d rows over %d cut-offs (churn rate %.3f)", len(labels), len(cutoffs), labels[LABEL_COLUMN].mean())
    frame = get_training_frame(settings, labels, feature_service=CHURN_SERVICE, store=store,
                               rows_per_call=settings.churn.join_rows_per_call)
    del labels
    if verify_sample:
        from features.tables import read_items

        rows = frame.sample(min(verify_sample, len(frame)), random_state=0)
        ids = set(rows["customer_id"])
        guard_events = read_events(settings, start=min(cutoffs) - pd.Timedelta(days=365), end=max(cutoffs),
                                   customer_ids=ids)  # only the sampled customers: memory stays small
        customers = customers[customers["customer_id"].isin(ids)]
        check_point_in_time(rows, guard_events, customers, read_items(settings), sample=len(rows))
    return frame

