"""Experiment arms on /churn-score and /recommend answers and in the prediction log (issue 14)."""

from __future__ import annotations

import json
import time

from tenure.experiments.assignment import HOLDOUT_ARM, Assigner


def _log_records(settings, kind: str) -> list[dict]:
    records = []
    for path in sorted(settings.paths.prediction_log_dir.glob(f"{kind}-*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def test_answers_carry_the_arms_of_active_experiments_only(client, workspace):
    settings, shop, _ = workspace
    assigner = Assigner.from_settings(settings)
    ids = shop.customers["customer_id"].tolist()[:60]
    results = []
    for start in range(0, len(ids), 20):
        answer = client.post("/churn-score", json={"customer_ids": ids[start:start + 20] + ["nobody"]})
        assert answer.status_code == 200
        results += answer.json()["results"]
    arms = {r["customer_id"]: r["arms"] for r in results}
    for cid in ids:  # the experiment that has not started ("later") is not there
        expected = HOLDOUT_ARM if assigner.in_holdout(cid) else assigner.experiment("winback").arm_of(cid)
        assert arms[cid] == {"winback": expected}, cid
    assert arms["nobody"] in ({"winback": "control"}, {"winback": "message"}, {"winback": HOLDOUT_ARM})
    seen = {a["winback"] for cid, a in arms.items() if cid != "nobody"}
    assert {"control", "message"} <= seen

    reco = client.post("/recommend", json={"customer_id": ids[0], "k": 3}).json()
    assert reco["arms"] == arms[ids[0]]  # the active experiment's arms serve the model: strategy unchanged


def test_the_prediction_log_records_the_arms(client, workspace):
    settings, shop, _ = workspace
    cid = shop.customers["customer_id"].iloc[1]
    request_id = client.post("/churn-score", json={"customer_ids": [cid]}).json()["request_id"]
    reco_id = client.post("/recommend", json={"customer_id": cid, "k": 2}).json()["request_id"]
    deadline = time.monotonic() + 10
    churn = reco = None
    while time.monotonic() < deadline and (churn is None or reco is None):
        time.sleep(0.3)
        churn = next((r for r in _log_records(settings, "churn") if r["request_id"] == request_id), None)
        reco = next((r for r in _log_records(settings, "recommend") if r["request_id"] == reco_id), None)
    assert churn is not None and reco is not None
    assigner = Assigner.from_settings(settings)
    expected = {"winback": assigner.assign("winback", [cid])[0]}
    assert churn["arms"] == expected and reco["arms"] == expected
