"""Readers that turn public datasets into canonical frames (then validated and stored like any file).

Each reader is pure: it takes a path (the dataset's file, its folder, or the folder that holds
the dataset folders, e.g. ``../shared/datasets``) and returns canonical DataFrames; nothing is
written. Mappings (see docs/data.md):

- Telco Customer Churn -> customers only (a churn snapshot with ``churned``).
- MovieLens ml-latest-small -> customers, items (movies), events (ratings).
- CDNOW -> customers, one synthetic item, purchase events.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tenure.features.schema import conform

logger = logging.getLogger(__name__)

TELCO_SNAPSHOT_AT = pd.Timestamp("2026-01-01T00:00:00Z")
"""The Telco sample has no dates: ``signup_at`` = this time minus ``tenure`` months (30.4375 days each)."""

CDNOW_PURCHASE_HOUR = 12
"""CDNOW gives dates only: a purchase is placed at 12:00 UTC of its day (never on a midnight cut-off)."""

CDNOW_ITEM_ID = "cdnow-cd"
"""The one synthetic item of CDNOW: the data has no product ids, only CD counts and dollar values."""

_DAYS_PER_MONTH = 30.4375


def _locate(path: Path | str, filename: str, folder: str) -> Path:
    """The dataset file: ``path`` itself, ``path/filename`` or ``path/folder/filename``."""
    path = Path(path)
    for candidate in (path, path / filename, path / folder / filename):
        if candidate.is_file() and candidate.name == filename:
            return candidate
    raise FileNotFoundError(
        f"{filename} not found at {path} (looked for {path / filename} and {path / folder / filename})"
    )


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def read_telco(path: Path | str) -> pd.DataFrame:
    """IBM Telco Customer Churn as a canonical customers snapshot.

    Parameters
    ----------
    path: ``telco_customer_churn.csv``, its folder, or the folder holding ``telco_churn/``.

    Returns
    -------
    DataFrame, one row per customer: ``customer_id``; ``signup_at`` =
    :data:`TELCO_SNAPSHOT_AT` minus ``tenure`` months; ``consent_personalization`` True (the
    sample has no consent field); ``plan`` = Contract (``month-to-month``, ``one_year``,
    ``two_year``); ``churned`` = Churn == "Yes"; and every other attribute as an extra column in
    snake_case (``tenure_months``, ``monthly_charges``, ``total_charges`` (blank for the 11
    customers with tenure 0: set to 0.0, they have not been billed yet), ``senior_citizen`` (0/1),
    ``internet_service``, ``payment_method``, ...).
    """
    file = _locate(path, "telco_customer_churn.csv", "telco_churn")
    raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    required = {"customer_id", "tenure", "Contract", "Churn", "MonthlyCharges", "TotalCharges"}
    missing = sorted(required - set(raw.columns))
    if missing:
        raise ValueError(f"{file} lacks Telco columns {missing}; is it the IBM Telco Customer Churn CSV?")
    churn = raw["Churn"].str.strip().str.lower()
    if not churn.isin(["yes", "no"]).all():
        bad = raw.loc[~churn.isin(["yes", "no"]), "Churn"].iloc[0]
        raise ValueError(f"{file}: Churn must be Yes or No, found {bad!r}")
    tenure = pd.to_numeric(raw["tenure"], errors="raise").astype(np.int64)
    total = pd.to_numeric(raw["TotalCharges"].str.strip().replace("", "0"), errors="raise").astype(float)
    out = pd.DataFrame({
        "customer_id": raw["customer_id"].str.strip().astype(object),
        "signup_at": TELCO_SNAPSHOT_AT - pd.to_timedelta(np.round(tenure * _DAYS_PER_MONTH), unit="D"),
        "consent_personalization": True,
        "plan": raw["Contract"].str.strip().str.lower().str.replace(" ", "_").astype(object),
        "churned": churn.eq("yes"),
    })
    skip = {"customer_id", "Contract", "Churn", "tenure", "TotalCharges"}
    for col in raw.columns:
        if col in skip:
            continue
        name = _snake(col)
        values = raw[col].str.strip()
        numeric = pd.to_numeric(values, errors="coerce")
        out[name] = numeric if numeric.notna().all() else values.astype(object)
    out["tenure_months"] = tenure
    out["total_charges"] = total
    out["senior_citizen"] = out["senior_citizen"].astype(np.int64) if "senior_citizen" in out else 0
    return conform(out, "customers")


def read_movielens(path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """MovieLens (``ratings.csv`` + ``movies.csv``) as canonical customers, items, events.

    Parameters
    ----------
    path: the MovieLens folder (``ml-latest-small``), or the folder holding ``movielens_small/``.

    Returns
    -------
    customers: one row per user: ``customer_id`` = userId, ``signup_at`` = first rating,
        consent True (research data, no consent field).
    items: one row per movie of ``movies.csv`` (plus any rated movie missing from it):
        ``item_id`` = movieId, ``category`` = first genre (``unknown`` when none listed),
        ``price`` 0.0, ``available`` True, extras ``title`` and ``genres``.
    events: one row per rating, in file order: ``event_id`` = ``ml-<0-based rating row>``,
        ``event_type`` = ``purchase`` when rating >= 4 else ``view``, ``rating`` kept.
    """
    ratings_file = _locate(path, "ratings.csv", "movielens_small")
    ratings = pd.read_csv(ratings_file, dtype={"userId": str, "movieId": str, "rating": float, "timestamp": np.int64})
    movies_file = ratings_file.parent / "movies.csv"
    movies = (pd.read_csv(movies_file, dtype=str, keep_default_na=False) if movies_file.is_file()
              else pd.DataFrame({"movieId": [], "title": [], "genres": []}))
    at = pd.to_datetime(ratings["timestamp"], unit="s", utc=True)
    events = pd.DataFrame({
        "event_id": ("ml-" + pd.Series(np.arange(len(ratings))).astype(str)).to_numpy(dtype=object),
        "customer_id": ratings["userId"].to_numpy(dtype=object),
        "event_at": at,
        "event_type": np.where(ratings["rating"].to_numpy() >= 4.0, "purchase", "view").astype(object),
        "item_id": ratings["movieId"].to_numpy(dtype=object),
        "rating": ratings["rating"].to_numpy(dtype=float),
    })
    first = events.groupby("customer_id", sort=True)["event_at"].min()
    customers = pd.DataFrame({"customer_id": first.index.to_numpy(dtype=object), "signup_at": first.to_numpy(),
                              "consent_personalization": True})
    genre = movies["genres"].str.split("|").str[0]
    genre = genre.where(~genre.isin(["", "(no genres listed)"]), "unknown")
    items = pd.DataFrame({
        "item_id": movies["movieId"].to_numpy(dtype=object),
        "category": genre.to_numpy(dtype=object),
        "price": 0.0,
        "available": True,
        "title": movies["title"].to_numpy(dtype=object),
        "genres": movies["genres"].to_numpy(dtype=object),
    })
    rated = pd.Index(events["item_id"].unique())
    unlisted = rated[~rated.isin(items["item_id"])].to_numpy(dtype=object)
    if len(unlisted):
        logger.warning("%d rated movies are missing from movies.csv; added with category 'unknown'", len(unlisted))
        items = pd.concat([items, pd.DataFrame({"item_id": unlisted.astype(object), "category": "unknown",
                                                "price": 0.0, "available": True, "title": "", "genres": ""})],
                          ignore_index=True)
    return conform(customers, "customers"), conform(items, "items"), conform(events, "events")


def read_cdnow(path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """CDNOW transactions as canonical customers, one synthetic item, and purchase events.

    Parameters
    ----------
    path: ``CDNOW_master.txt``, its folder, or the folder holding ``cdnow/``. Whitespace
        separated ``customer_id date(YYYYMMDD) number_of_cds dollar_value``; a header line is
        allowed.

    Returns
    -------
    customers: ``customer_id`` as in the file (zero-padded), ``signup_at`` = first purchase,
        consent True.
    items: one row, :data:`CDNOW_ITEM_ID` (category ``music``, price = median dollars per CD):
        the data names no products, so it suits churn, not recommendations.
    events: one ``purchase`` per line: ``event_id`` = ``cdnow-<1-based data line>``,
        ``event_at`` = the date at 12:00 UTC, ``quantity`` = CDs, ``amount`` = dollars.
    """
    file = _locate(path, "CDNOW_master.txt", "cdnow")
    raw = pd.read_csv(file, sep=r"\s+", header=None, names=["customer_id", "date", "cds", "dollars"], dtype=str,
                      engine="c")
    data = raw[raw["customer_id"].str.fullmatch(r"\d+")].reset_index(drop=True)
    if data.empty:
        raise ValueError(f"{file} holds no CDNOW rows (customer_id date number_of_cds dollar_value)")
    at = pd.to_datetime(data["date"], format="%Y%m%d", utc=True) + pd.Timedelta(hours=CDNOW_PURCHASE_HOUR)
    cds = pd.to_numeric(data["cds"], errors="raise").astype(float)
    dollars = pd.to_numeric(data["dollars"], errors="raise").astype(float)
    events = pd.DataFrame({
        "event_id": ("cdnow-" + pd.Series(np.arange(1, len(data) + 1)).astype(str)).to_numpy(dtype=object),
        "customer_id": data["customer_id"].to_numpy(dtype=object),
        "event_at": at,
        "event_type": "purchase",
        "item_id": CDNOW_ITEM_ID,
        "quantity": cds,
        "amount": dollars,
    })
    first = events.groupby("customer_id", sort=True)["event_at"].min()
    customers = pd.DataFrame({"customer_id": first.index.to_numpy(dtype=object), "signup_at": first.to_numpy(),
                              "consent_personalization": True})
    per_cd = (dollars / cds.where(cds > 0)).dropna()
    items = pd.DataFrame({"item_id": [CDNOW_ITEM_ID], "category": ["music"],
                          "price": [round(float(per_cd.median()) if len(per_cd) else 0.0, 2)], "available": [True]})
    return conform(customers, "customers"), conform(items, "items"), conform(events, "events")


def read_snapshot(path: Path | str, label_column: str) -> pd.DataFrame:
    """A generic churn snapshot CSV/Parquet (one row per customer, a yes/no label) as raw rows.

    Only reads; validation (and the label's parsing into ``churned``) happens in
    :func:`features.contract.validate_frame` with ``label_column``, as ``tenure ingest customers
    FILE --label-column COL`` does.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path, dtype=str)
    if label_column not in frame.columns:
        raise ValueError(f"{path} has no label column {label_column!r}; columns: {list(frame.columns)}")
    return frame
