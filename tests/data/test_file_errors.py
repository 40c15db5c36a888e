"""Files that cannot be read at all: a clean error naming the file, a rejects entry, exit 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def _corrupt_parquet(path: Path) -> Path:
    """A Parquet file whose second row group's data pages are overwritten (footer intact)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"customer_id": [f"c{i}" for i in range(2000)], "signup_at": ["2026-01-01T00:00:00Z"] * 2000,
                      "consent_personalization": [True] * 2000})
    pq.write_table(table, path, row_group_size=1000, compression="snappy")
    meta = pq.ParquetFile(path).metadata.row_group(1)
    start = meta.column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + 200] = b"\xff" * 200
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("name", "make"), [
    ("customers.csv", lambda p: p.write_bytes(b"")),
    ("customers.parquet", lambda p: p.write_bytes(b"")),
    ("events.csv", lambda p: p.write_bytes(b"")),
    ("customers.parquet", _corrupt_parquet),
    ("customers.parquet", lambda p: p.write_bytes(b"PAR1 this is not parquet PAR1")),
    ("customers.csv", lambda p: p.write_bytes(b"customer_id,signup_at\n\xff\xfe,2026\n")),
])
def test_unreadable_files_exit_1_with_the_file_named(cli, tmp_path, name, make):
    path = tmp_path / name
    make(path)
    result = cli("ingest", name.split(".")[0], str(path))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert str(path) in result.output.replace("\n", "")
    rejects = list((tmp_path / "data").rglob("rejects-*.csv"))
    assert len(rejects) == 1
    frame = pd.read_csv(rejects[0])
    assert frame["file"].tolist() == [str(path)] and frame["reason"].str.startswith("unreadable file").all()


def test_header_only_csv_is_an_empty_file_not_an_error(cli, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,signup_at,consent_personalization\n")
    result = cli("ingest", "customers", str(path))
    assert result.exit_code == 0, result.output


def test_event_times_out_of_range_are_rejected_with_a_precise_reason(cli, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,signup_at,consent_personalization\nc1,2025-01-01T00:00:00Z,true\n")
    assert cli("ingest", "customers", str(customers)).exit_code == 0
    events = tmp_path / "events.csv"
    events.write_text("event_id,customer_id,event_at,event_type,amount\n"
                      "e1,c1,2100-01-01T00:00:00Z,view,\n"
                      "e2,c1,1900-01-01T00:00:00Z,view,\n"
                      "e3,c1,9999-01-01T00:00:00Z,view,\n"
                      "e4,c1,0001-01-01T00:00:00Z,view,\n"
                      "e5,c1,2026-01-01T00:00:00Z,purchase,inf\n"
                      "e6,c1,2026-01-01T00:00:00Z,purchase,12.5\n")
    result = cli("ingest", "events", str(events))
    assert result.exit_code == 1
    frame = pd.read_csv(next((tmp_path / "data").rglob("rejects-*.csv")))
    reasons = dict(zip(frame["row"], frame["reason"], strict=True))
    assert "ahead of the clock" in reasons[1] and "events.max_future_hours" in reasons[1]
    assert "before 1990-01-01" in reasons[2]
    assert reasons[3].startswith("event_at out of range") and reasons[4].startswith("event_at out of range")
    assert "finite" in reasons[5]
    assert set(frame["row"]) == {1, 2, 3, 4, 5}
    stored = pd.read_parquet(tmp_path / "data" / "tables" / "events") if (tmp_path / "data" / "tables" / "events").exists() \
        else None
    if stored is not None:
        assert stored["event_id"].tolist() == ["e6"]
