"""Fixtures of the data room's tests: tiny simulated shops (built once) and raw-file writers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tenure.features.simulator import Shop, simulate_shop


@pytest.fixture(scope="session")
def tiny_shop() -> Shop:
    """300 customers x 60 items x 90 days."""
    return simulate_shop(300, 60, 90, seed=7)


@pytest.fixture(scope="session")
def medium_shop() -> Shop:
    """3,000 customers x 200 items x 150 days: enough customers for churn statistics."""
    return simulate_shop(3000, 200, 150, seed=11)


@pytest.fixture(scope="session")
def drift_pair() -> tuple[Shop, Shop]:
    """The same world without and with drift from day 60 of 120."""
    return simulate_shop(2000, 120, 120, seed=5), simulate_shop(2000, 120, 120, seed=5, drift_at=60)


def iso_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO 8601 text with Z (what a user's CSV holds)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    iso_text(frame).to_csv(path, index=False)
    return path


@pytest.fixture
def small_raw(tmp_path: Path) -> dict[str, Path]:
    """A tiny shop (40 customers, 12 items, 20 days) as CSV files; returns table -> path."""
    shop = simulate_shop(40, 12, 20, seed=3)
    folder = tmp_path / "raw"
    folder.mkdir()
    return {
        "customers": write_csv(shop.customers, folder / "customers.csv"),
        "items": write_csv(shop.items, folder / "items.csv"),
        "events": write_csv(shop.events, folder / "events.csv"),
    }
