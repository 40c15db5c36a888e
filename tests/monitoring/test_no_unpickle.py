"""`tenure monitor` scores with the pickle-free runtime: a booby-trapped pickle in the champion's
files is never loaded (anyone who can write the artefact store must not run code in monitoring)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tenure.monitoring import run_monitoring_pass
from tenure.registry.champion import ModelCache


class _Trap:
    """Unpickling this creates ``marker`` (what an attacker's payload would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_monitoring_never_unpickles_the_champion(churn_workspace, trained_churn, tmp_path):
    cache = ModelCache.from_settings(churn_workspace)
    version = cache.alias_version("churn")
    model_dir = cache.download("churn", version)
    pickles = sorted(model_dir.rglob("*.pkl"))
    assert pickles, "the MLflow model folder is expected to hold the pyfunc wrapper's pickle"
    marker = tmp_path / "unpickled"
    originals = {p: p.read_bytes() for p in pickles}
    try:
        for path in pickles:
            path.write_bytes(pickle.dumps(_Trap(marker)))
        result = run_monitoring_pass(churn_workspace, mode="snapshot", dry_run=True,
                                     retrain=lambda: pytest.fail("must not retrain"))
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
    assert result.model_version == version
    assert result.drift is not None  # the pass scored the snapshot
    assert not marker.exists()
