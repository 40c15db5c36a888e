"""Typed customer attributes: the extra columns of a customers file, each a number, a flag, a category or nothing.

A customers file may carry any number of columns beyond the contract (``monthly_charges``,
``contract``, ``senior_citizen``, ``notes``, ...). Ingestion decides once per column how it is
used, stores the decision beside the tables and keeps it for every later file, so customers
ingested next month (without a label) are typed like the ones the model was trained on.

Types (:data:`ATTRIBUTE_TYPES`)
-------------------------------
- ``numeric``: every non-blank value is a number (``"29.85"``, ``" "`` -> NaN, like Telco's
  ``TotalCharges``). Stored as float64.
- ``boolean``: every non-blank value is one of true/false, yes/no, y/n, t/f, 1/0 (any case, a
  trailing dot allowed: ``True.``). Stored as pandas ``boolean``; a feature as 1.0 / 0.0.
- ``category``: text with at most ``data.max_category_levels`` distinct values, and fewer
  distinct values than half the rows. Stored as strings; a categorical feature.
- ``ignore``: ids (unique integers under an id-like name), high-cardinality text, free text,
  empty columns. Stored as strings (nothing is lost) but never used as a feature.

``settings.data.attribute_types`` overrides the inference per column. Pure functions except
:func:`read_attribute_types` / :func:`write_attribute_types` (the JSON beside the tables) and
:func:`write_attribute_table` (the Parquet Feast reads).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tenure.settings import Settings

logger = logging.getLogger(__name__)

ATTRIBUTE_TYPES: tuple[str, ...] = ("numeric", "boolean", "category", "ignore")
"""The types an extra customer column can have."""

TYPES_FILE = "customer_attribute_types.json"
"""Under ``settings.paths.tables_dir``: ``{column: type}`` decided at the first ingest of each column."""

ATTRIBUTE_TABLE = "customer_attributes.parquet"
"""Under ``settings.paths.features_dir``: one row per customer, the attribute features Feast serves."""

TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0", "0.0"})

_ID_WORDS = frozenset({"id", "uuid", "guid", "key", "number", "no", "num", "index", "row", "rownumber"})


def _id_like_name(name: str) -> bool:
    """``customerID``, ``row_number``, ``Account No``: the last word of the name is an id word."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip()).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", snake) if w]
    return bool(words) and words[-1] in _ID_WORDS


def _text(values: pd.Series) -> pd.Series:
    """Values as stripped strings, blanks as missing (object dtype)."""
    text = values.astype("string").str.strip()
    return text.where(text != "", pd.NA)


def _bool_tokens(text: pd.Series) -> pd.Series:
    """Lower-cased tokens with one trailing dot removed (``True.`` -> ``true``)."""
    return text.str.lower().str.replace(r"\.$", "", regex=True)


def infer_attribute_type(values: pd.Series, name: str, max_levels: int = 100) -> tuple[str, str]:
    """How one extra column is used, and why.

    Parameters
    ----------
    values: the column as read (strings from a CSV, or typed values from Parquet), one per row.
    name: its name (an id-like name with unique integers is an id).
    max_levels: most distinct values a category may have.

    Returns
    -------
    (type, reason): one of :data:`ATTRIBUTE_TYPES`, and a short reason for people.
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return "boolean", "true/false values"
    text = _text(values)
    present = text.dropna()
    if present.empty:
        return "ignore", "no values"
    tokens = _bool_tokens(present)
    distinct_tokens = set(tokens.unique())
    if distinct_tokens <= (TRUE_TOKENS | FALSE_TOKENS) and len(distinct_tokens) <= 2:
        return "boolean", "yes/no values (" + "/".join(sorted(present.unique().astype(str))[:4]) + ")"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        unique_ints = bool((numbers == np.floor(numbers)).all()) and numbers.is_unique and len(numbers) >= 20
        if unique_ints and _id_like_name(name):
            return "ignore", "looks like an id (unique whole numbers)"
        blanks = int(text.isna().sum())
        return "numeric", "numbers" + (f" ({blanks} blank -> missing)" if blanks else "")
    levels = int(present.nunique())
    if levels <= max_levels and levels < max(2, len(present) // 2):
        return "category", f"{levels} distinct values"
    if present.is_unique:
        return "ignore", "one distinct value per row (an id or a name)"
    return "ignore", f"{levels} distinct values (more than data.max_category_levels={max_levels}) or free text"


def infer_attribute_types(frame: pd.DataFrame, columns: list[str], overrides: Mapping[str, str] | None = None,
                          known: Mapping[str, str] | None = None, max_levels: int = 100
                          ) -> dict[str, tuple[str, str]]:
    """Types of ``columns`` of ``frame``: an override wins, then a type stored earlier, then inference.

    Returns
    -------
    dict ``{column: (type, reason)}`` in the order of ``columns``.
    """
    overrides = dict(overrides or {})
    known = dict(known or {})
    out: dict[str, tuple[str, str]] = {}
    for column in columns:
        if column in overrides:
            kind = overrides[column]
            if kind not in ATTRIBUTE_TYPES:
                raise ValueError(f"data.attribute_types.{column} must be one of {', '.join(ATTRIBUTE_TYPES)}, "
                                 f"got {kind!r}")
            out[column] = (kind, "set in data.attribute_types")
        elif column in known:
            out[column] = (known[column], "as stored by an earlier ingest")
        else:
            out[column] = infer_attribute_type(frame[column], str(column), max_levels)
    return out


def parse_attribute(values: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray]:
    """One column in its type, and which rows hold a value that does not fit it.

    Returns
    -------
    (typed, bad): the typed column (float64 for numeric, ``boolean`` for boolean, object strings
    otherwise, missing where blank or bad) and a bool array of shape (n_rows,): non-blank values
    that are not a number (numeric) or not a yes/no token (boolean).
    """
    if kind == "numeric":
        if pd.api.types.is_bool_dtype(values.dtype):
            values = values.astype(float)
        if pd.api.types.is_numeric_dtype(values.dtype):
            return values.astype(np.float64), np.zeros(len(values), dtype=bool)
        text = _text(values)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = (text.notna() & numbers.isna()).to_numpy(dtype=bool)
        return numbers.astype(np.float64), bad
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean"), np.zeros(len(values), dtype=bool)
        text = _text(values)
        tokens = _bool_tokens(text)
        out = pd.Series(pd.NA, index=values.index, dtype="boolean")
        out[tokens.isin(TRUE_TOKENS).fillna(False).to_numpy(dtype=bool)] = True
        out[tokens.isin(FALSE_TOKENS).fillna(False).to_numpy(dtype=bool)] = False
        bad = (text.notna() & out.isna()).to_numpy(dtype=bool)
        return out, bad
    text = _text(values)
    return text.astype(object).where(text.notna(), None), np.zeros(len(values), dtype=bool)


def feature_columns(types: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names of typed attributes (booleans are numeric 0/1; ignored left out)."""
    numeric = [c for c, k in types.items() if k in ("numeric", "boolean")]
    categorical = [c for c, k in types.items() if k == "category"]
    return numeric, categorical


def attribute_features(customers: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """Customers -> ``customer_id`` + one feature column per used attribute.

    Numeric attributes are float64, booleans 1.0 / 0.0 (NaN when missing), categories strings
    (None when missing), exactly what Feast stores and serves for them.

    Returns
    -------
    DataFrame, one row per customer, in the input order.
    """
    numeric, categorical = feature_columns(types)
    data: dict[str, object] = {"customer_id": customers["customer_id"].astype(str).to_numpy(dtype=object)}
    for column in numeric:
        values = customers[column] if column in customers.columns else pd.Series(np.nan, index=customers.index)
        if types[column] == "boolean":
            values = values.astype("boolean").astype("Float64")
        data[column] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    for column in categorical:
        values = customers[column] if column in customers.columns else pd.Series(None, index=customers.index)
        text = _text(values)
        data[column] = text.astype(object).where(text.notna(), None).to_numpy(dtype=object)
    return pd.DataFrame(data)


# --- stored decisions ------------------------------------------------------------------------------

def types_path(settings: Settings) -> Path:
    """Where the attribute types of this workspace are kept."""
    return Path(settings.paths.tables_dir) / TYPES_FILE


def read_attribute_types(settings: Settings) -> dict[str, str]:
    """``{column: type}`` stored by earlier ingests, overridden by ``settings.data.attribute_types`` ({} when none)."""
    path = types_path(settings)
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored.update(settings.data.attribute_types)
    return stored


def write_attribute_types(settings: Settings, types: Mapping[str, str]) -> Path:
    """Merge ``types`` into the stored decisions (atomically); returns the file."""
    path = types_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored.update(types)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def served_attribute_types(settings: Settings, reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """The used attributes (not ``ignore``) of the stored customers, minus names in ``reserved``.

    ``reserved`` are feature names other views already serve (e.g. activity features): an
    attribute with such a name is left out with a warning.
    """
    types = {c: k for c, k in read_attribute_types(settings).items() if k != "ignore"}
    clash = sorted(set(types) & set(reserved))
    if clash:
        logger.warning("customer attributes %s share names with computed features and are not served; "
                       "rename them with settings.columns.customers", clash)
    return {c: k for c, k in types.items() if c not in reserved}


def write_attribute_table(settings: Settings, reserved: tuple[str, ...] = ()) -> tuple[Path, dict[str, str]] | None:
    """Write the attribute features of every stored customer for Feast (``features_dir/customer_attributes.parquet``).

    ``event_timestamp`` is the customer's ``signup_at`` (attributes are known from sign-up on),
    or the time of this call when it is unknown (snapshot files have no sign-up time);
    ``created`` is the time of this call, so a re-ingested customer's new values win.

    Returns
    -------
    (path, types) or None when no customer has a used attribute (nothing is written).
    """
    from tenure.features.tables import read_customers

    types = served_attribute_types(settings, reserved)
    if not types:
        return None
    customers = read_customers(settings, missing_ok=True)
    if customers.empty:
        return None
    frame = attribute_features(customers, types)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    signup = pd.to_datetime(customers["signup_at"], utc=True)
    frame.insert(1, "event_timestamp", signup.where(signup.notna(), now).dt.as_unit("ns").to_numpy())
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["created"] = now
    path = Path(settings.paths.features_dir) / ATTRIBUTE_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    logger.info("wrote %d customers' attributes (%d features) to %s", len(frame), len(types), path)
    return path, types
