"""Validation of untrusted rows against the data contract: typed values out, located rejects beside them.

Each problem becomes one reject ``(file, row, column, value, reason)``; ``row`` is the 1-based
data row (the header is not counted: data row n of a CSV is on line n + 1; in a JSON-lines file
it is the line number; in Parquet the row position + 1). A problem with the file itself (a
missing required column, a column the events contract does not know) has no row and rejects
every row of the file. Checks are vectorised: parsing with pandas/pyarrow, value rules with a
pandera schema, keys and references with hash look-ups.

Rules
-----
- ids: non-empty strings (integers are accepted and turned into strings).
- timestamps: ISO 8601 with a UTC offset (``2026-03-01T09:30:00Z``, ``...+02:00``), stored in
  UTC; a time without an offset is *rejected* as naive, as is a date without a time.
- ``event_type`` in :data:`tenure.settings.EVENT_TYPES`; ``event_id`` unique within a file.
- numbers: finite only (``inf``, ``Infinity``, ``1e309`` are rejected; a blank is missing);
  ``price``, ``amount``, ``quantity``, ``resolution_hours``, ``rating`` >= 0;
  ``nps`` in 0..10, ``csat`` in 1..5.
- event times within :class:`TimeBounds` (``settings.events``: not before ``earliest``, at most
  ``max_future_hours`` ahead of the clock); a date the store cannot hold (year 0001 or 9999)
  is "out of range", not "unparseable".
- booleans: true/false, yes/no, 1/0, t/f, y/n (any case).
- events must name a known customer and, when ``item_id`` is set, a known item.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tenure.features.schema import (
    EVENT_TYPES,
    EXPOSURE_EVENT,
    IMPRESSION_SEPARATOR,
    TABLES,
    Column,
    TableSpec,
)

logger = logging.getLogger(__name__)

REJECT_COLUMNS: tuple[str, ...] = ("file", "row", "column", "value", "reason")
"""Columns of a rejects file."""

_AWARE_PATTERN = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|UTC|[+-]\d{2}(:?\d{2})?)$"
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


@dataclass
class ValidationResult:
    """Outcome of validating one frame (or chunk) of a file.

    Attributes
    ----------
    table: ``customers``, ``items`` or ``events``.
    source: the file (or source name) the rows came from.
    rows_read: rows looked at.
    valid: DataFrame of the accepted rows in canonical shape (one row per accepted row).
    rejects: DataFrame with :data:`REJECT_COLUMNS`, one row per problem (a row can have several).
    rejected_rows: number of distinct rows rejected.
    file_error: a problem with the file as a whole (then nothing is accepted), else None.
    reasons: problems counted by reason (without specifics).
    valid_rows: array of shape (len(valid),), the data row number of each accepted row.
    """

    table: str
    source: str
    rows_read: int
    valid: pd.DataFrame
    rejects: pd.DataFrame
    rejected_rows: int
    file_error: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    valid_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def empty_rejects() -> pd.DataFrame:
    """An empty rejects frame."""
    return pd.DataFrame({c: pd.Series([], dtype=object if c != "row" else "Int64") for c in REJECT_COLUMNS})


def _reason_key(reason: str) -> str:
    """The reason without its specifics, for counting ("unknown customer_id", "nps outside 0..10")."""
    return reason.split(" (", 1)[0].split(": ", 1)[0]


class _Rejects:
    """Collects problems as parallel arrays (no per-row Python)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[pd.DataFrame] = []

    def add(self, rows: np.ndarray, column: str, values: Iterable, reason: str | np.ndarray) -> None:
        rows = np.asarray(rows)
        if len(rows) == 0:
            return
        vals = pd.Series(list(values) if not isinstance(values, (pd.Series, np.ndarray)) else values)
        vals = vals.astype(str).str.slice(0, 200).to_numpy(dtype=object)
        vals[pd.isna(pd.Series(values).to_numpy(dtype=object))] = ""
        self.parts.append(pd.DataFrame({
            "file": self.source,
            "row": pd.array(rows, dtype="Int64"),
            "column": column,
            "value": vals,
            "reason": reason,
        }))

    def add_file_error(self, column: str, reason: str) -> None:
        self.parts.append(pd.DataFrame({"file": [self.source], "row": pd.array([pd.NA], dtype="Int64"),
                                        "column": [column], "value": [""], "reason": [reason]}))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return empty_rejects()
        out = pd.concat(self.parts, ignore_index=True)
        # one problem per (row, column): the first (parsing) reason wins over later value rules
        located = out["row"].notna()
        dedup = out[located].drop_duplicates(["row", "column"], keep="first")
        return pd.concat([out[~located], dedup], ignore_index=True)


def apply_mapping(frame: pd.DataFrame, mapping: Mapping[str, str] | None) -> pd.DataFrame:
    """Rename user columns to canonical ones (``{source_name: canonical_name}``)."""
    if not mapping:
        return frame
    missing = [src for src in mapping if src not in frame.columns]
    if missing:
        logger.debug("column mapping names columns not in the file: %s", missing)
    return frame.rename(columns={k: v for k, v in mapping.items() if k in frame.columns})


# ------------------------------------------------------------------ parsing, one column at a time

def _all_strings(values: pd.Series) -> bool:
    """True when an object column holds only str (or missing) values: a C-level check."""
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")


def _clean_strings(values: pd.Series) -> pd.Series:
    """Strings with surrounding blanks trimmed and empty strings as None (vectorised with Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    if pc.any(pc.match_substring_regex(arr, r"^\s|\s$")).as_py():
        trimmed = pc.utf8_trim_whitespace(arr)
        values = pd.Series(trimmed.to_numpy(zero_copy_only=False), index=values.index, dtype=object)
    empty = (values == "").to_numpy()
    if empty.any():
        values = values.where(~empty, None)
    return values


def _parse_id(values: pd.Series, rows: np.ndarray, col: Column, rej: _Rejects) -> pd.Series:
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        out = values.astype(str).astype(object)
        if values.isna().any():
            out = out.where(values.notna(), None)
        return out
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.notna() & (values == np.floor(values))
        out = pd.Series(None, index=values.index, dtype=object)
        out[whole] = values[whole].astype(np.int64).astype(str)
        bad = values.notna() & ~whole
        rej.add(rows[bad.to_numpy()], col.name, values[bad], f"{col.name} must be a string id, got a number")
        return out.where(~bad, None)
    if values.dtype != object:
        values = values.astype(object).where(values.notna(), None)
    if not _all_strings(values):
        kinds = values.map(type, na_action="ignore")
        is_int = kinds.isin([int, np.int64]).to_numpy()
        still_bad = values.notna().to_numpy() & ~kinds.isin([str]).to_numpy() & ~is_int
        rej.add(rows[still_bad], col.name, values[still_bad], f"{col.name} must be a string id")
        values = values.where(~is_int, values.astype(str)).where(~still_bad, None)
    return _clean_strings(values)


def _parse_string(values: pd.Series, rows: np.ndarray, col: Column, rej: _Rejects) -> pd.Series:
    if values.dtype != object:
        mask = values.isna()
        return values.astype(str).astype(object).where(~mask, None)
    if not _all_strings(values):
        values = values.where(values.isna(), values.astype(str))
    return _clean_strings(values)


def _parse_float(values: pd.Series, rows: np.ndarray, col: Column, rej: _Rejects) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype(object)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return _finite(values.astype(np.float64), values, rows, col, rej)
    num = pd.to_numeric(values, errors="coerce")
    bad = (values.notna() & num.isna()).to_numpy()
    if bad.any():
        blank = values[bad].astype(str).str.strip() == ""  # blanks are missing, not errors
        bad[np.flatnonzero(bad)[blank.to_numpy()]] = False
    rej.add(rows[bad], col.name, values[bad], f"{col.name} is not a number")
    return _finite(num.astype(np.float64), values, rows, col, rej)


def _finite(num: pd.Series, values: pd.Series, rows: np.ndarray, col: Column, rej: _Rejects) -> pd.Series:
    """``num`` with infinities rejected (and blanked): ``inf``, ``Infinity`` and ``1e309`` are not amounts."""
    inf = np.isinf(num.to_numpy())
    if not inf.any():
        return num
    rej.add(rows[inf], col.name, values[inf], f"{col.name} is not a finite number")
    return num.where(~inf, np.nan)


def _parse_bool(values: pd.Series, rows: np.ndarray, col: Column, rej: _Rejects) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype) and not isinstance(values.dtype, pd.BooleanDtype):
        return values.astype(object)
    text = values.where(values.isna(), values.astype(str).str.strip().str.lower())
    out = pd.Series(None, index=values.index, dtype=object)
    is_true = text.isin(_TRUE)
    is_false = text.isin(_FALSE)
    out[is_true] = True
    out[is_false] = False
    present = values.notna() & (text != "")
    bad = present & ~is_true & ~is_false
    rej.add(rows[bad.to_numpy()], col.name, values[bad], f"{col.name} is not a boolean (use true/false)")
    return out


def _parse_timestamp(values: pd.Series, rows: np.ndarray, col: Column, rej: _Rejects) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        present = values.notna()
        rej.add(rows[present.to_numpy()], col.name, values[present],
                f"naive timestamp: {col.name} has no UTC offset (store tz-aware UTC times)")
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _clean_strings(values if _all_strings(values) else values.where(values.isna(), values.astype(str)))
    present = text.notna()
    arrow = pa.array(text.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    aware = pc.match_substring_regex(arrow, _AWARE_PATTERN).fill_null(False).to_numpy(zero_copy_only=False)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    unparseable = present.to_numpy() & parsed.isna().to_numpy()
    naive = present.to_numpy() & ~unparseable & ~aware
    out_of_range = np.zeros(len(text), dtype=bool)
    for i in np.flatnonzero(unparseable):  # only the failures: a valid ISO date the store cannot hold?
        out_of_range[i] = _iso_outside_store(text.iloc[i])
    unparseable &= ~out_of_range
    rej.add(rows[out_of_range], col.name, values[out_of_range],
            f"{col.name} out of range: the year must be within 1678..2261 (and within events.earliest .. "
            f"events.max_future_hours for event times)")
    rej.add(rows[unparseable], col.name, values[unparseable],
            f"unparseable timestamp: {col.name} must be ISO 8601 like 2026-03-01T09:30:00Z")
    rej.add(rows[naive], col.name, values[naive],
            f"naive timestamp: {col.name} has no UTC offset (add Z or +00:00)")
    parsed = parsed.where(~naive, pd.NaT)
    return parsed.astype("datetime64[ns, UTC]")


def _iso_outside_store(text: str) -> bool:
    """True when ``text`` is a valid ISO 8601 time that nanosecond timestamps cannot hold (years 0001, 9999)."""
    from datetime import datetime

    try:
        datetime.fromisoformat(str(text).strip().replace("z", "Z"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TimeBounds:
    """The accepted range of event times: ``earliest`` .. clock + ``max_future`` (evaluated per call)."""

    earliest: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("1990-01-01", tz="UTC"))
    max_future: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(hours=24))

    @classmethod
    def from_settings(cls, settings) -> TimeBounds:
        """``settings.events``'s bounds."""
        return cls(pd.Timestamp(settings.events.earliest).tz_convert("UTC"),
                   pd.Timedelta(hours=settings.events.max_future_hours))

    def check(self, times: pd.Series, rows: np.ndarray, column: str, rej: _Rejects, values: pd.Series) -> None:
        """Reject times before ``earliest`` or after now + ``max_future``, one precise reason each."""
        latest = pd.Timestamp.now(tz="UTC") + self.max_future
        stamps = times.to_numpy(dtype="datetime64[ns]")
        present = ~np.isnat(stamps)
        early = present & (stamps < self.earliest.tz_convert(None).to_datetime64())
        late = present & (stamps > latest.tz_convert(None).to_datetime64())
        hours = _fmt(self.max_future / pd.Timedelta(hours=1))
        rej.add(rows[early], column, values[early],
                f"{column} out of range: before {self.earliest:%Y-%m-%dT%H:%M}Z, the earliest accepted time "
                f"(events.earliest)")
        rej.add(rows[late], column, values[late],
                f"{column} out of range: more than {hours} h ahead of the clock (latest accepted "
                f"{latest:%Y-%m-%dT%H:%M}Z; events.max_future_hours)")


DEFAULT_TIME_BOUNDS = TimeBounds()


_PARSERS = {
    "id": _parse_id,
    "string": _parse_string,
    "float": _parse_float,
    "bool": _parse_bool,
    "timestamp": _parse_timestamp,
}


# ------------------------------------------------------------------ value rules (pandera)

def _pandera_schema(spec: TableSpec, present: Iterable[str], nullable_override: set[str],
                    required_override: set[str]):
    import pandera.pandas as pa

    columns = {}
    for name in present:
        col = spec.column(name)
        checks = []
        if col.kind == "float" and (col.min_value is not None or col.max_value is not None):
            if col.min_value is not None and col.max_value is not None:
                checks.append(pa.Check.in_range(col.min_value, col.max_value))
            elif col.min_value is not None:
                checks.append(pa.Check.ge(col.min_value))
            else:
                checks.append(pa.Check.le(col.max_value))
        if name == "event_type":
            checks.append(pa.Check.isin(list(EVENT_TYPES)))
        nullable = (col.nullable or name in nullable_override) and name not in required_override
        columns[name] = pa.Column(checks=checks, nullable=nullable, coerce=False, required=True)
    return pa.DataFrameSchema(columns, coerce=False, strict=False)


def _describe(column: str, check: str, spec: TableSpec) -> str:
    if check == "not_nullable":
        return f"missing value: {column} is required"
    col = spec.column(column)
    if check.startswith("isin"):
        return f"unknown event_type (allowed: {', '.join(EVENT_TYPES)})"
    if col.min_value is not None and col.max_value is not None:
        lo, hi = _fmt(col.min_value), _fmt(col.max_value)
        return f"{column} outside {lo}..{hi}"
    if col.min_value is not None:
        return f"negative {column}" if col.min_value == 0 else f"{column} below {_fmt(col.min_value)}"
    return f"{column} fails {check}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def validate_frame(
    raw: pd.DataFrame,
    table: str,
    source: str = "<frame>",
    rows: np.ndarray | None = None,
    known_customers: pd.Index | np.ndarray | None = None,
    known_items: pd.Index | np.ndarray | None = None,
    mapping: Mapping[str, str] | None = None,
    label_column: str | None = None,
    check_references: bool = True,
    snapshot: bool = False,
    attribute_types: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
    time_bounds: TimeBounds | None = None,
) -> ValidationResult:
    """Validate rows of one table and split them into canonical accepted rows and rejects.

    Parameters
    ----------
    raw: DataFrame, one row per input row, as read (strings or typed values).
    table: ``customers``, ``items`` or ``events``.
    source: the file name written into rejects.
    rows: 1-based data row numbers of ``raw`` (default ``1..len(raw)``).
    known_customers, known_items: ids an event may refer to (events only). ``None`` with
        ``check_references`` True means "none known".
    mapping: ``{source_name: canonical_name}`` renames applied first (``settings.columns``).
    label_column: customers only: a snapshot file with a churn label in this column (yes/no,
        true/false, 1/0), stored as ``churned``; ``signup_at`` and ``consent_personalization``
        become optional (consent defaults to True).
    check_references: check events' customer and item ids against the known ids.
    snapshot: customers only: more customers of a labelled snapshot (the workspace holds
        labels), without a label: ``signup_at`` and ``consent_personalization`` are optional,
        as with ``label_column``.
    attribute_types: customers only: ``{extra column: numeric | boolean | category | ignore}``
        (:mod:`features.attributes`); each such column is stored in its type, and a value that
        does not fit (text in a numeric column, ``maybe`` in a yes/no one) rejects its row.
    defaults: ``{canonical column: value}`` for optional columns the file lacks
        (``settings.data.column_defaults``); a column filled this way is logged as a warning.
        ``items.price`` is NaN when absent, with a warning, without a default.
    time_bounds: the accepted range of ``event_at`` (events only; default
        :data:`DEFAULT_TIME_BOUNDS`; pass ``TimeBounds.from_settings(settings)``).

    Returns
    -------
    ValidationResult
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(TABLES)}")
    spec = TABLES[table]
    if label_column is not None and table != "customers":
        raise ValueError("label_column only applies to the customers table")
    n = len(raw)
    rows = np.arange(1, n + 1, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) != n:
        raise ValueError(f"rows holds {len(rows)} numbers for {n} rows")
    rej = _Rejects(source)
    frame = apply_mapping(raw, mapping)
    if label_column is not None:
        if label_column not in frame.columns:
            return _file_failure(spec, source, n, rej, label_column,
                                 f"missing label column {label_column!r} (columns: {list(frame.columns)})")
        frame = frame.rename(columns={label_column: "churned"})

    frame, filled = _fill_absent(frame, spec, source, defaults)
    if table == "events" and "impressions" in frame.columns:
        frame = _join_impressions(frame, rows, rej)

    # file-level problems
    dupes = frame.columns[frame.columns.duplicated()].tolist()
    if dupes:
        return _file_failure(spec, source, n, rej, ",".join(map(str, dupes)),
                             "duplicate column (after the column mapping)")
    snapshot = table == "customers" and (snapshot or label_column is not None)
    relaxed = {"signup_at", "consent_personalization"} if snapshot else set()
    required = [c for c in spec.required if c not in relaxed]
    missing = [c for c in required if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec.names]
    if missing or (extra and not spec.extra_columns_allowed):
        for c in missing:
            rej.add_file_error(c, f"missing required column {c!r} (map yours with settings.columns.{table})")
        if not spec.extra_columns_allowed:
            for c in extra:
                rej.add_file_error(str(c), f"unexpected column {c!r}: not in the {table} contract "
                                           f"(drop it or map it with settings.columns.{table})")
        problems = [f"missing required column {c!r}" for c in missing] + \
                   ([f"unexpected column(s) {extra}"] if extra and not spec.extra_columns_allowed else [])
        return _finish_file_error(spec, source, n, rej, "; ".join(problems))

    # parse canonical columns
    frame = frame.reset_index(drop=True)
    typed: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name in frame.columns:
            typed[col.name] = _PARSERS[col.kind](frame[col.name], rows, col, rej)
    if snapshot:
        if "consent_personalization" not in typed:
            typed["consent_personalization"] = pd.Series(True, index=frame.index, dtype=object)
        if "signup_at" not in typed:
            typed["signup_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    if "available" in typed:
        typed["available"] = typed["available"].where(typed["available"].notna(), True)
    if table == "events" and "event_at" in typed:
        (time_bounds or DEFAULT_TIME_BOUNDS).check(typed["event_at"], rows, "event_at", rej,
                                                   frame["event_at"].reset_index(drop=True))
    checked = pd.DataFrame(typed)
    checked.index = rows

    # value rules
    import pandera.errors as pae

    schema = _pandera_schema(spec, list(typed), nullable_override=relaxed | filled,
                             required_override={"churned"} if label_column is not None else set())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandera's own concat of failure cases
            schema.validate(checked, lazy=True)
    except pae.SchemaErrors as err:
        fc = err.failure_cases
        fc = fc[fc["index"].notna() & fc["column"].isin(list(typed))]
        for (column, check), grp in fc.groupby(["column", "check"], sort=False):
            reason = _describe(str(column), str(check), spec)
            rej.add(grp["index"].to_numpy(dtype=np.int64), str(column), grp["failure_case"], reason)

    # keys unique within the file
    key = checked[spec.key]
    dup = key.duplicated(keep="first").to_numpy() & key.notna().to_numpy()
    if dup.any():
        first_row = pd.Series(rows, index=key.to_numpy()).groupby(level=0).first()
        first = first_row.reindex(key[dup].to_numpy()).to_numpy()
        reasons = np.array([f"duplicate {spec.key} in file (first at row {r})" for r in first], dtype=object)
        rej.add(rows[dup], spec.key, key[dup], reasons)  # type: ignore[arg-type]

    # references (events)
    if table == "events" and check_references:
        cust_known = _as_index(known_customers)
        unknown_c = checked["customer_id"].notna().to_numpy() & ~checked["customer_id"].isin(cust_known).to_numpy()
        rej.add(rows[unknown_c], "customer_id", checked["customer_id"][unknown_c],
                "unknown customer_id (not in the customers table; ingest customers first)")
        if "item_id" in checked:
            item_known = _as_index(known_items)
            has_item = checked["item_id"].notna().to_numpy()
            unknown_i = has_item & ~checked["item_id"].isin(item_known).to_numpy()
            rej.add(rows[unknown_i], "item_id", checked["item_id"][unknown_i],
                    "unknown item_id (not in the items table; ingest items first)")

    if table == "events":
        _check_exposures(checked, rows, rej, known_items if check_references else None)
        _check_treatments(checked, rows, rej)

    typed_extras = _parse_attributes(frame, spec, rows, rej, attribute_types)

    rejects = rej.frame()
    bad_rows = set() if rejects.empty else set(rejects["row"].dropna().astype(np.int64).tolist())
    bad = np.isin(rows, np.fromiter(bad_rows, dtype=np.int64, count=len(bad_rows)))
    checked = checked.reset_index(drop=True)
    valid = checked[~bad]
    from tenure.features.schema import conform

    valid = conform(valid, table)
    extras = [c for c in frame.columns if c not in spec.names]
    if extras and spec.extra_columns_allowed:
        ext = pd.DataFrame({c: typed_extras.get(c, frame[c]) for c in extras}, index=frame.index)
        ext = ext.loc[~bad].reset_index(drop=True)
        valid = pd.concat([valid, ext], axis=1)
    if label_column is not None:
        valid["churned"] = valid["churned"].astype(bool)
    reasons = rejects["reason"].map(_reason_key).value_counts().to_dict() if len(rejects) else {}
    return ValidationResult(table=table, source=source, rows_read=n, valid=valid, rejects=rejects,
                            rejected_rows=int(bad.sum()), file_error=None, reasons=reasons,
                            valid_rows=rows[~bad])


MAX_IMPRESSIONS = 100
"""Most item ids in one exposure's ``impressions``."""


def _join_impressions(frame: pd.DataFrame, rows: np.ndarray, rej: _Rejects) -> pd.DataFrame:
    """``impressions`` given as lists (POST /events, Parquet list columns) joined into the canonical text.

    A list element that is not a non-empty string, or that holds the separator, rejects its row.
    """
    values = frame["impressions"].reset_index(drop=True)
    is_list = values.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).to_numpy()
    if not is_list.any():
        return frame
    joined = values.astype(object).copy()
    bad = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(is_list):
        items = list(values.iloc[i])
        if all(isinstance(x, str) and x.strip() and IMPRESSION_SEPARATOR not in x for x in items):
            joined.iloc[i] = IMPRESSION_SEPARATOR.join(x.strip() for x in items) if items else None
        else:
            bad[i] = True
            joined.iloc[i] = None
    rej.add(rows[bad], "impressions", values[bad].map(str),
            f"impressions must be a list of item ids (non-empty strings without '{IMPRESSION_SEPARATOR}')")
    frame = frame.copy()
    frame["impressions"] = joined.to_numpy()
    return frame


def _check_exposures(checked: pd.DataFrame, rows: np.ndarray, rej: _Rejects, known_items) -> None:
    """Exposure rules: an exposure names its ``recommendation_id`` and the ``impressions`` shown (known items,
    at most :data:`MAX_IMPRESSIONS`); no other event type carries ``impressions``."""
    types = checked["event_type"].to_numpy(dtype=object) if "event_type" in checked else np.array([], dtype=object)
    exposure = types == EXPOSURE_EVENT
    impressions = checked["impressions"] if "impressions" in checked else pd.Series(None, index=checked.index,
                                                                                    dtype=object)
    has = impressions.notna().to_numpy()
    if not (exposure.any() or has.any()):
        return
    rej.add(rows[has & ~exposure], "impressions", impressions[has & ~exposure],
            "impressions only belong to exposure events")
    rec = checked.get("recommendation_id")
    no_rec = exposure & (rec.isna().to_numpy() if rec is not None else True)
    rej.add(rows[no_rec], "recommendation_id", [""] * int(no_rec.sum()),
            "missing value: an exposure needs the recommendation_id of the list shown")
    rej.add(rows[exposure & ~has], "impressions", [""] * int((exposure & ~has).sum()),
            "missing value: an exposure needs impressions (the item ids shown)")
    item_known = None if known_items is None else set(_as_index(known_items))
    for i in np.flatnonzero(exposure & has):
        shown = str(impressions.iloc[i]).split(IMPRESSION_SEPARATOR)
        if any(not x.strip() for x in shown):
            reason = "empty item id in impressions"
        elif len(shown) > MAX_IMPRESSIONS:
            reason = f"impressions holds {len(shown)} item ids; at most {MAX_IMPRESSIONS}"
        elif item_known is not None and (unknown := [x for x in shown if x not in item_known]):
            reason = f"unknown item_id in impressions: {unknown[0]} (not in the items table; ingest items first)"
        else:
            continue
        rej.add(rows[[i]], "impressions", impressions.iloc[[i]], reason)


def _check_treatments(checked: pd.DataFrame, rows: np.ndarray, rej: _Rejects) -> None:
    """Treatment rules: a treatment names its ``campaign`` and ``arm``; no other event type carries
    ``campaign``, ``arm`` or ``offer``."""
    from tenure.features.schema import TREATMENT_COLUMNS, TREATMENT_EVENT

    if "event_type" not in checked:
        return
    treatment = (checked["event_type"] == TREATMENT_EVENT).to_numpy()
    for name in TREATMENT_COLUMNS:
        if name not in checked:
            values = pd.Series(None, index=checked.index, dtype=object)
        else:
            values = checked[name]
        present = values.notna().to_numpy()
        rej.add(rows[present & ~treatment], name, values[present & ~treatment],
                f"{name} only belongs to treatment events")
        if name != "offer":
            rej.add(rows[treatment & ~present], name, [""] * int((treatment & ~present).sum()),
                    f"missing value: a treatment event needs its {name}")


def _fill_absent(frame: pd.DataFrame, spec: TableSpec, source: str, defaults: Mapping[str, object] | None
                 ) -> tuple[pd.DataFrame, set[str]]:
    """Add optional canonical columns the file lacks from ``defaults`` (and ``price`` as NaN), with a warning.

    Returns the frame and the names filled (their values may be missing, so they are nullable).
    """
    wanted = dict(defaults or {})
    if spec.name == "items":
        wanted.setdefault("price", float("nan"))
    filled: set[str] = set()
    for name, value in wanted.items():
        if name not in spec.names:
            raise ValueError(f"data.column_defaults.{spec.name} names {name!r}, which is not a canonical "
                             f"{spec.name} column ({', '.join(spec.names)})")
        if name in frame.columns:
            continue
        if name in spec.required:
            raise ValueError(f"data.column_defaults.{spec.name}.{name}: {name} is required and cannot be defaulted")
        frame = frame.assign(**{name: value})
        filled.add(name)
        logger.warning("%s has no %s column: every row gets %s = %r (map yours with settings.columns.%s, "
                       "or set data.column_defaults.%s.%s)", source, name, name, value, spec.name, spec.name, name)
    return frame, filled


def _parse_attributes(frame: pd.DataFrame, spec: TableSpec, rows: np.ndarray, rej: _Rejects,
                      attribute_types: Mapping[str, str] | None) -> dict[str, pd.Series]:
    """Extra customer columns in their types (:mod:`features.attributes`); misfits become rejects."""
    if not attribute_types or spec.name != "customers":
        return {}
    from tenure.features.attributes import parse_attribute

    out: dict[str, pd.Series] = {}
    for column in frame.columns:
        kind = attribute_types.get(column)
        if column in spec.names or kind is None:
            continue
        values, wrong = parse_attribute(frame[column], kind)
        if wrong.any():
            what = "a number" if kind == "numeric" else "a yes/no value"
            rej.add(rows[wrong], str(column), frame[column][wrong],
                    f"{column} is not {what} (its type is {kind}; change it in data.attribute_types)")
        out[column] = values
    return out


def _as_index(ids) -> pd.Index:
    if ids is None:
        return pd.Index([], dtype=object)
    return ids if isinstance(ids, pd.Index) else pd.Index(np.asarray(ids, dtype=object))


def _file_failure(spec: TableSpec, source: str, n: int, rej: _Rejects, column: str, reason: str) -> ValidationResult:
    rej.add_file_error(column, reason)
    return _finish_file_error(spec, source, n, rej, reason)


def _finish_file_error(spec: TableSpec, source: str, n: int, rej: _Rejects, message: str) -> ValidationResult:
    from tenure.features.schema import empty_frame

    rejects = rej.frame()
    reasons = rejects["reason"].map(_reason_key).value_counts().to_dict()
    return ValidationResult(table=spec.name, source=source, rows_read=n, valid=empty_frame(spec.name),
                            rejects=rejects, rejected_rows=n, file_error=message, reasons=reasons)
