"""Batch scoring of every customer with the champion models, and audience files for marketing.

One row per customer: calibrated ``churn_probability``, ``risk_band``, the top reasons
flattened into columns (``reason_1_feature``, ``reason_1_value``, ``reason_1_contribution``,
...), and optionally the recommended items (``item_1`` ... ``item_K``). Features come from
the Feast online store (what the service sees) or, when that is unavailable, from the
latest batch snapshot in ``features_dir``. Files are written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tenure.registry.champion import load_champion
from tenure.settings import Settings

logger = logging.getLogger(__name__)

RISK_BANDS: tuple[str, ...] = ("low", "medium", "high")
FeatureSource = Literal["auto", "online", "snapshot"]
FileFormat = Literal["csv", "parquet"]
BASE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "churn_probability",
    "risk_band",
    "churn_model_version",
    "feature_source",
    "scored_at",
)


def reason_columns(n_reasons: int) -> list[str]:
    """Flattened reason column names: ``reason_1_feature, reason_1_value, reason_1_contribution, ...``."""
    return [f"reason_{i}_{part}" for i in range(1, n_reasons + 1) for part in ("feature", "value", "contribution")]


def item_columns(k: int) -> list[str]:
    """Flattened recommendation column names ``item_1`` ... ``item_k``."""
    return [f"item_{i}" for i in range(1, k + 1)]


def snapshot_rows_of(path, customer_ids: Sequence[str] | None) -> pd.DataFrame:  # noqa: F821
    """Every snapshot row of ``customer_ids`` in the batch feature table at ``path`` (all rows when None).

    The customers are picked while the file is scanned (a pyarrow filter), so scoring a few customers, or
    one partition of them on a cluster, holds their rows only, not the table (19.7M rows at 1M customers).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(path), format="parquet")
    kind = dataset.schema.field("customer_id").type
    if customer_ids is None or not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return dataset.to_table().to_pandas()
    wanted = pa.array([str(c) for c in customer_ids], type=kind)
    return dataset.to_table(filter=pc.field("customer_id").isin(wanted)).to_pandas()


def _read_snapshot_rows(settings: Settings, customer_ids: Sequence[str] | None) -> tuple[list[str], list[dict | None]]:
    import numpy as np

    path = settings.paths.features_dir / "customer_features.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no feature snapshot at {path}; run `tenure run features` first")
    frame = snapshot_rows_of(path, customer_ids)
    frame = frame.sort_values("event_timestamp", kind="stable").drop_duplicates("customer_id", keep="last")
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame = frame.set_index("customer_id")
    ids = list(customer_ids) if customer_ids is not None else sorted(frame.index)
    drop = [c for c in ("event_timestamp", "created") if c in frame.columns]
    records = frame.drop(columns=drop).replace({np.nan: None}).to_dict(orient="index")
    return ids, [records.get(cid) for cid in ids]


def _read_online_rows(settings: Settings, customer_ids: Sequence[str]) -> list[dict | None]:
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import open_store

    store = open_store(settings)
    reader = OnlineFeatureReader(store, "churn_v1")
    rows: list[dict | None] = []
    chunk = 1000
    for start in range(0, len(customer_ids), chunk):
        rows.extend(reader.read(list(customer_ids[start : start + chunk])))
    return rows


def read_feature_rows(
    settings: Settings, customer_ids: Sequence[str] | None = None, source: FeatureSource = "auto"
) -> tuple[list[str], list[dict | None], str]:
    """Feature rows of customers, in the order of the returned ids.

    Parameters
    ----------
    customer_ids:
        Who to read; None = every customer of the ``customers`` table (online) or of
        the latest snapshot.
    source:
        ``online`` (Feast online store), ``snapshot`` (latest row per customer of
        ``features_dir/customer_features.parquet``) or ``auto`` (online, else snapshot).

    Returns
    -------
    (ids, rows, source_used)
        ``rows[i]`` is a ``{feature: value}`` dict, or None for an unknown customer.
    """
    if source not in ("auto", "online", "snapshot"):
        raise ValueError(f"feature source must be 'auto', 'online' or 'snapshot', got {source!r}")
    if source in ("auto", "online"):
        try:
            if customer_ids is None:
                from tenure.features.tables import read_customers

                customer_ids = sorted(read_customers(settings)["customer_id"].astype(str))
            ids = list(customer_ids)
            return ids, _read_online_rows(settings, ids), "online"
        except Exception as exc:  # the snapshot is the documented fallback
            if source == "online":
                raise
            logger.warning("online features unavailable (%s: %s); using the latest snapshot", type(exc).__name__, exc)
    ids, rows = _read_snapshot_rows(settings, customer_ids)
    return ids, rows, "snapshot"


def score_rows(
    scorer: Any,
    model_version: str,
    customer_ids: Sequence[str],
    rows: Sequence[dict | None],
    n_reasons: int = 3,
    feature_source: str = "",
    scored_at: datetime | None = None,
) -> pd.DataFrame:  # noqa: F821
    """Churn scores with flattened reasons for customers whose feature rows are known.

    Parameters
    ----------
    scorer:
        A ``registry.churn_scorer.ChurnScorer`` (``vectorize``, ``predict_proba``,
        ``risk_bands``, ``top_reasons``).
    customer_ids, rows:
        Same length; customers whose row is None are left out (unknown).

    Returns
    -------
    DataFrame
        One row per known customer: :data:`BASE_COLUMNS` + :func:`reason_columns`.
    """
    import pandas as pd

    if len(customer_ids) != len(rows):
        raise ValueError(f"customer_ids and rows must have the same length, got {len(customer_ids)} and {len(rows)}")
    if n_reasons < 0:
        raise ValueError(f"n_reasons must be >= 0, got {n_reasons}")
    known = [(cid, row) for cid, row in zip(customer_ids, rows) if row is not None]
    columns = list(BASE_COLUMNS) + reason_columns(n_reasons)
    if not known:
        return pd.DataFrame(columns=columns)
    ids = [cid for cid, _ in known]
    X = scorer.vectorize([row for _, row in known])
    proba = scorer.predict_proba(X)
    bands = scorer.risk_bands(proba)
    reasons = scorer.top_reasons(X, n_reasons) if n_reasons else [[] for _ in ids]
    when = (scored_at or datetime.now(UTC)).isoformat(timespec="seconds")
    records = []
    for cid, p, band, why in zip(ids, proba, bands, reasons):
        record: dict[str, Any] = {
            "customer_id": str(cid),
            "churn_probability": float(p),
            "risk_band": str(band),
            "churn_model_version": str(model_version),
            "feature_source": feature_source,
            "scored_at": when,
        }
        for i in range(1, n_reasons + 1):
            reason = why[i - 1] if i - 1 < len(why) else {}
            value = reason.get("value")
            record[f"reason_{i}_feature"] = reason.get("feature")
            record[f"reason_{i}_value"] = None if value is None else str(value)
            contribution = reason.get("contribution")
            record[f"reason_{i}_contribution"] = None if contribution is None else float(contribution)
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=columns)
    return frame


def add_recommendations(
    frame: pd.DataFrame,  # noqa: F821
    runtime: Any,
    model_version: str,
    k: int,
    consent: dict[str, bool] | None = None,
) -> pd.DataFrame:  # noqa: F821
    """Append ``item_1..item_k``, ``recommendation_strategy`` and ``recommender_model_version``.

    Customers without personalisation consent get the runtime's non-personal fallback
    (strategy ``no_consent_popular``), as the service does.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1 to add recommendations, got {k}")
    consent = consent or {}
    cols: dict[str, list[Any]] = {c: [] for c in item_columns(k)}
    strategies: list[str] = []
    for cid in frame["customer_id"]:
        recs = runtime.recommend(str(cid), k=k, exclude_purchased=True, consent=bool(consent.get(str(cid), True)))
        items = [row["item_id"] for row in recs.items][:k]
        for i, col in enumerate(cols):
            cols[col].append(str(items[i]) if i < len(items) else None)
        strategies.append(str(recs.strategy))
    out = frame.copy()
    for col, values in cols.items():
        out[col] = values
    out["recommendation_strategy"] = strategies
    out["recommender_model_version"] = str(model_version)
    return out


def _consent_map(settings: Settings) -> dict[str, bool]:
    from tenure.features.tables import read_customers
    from tenure.privacy.consent import ConsentStore, consent_path

    customers = read_customers(settings)
    consent = ({} if "consent_personalization" not in customers.columns else
               dict(zip(customers["customer_id"].astype(str), customers["consent_personalization"].astype(bool))))
    if consent_path(settings).exists():  # changes through POST /consent or consent files win (privacy/consent.py)
        store = ConsentStore.from_settings(settings)
        try:
            consent.update({cid: s["personalization"] for cid, s in store.current().items() if "personalization" in s})
        finally:
            store.close()
    return consent


def _consenting(settings: Settings, frame: pd.DataFrame, scopes: Sequence[str]) -> pd.DataFrame:  # noqa: F821
    """Rows of customers who have withdrawn none of ``scopes`` (privacy/consent.py)."""
    from tenure.privacy.consent import withdrawn_customers

    withdrawn = set().union(*(withdrawn_customers(settings, s) for s in scopes))
    if not withdrawn or frame.empty:
        return frame
    keep = ~frame["customer_id"].astype(str).isin(withdrawn)
    logger.info("left out %d customer(s) who withdrew %s consent", int((~keep).sum()), " or ".join(scopes))
    return frame[keep].reset_index(drop=True)


def batch_score(
    settings: Settings,
    k: int = 0,
    source: FeatureSource = "auto",
    customer_ids: Sequence[str] | None = None,
    n_reasons: int | None = None,
) -> pd.DataFrame:  # noqa: F821
    """Score every known customer (or ``customer_ids``) with the champion churn model.

    Parameters
    ----------
    k:
        Recommendations per customer from the champion recommender; 0 = none.
    n_reasons:
        Reasons per customer; default ``settings.serving.top_reasons``.

    Returns
    -------
    DataFrame
        One row per scored customer, highest churn probability first.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    churn = load_champion(settings, "churn")  # NoChampionError (a ValueError) says what to run
    ids, rows, used = read_feature_rows(settings, customer_ids, source)
    frame = score_rows(
        churn.runtime, churn.version, ids, rows,
        n_reasons=settings.serving.top_reasons if n_reasons is None else n_reasons,
        feature_source=used,
    )
    frame = _consenting(settings, frame, ("profiling",))  # no churn score for whoever withdrew profiling
    unknown = sum(row is None for row in rows)
    if unknown:
        logger.info("%d of %d customers have no features (unknown) and are not scored", unknown, len(ids))
    if k:
        recommender = load_champion(settings, "recommender")
        try:
            consent = _consent_map(settings)
        except Exception as exc:  # noqa: BLE001 - no customers table: the runtime's defaults apply
            logger.warning("consent flags unavailable (%s); treating customers as consenting", exc)
            consent = {}
        frame = add_recommendations(frame, recommender.runtime, recommender.version, k, consent)
    return frame.sort_values("churn_probability", ascending=False, kind="stable").reset_index(drop=True)


def select_audience(frame: pd.DataFrame, risk: Sequence[str]) -> pd.DataFrame:  # noqa: F821
    """Rows of ``frame`` whose ``risk_band`` is one of ``risk``."""
    bad = sorted(set(risk) - set(RISK_BANDS))
    if bad or not risk:
        raise ValueError(f"risk bands must be among {list(RISK_BANDS)}, got {list(risk)}")
    return frame[frame["risk_band"].isin(list(risk))].reset_index(drop=True)


def write_frame(frame: pd.DataFrame, path: Path, file_format: FileFormat | None = None) -> Path:  # noqa: F821
    """Write ``frame`` as CSV or Parquet atomically (a temporary file renamed into place).

    The format defaults to the file's suffix (``.csv`` or ``.parquet``).
    """
    path = Path(path)
    fmt = file_format or path.suffix.lstrip(".").lower()
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet' (or a file ending in one), got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if fmt == "csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def write_scores(settings: Settings, frame: pd.DataFrame) -> dict[str, Path]:  # noqa: F821
    """Write the batch scores as ``exports_dir/scores/scores.{parquet,csv}`` (latest run)."""
    folder = settings.paths.exports_dir / "scores"
    return {
        "parquet": write_frame(frame, folder / "scores.parquet", "parquet"),
        "csv": write_frame(frame, folder / "scores.csv", "csv"),
    }


def default_audience_path(settings: Settings, risk: Sequence[str], file_format: FileFormat) -> Path:
    """``exports_dir/audience-<bands>-<UTC timestamp>.<format>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.paths.exports_dir / f"audience-{'-'.join(risk)}-{stamp}.{file_format}"


def export_audience(
    settings: Settings,
    risk: Sequence[str] = ("high",),
    k: int = 0,
    file_format: FileFormat = "csv",
    out: Path | None = None,
    source: FeatureSource = "auto",
) -> tuple[Path, pd.DataFrame]:  # noqa: F821
    """Write the customers to act on (risk band in ``risk``) with reasons and ``k`` recommendations.

    Returns
    -------
    (path, frame)
        The written file and its content (one row per customer, riskiest first).
    """
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet', got {file_format!r}")
    bad = sorted(set(risk) - set(RISK_BANDS))
    if bad or not risk:
        raise ValueError(f"risk bands must be among {list(RISK_BANDS)}, got {list(risk)}")
    scored = batch_score(settings, k=0, source=source)
    audience = _consenting(settings, select_audience(scored, risk), ("marketing",))  # audiences: marketing consent
    if k and len(audience):
        recommender = load_champion(settings, "recommender")
        try:
            consent = _consent_map(settings)
        except Exception as exc:  # noqa: BLE001 - same fallback as batch_score
            logger.warning("consent flags unavailable (%s); treating customers as consenting", exc)
            consent = {}
        audience = add_recommendations(audience, recommender.runtime, recommender.version, k, consent)
    elif k:
        import pandas as pd

        extra = item_columns(k) + ["recommendation_strategy", "recommender_model_version"]
        audience = pd.concat([audience, pd.DataFrame(columns=extra)], axis=1)
    path = out or default_audience_path(settings, risk, file_format)
    write_frame(audience, path, file_format)
    logger.info("wrote %d customers (%s risk) to %s", len(audience), "/".join(risk), path)
    return path, audience
