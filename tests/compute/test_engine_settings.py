"""The compute section: bad values are refused with the setting's name; the default engine is local."""

from __future__ import annotations

import pytest

from tenure.settings import SettingsError, load_settings


def test_default_engine_is_local():
    assert load_settings(None).compute.engine == "local"


@pytest.mark.parametrize(("values", "named"), [
    ({"scheduler_address": "scheduler:8786"}, "compute.scheduler_address"),
    ({"engine": "spark"}, "compute.engine"),
    ({"partitions": 0}, "compute.partitions"),
])
def test_bad_compute_settings_are_named(values, named):
    with pytest.raises(SettingsError) as error:
        load_settings(None, compute=values)
    assert named in str(error.value) and f"TENURE_{named.upper().replace('.', '__')}" in str(error.value)


def test_engine_from_the_environment(monkeypatch):
    monkeypatch.setenv("TENURE_COMPUTE__ENGINE", "dask")
    monkeypatch.setenv("TENURE_COMPUTE__SCHEDULER_ADDRESS", "tcp://scheduler:8786")
    compute = load_settings(None).compute
    assert (compute.engine, compute.scheduler_address) == ("dask", "tcp://scheduler:8786")
