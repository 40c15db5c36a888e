"""Assignment: stable (across processes and releases), shares as configured, salts independent, holdout apart."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tenure.experiments.assignment import HOLDOUT_ARM, Assigner, UnknownExperimentError, bucket
from tenure.settings import SettingsError, load_settings

IDS = [f"c{i:06d}" for i in range(40_000)]


def _definition(name="winback", shares=(0.5, 0.3, 0.2), salt=None, **extra):
    arms = [{"name": n, "share": s} for n, s in zip(("control", "discount", "message"), shares)]
    return {"name": name, "salt": salt, "arms": arms, **extra}


def _assigner(*definitions, holdout=0.1):
    settings = load_settings(experiments={"holdout_share": holdout, "definitions": list(definitions)})
    return Assigner.from_settings(settings)


def test_bucket_is_pinned_across_releases():
    # a changed hash would silently move running experiments' customers between arms
    assert bucket("winback", "c0001") == pytest.approx(0.05444444213670721, abs=1e-15)
    assert bucket("winback", "c0002") == pytest.approx(0.7839573370475827, abs=1e-15)


def test_same_arms_in_another_process():
    code = ("from tenure.experiments.assignment import Assigner\n"
            "from tenure.settings import load_settings\n"
            "s = load_settings(experiments={'definitions': [{'name': 'winback', 'arms': ["
            "{'name': 'control', 'share': 0.5}, {'name': 'discount', 'share': 0.3}, {'name': 'message', 'share': 0.2}]}]})\n"
            "print(','.join(Assigner.from_settings(s).assign('winback', [f'c{i:06d}' for i in range(500)])))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip().split(",")
    assert other == _assigner(_definition()).assign("winback", IDS[:500])


def test_shares_holdout_and_salts():
    assigner = _assigner(_definition())
    arms = np.array(assigner.assign("winback", IDS))
    n = len(IDS)
    held = arms == HOLDOUT_ARM
    assert abs(held.mean() - 0.1) < 0.01
    inside = arms[~held]
    for arm, share in (("control", 0.5), ("discount", 0.3), ("message", 0.2)):
        assert abs((inside == arm).mean() - share) < 0.015, arm
    assert len(inside) + held.sum() == n
    # a new salt re-randomises: agreement is what chance gives (0.5^2 + 0.3^2 + 0.2^2 = 0.38)
    resalted = np.array(_assigner(_definition(salt="v2")).assign("winback", IDS))
    both = ~held  # the holdout has its own salt and stays
    assert np.array_equal(resalted == HOLDOUT_ARM, held)
    assert abs((resalted[both] == inside).mean() - 0.38) < 0.02


def test_holdout_is_the_same_for_every_experiment_and_answers_say_so():
    assigner = _assigner(_definition(), _definition("second", shares=(0.5, 0.25, 0.25)))
    active = assigner.active("churn")
    assert [e.name for e in active] == ["winback", "second"]
    held = [c for c in IDS[:2000] if assigner.in_holdout(c)]
    assert held and all(assigner.arms(c, active) == {"winback": HOLDOUT_ARM, "second": HOLDOUT_ARM} for c in held)
    free = next(c for c in IDS if not assigner.in_holdout(c))
    assert set(assigner.arms(free, active).values()) <= {"control", "discount", "message"}


def test_only_active_experiments_in_their_window_are_assigned():
    now = datetime.now(UTC)
    assigner = _assigner(_definition("past", end=(now - timedelta(days=1)).isoformat()),
                         _definition("paused", status="paused"),
                         _definition("reco_only", applies_to=["recommend"]),
                         _definition("live", start=(now - timedelta(days=1)).isoformat()))
    assert [e.name for e in assigner.active("churn")] == ["live"]
    assert [e.name for e in assigner.active("recommend")] == ["reco_only", "live"]


@pytest.mark.parametrize("definition, message", [
    (_definition(shares=(0.5, 0.3, 0.3)), "arm shares must sum to 1, got 1.1"),
    ({"name": "x", "arms": [{"name": "control", "share": 0.5}, {"name": "control", "share": 0.5}]},
     "duplicate arm name(s) ['control']"),
    ({"name": "x", "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]},
     "control arm 'control' is not one of its arms"),
    ({"name": "x", "arms": [{"name": "control", "share": 1.0}]}, "at least 2 items"),
    ({"name": "x", "arms": [{"name": "control", "share": 0.5}, {"name": "holdout", "share": 0.5}]},
     "'holdout' is reserved"),
    (_definition(start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z"), "is not after start"),
])
def test_bad_definitions_are_refused_with_a_clear_message(definition, message):
    with pytest.raises(SettingsError) as info:
        load_settings(experiments={"definitions": [definition]})
    assert message in str(info.value) and "experiments.definitions.0" in str(info.value)


def test_duplicate_experiments_and_unknown_names():
    with pytest.raises(SettingsError, match=r"duplicate experiment name\(s\) \['winback'\]"):
        load_settings(experiments={"definitions": [_definition(), _definition()]})
    with pytest.raises(SettingsError, match="holdout_share"):
        load_settings(experiments={"holdout_share": 1.0})
    with pytest.raises(UnknownExperimentError, match="unknown experiment 'nope'; known: winback"):
        _assigner(_definition()).assign("nope", IDS[:3])
