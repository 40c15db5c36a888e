"""Online feature reads and pushes for the service: one feature vector per customer, per request.

``OnlineFeatureReader`` resolves its feature service once and reuses it, so a request costs one
online-store round trip plus the decoding. ``push_customer_features`` writes one customer's
recomputed features (from :func:`features.customer_features.compute_customer_features`) to the
online store through the push sources, after ``POST /events``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from feature_repo.definitions import CUSTOMER_ACTIVITY_PUSH, CUSTOMER_PROFILE_PUSH
from features.customer_features import (
    CUSTOMER_ACTIVITY_FEATURES,
    CUSTOMER_PROFILE_FEATURES,
    to_utc_timestamp,
)

if TYPE_CHECKING:
    import feast
    import pandas as pd

logger = logging.getLogger(__name__)

_FOUND = (FieldStatus.PRESENT, FieldStatus.NULL_VALUE, FieldStatus.OUTSIDE_MAX_AGE)
_STRING_KINDS = {"string_val"}


class OnlineFeatureReader:
    """Read a feature service's vector for customers from the online store.

    Parameters
    ----------
    store:
        An open :class:`feast.FeatureStore` (``feature_repo.store.open_store``).
    feature_service_name:
        E.g. ``"churn_v1"``; resolved once here.

    Attributes
    ----------
    feature_names : list of str
        Feature names in the order of the service (the keys of each returned dict).

    Notes
    -----
    Missing numeric values come back as ``float('nan')`` (what the model was trained on for
    "never"), missing strings as None. Feast does not apply TTLs to online reads: a value is
    served until it is overwritten by materialization or a push.
    """

    def __init__(self, store: feast.FeatureStore, feature_service_name: str) -> None:
        self._store = store
        try:
            self._service = store.get_feature_service(feature_service_name)
        except Exception as exc:
            raise ValueError(
                f"feature service {feature_service_name!r} is not registered in project "
                f"{store.project!r}; run `tenure features apply` first"
            ) from exc
        self.feature_service_name = feature_service_name
        self.feature_names: list[str] = [
            feature.name for projection in self._service.feature_view_projections for feature in projection.features
        ]
        self._string_features = {
            feature.name
            for projection in self._service.feature_view_projections
            for feature in projection.features
            if str(feature.dtype).lower().startswith("string")
        }

    def read(self, customer_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Feature vectors of ``customer_ids``, in order.

        Returns
        -------
        list, one entry per customer id: a dict ``{feature_name: value}``, or None when the
        online store has no row at all for that customer.
        """
        ids = [str(c) for c in customer_ids]
        if not ids:
            return []
        response = self._store.get_online_features(
            features=self._service, entity_rows={"customer_id": ids}
        )
        proto = response.proto
        names = list(proto.metadata.feature_names.val)
        rows: list[dict[str, Any]] = [dict.fromkeys(self.feature_names) for _ in ids]
        found = [False] * len(ids)
        for name, vector in zip(names, proto.results):
            if name == "customer_id":
                continue
            is_string = name in self._string_features
            stamps = vector.event_timestamps
            for i, (value, status) in enumerate(zip(vector.values, vector.statuses)):
                # a row exists when the store has it and it carries a write time; Redis reports
                # absent keys as PRESENT with empty values and no timestamp, SQLite as NOT_FOUND
                if status in _FOUND and (stamps[i].seconds or stamps[i].nanos):
                    found[i] = True
                kind = value.WhichOneof("val")
                if kind is None:
                    rows[i][name] = None if is_string else math.nan
                else:
                    rows[i][name] = getattr(value, kind)
        return [row if ok else None for row, ok in zip(rows, found)]


def push_customer_features(
    store: feast.FeatureStore,
    frame: pd.DataFrame,
    as_of: object | None = None,
) -> int:
    """Write recomputed customer features to the online store (activity and profile push sources).

    Parameters
    ----------
    store:
        An open :class:`feast.FeatureStore`.
    frame:
        DataFrame, one row per customer, from ``compute_customer_features``: ``customer_id`` +
        feature columns, optionally ``event_timestamp``.
    as_of:
        The as-of time the features were computed at; used as ``event_timestamp`` when the frame
        has none (default: now). Online stores keep the newest timestamp, so use the real as-of.

    Returns
    -------
    int
        Number of customers pushed.
    """
    import pandas as pd
    from feast.data_source import PushMode

    missing = [c for c in ("customer_id", *CUSTOMER_ACTIVITY_FEATURES, *CUSTOMER_PROFILE_FEATURES)
               if c not in frame.columns]
    if missing:
        raise ValueError(f"features to push lack the column(s) {missing}; pass compute_customer_features output")
    if frame.empty:
        return 0
    frame = frame.copy()
    if "event_timestamp" not in frame.columns:
        frame["event_timestamp"] = to_utc_timestamp(as_of if as_of is not None else pd.Timestamp.now(tz="UTC"))
    frame["created"] = pd.Timestamp.now(tz="UTC")
    keys = ["customer_id", "event_timestamp", "created"]
    store.push(CUSTOMER_ACTIVITY_PUSH, frame[keys + list(CUSTOMER_ACTIVITY_FEATURES)], to=PushMode.ONLINE)
    store.push(CUSTOMER_PROFILE_PUSH, frame[keys + list(CUSTOMER_PROFILE_FEATURES)], to=PushMode.ONLINE)
    logger.debug("pushed features of %d customer(s)", len(frame))
    return len(frame)
