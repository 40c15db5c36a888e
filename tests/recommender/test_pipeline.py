"""Training step end to end with the real MLflow: log, register, load back, gate; and the CLI."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tenure.registry import models as registry
from tenure.registry.champion import load_champion, load_pyfunc
from tenure.training import gate
from tenure.training.recommender_pipeline import (
    RecommenderData,
    _fit,
    _matrix,
    compare_for_gate,
    train_recommender,
)

SMALL = {"factors": 8, "iterations": 3, "holdout_days": 14, "k": 10}


def _data(shop, settings):
    customers, items, events = shop
    return RecommenderData(events, customers, items, "generated", None, dict(settings.recommender.event_weights))


def test_train_log_register_load_and_gate(shop, make_settings):
    settings = make_settings(recommender=SMALL)
    data = _data(shop, settings)
    first = train_recommender(settings, data=data, num_threads=1)
    assert first.model_version == "1"
    assert list(first.metrics.index[:1]) == ["model"]
    assert {"popular", "popular_in_category", "buy_again", "item_cosine", "bpr"} <= set(first.metrics.index)

    client = registry.configure_mlflow(settings)
    run = client.get_run(first.run_id)
    assert run.data.metrics["hit_rate_at_k"] == pytest.approx(first.metrics.loc["model", "hit_rate_at_k"])
    assert "baseline/popular/ndcg_at_k" in run.data.metrics
    # blend mode: what requests excluding purchases get is logged too (monitoring compares by strategy)
    assert run.data.metrics["excluding_purchased/hit_rate_at_k"] == pytest.approx(
        first.metrics.loc["model_excluding_purchased", "hit_rate_at_k"])
    assert json.loads(run.data.params["event_weights"])["purchase"] == 5.0
    # next-basket evaluation (last order held out) against own most-bought / most-recent, logged too
    assert {"model", "buy_again", "own_recent"} <= set(first.next_basket.index)
    assert run.data.metrics["next_basket/own_recent/precision_at_k"] == pytest.approx(
        first.next_basket.loc["own_recent", "precision_at_k"])
    # a repeat-heavy shop: exclude_purchased "auto" keeps bought items in
    assert first.repeat_share > 0.2 and first.exclude_purchased_default is False
    assert run.data.params["exclude_purchased_default"] == "False"
    assert client.get_experiment(run.info.experiment_id).name == settings.mlflow.recommender_experiment

    # Round trip: the registered files give the same answers as the model refitted in memory
    challenger = load_champion(settings, "recommender", alias="challenger")
    loaded = challenger.runtime
    assert loaded.exclude_purchased_default is False and loaded.blend_coefficients and loaded.timing is not None
    full = _matrix(data, data.events, first.config, as_of=pd.to_datetime(data.events["event_at"]).max())
    again = _fit(first.config, full, num_threads=1).set_blend(loaded.blend_coefficients).to_runtime(
        full, data.items, params={"exclude_purchased_default": False})
    now = loaded.timing.as_of_days
    for cid in full.customer_ids[:15]:
        assert loaded.recommend(cid, k=5, now=now).items == again.recommend(cid, k=5, now=now).items
        assert (loaded.recommend(cid, k=5, exclude_purchased=True).items
                == again.recommend(cid, k=5, exclude_purchased=True).items)
    assert np.allclose(loaded.item_factors, again.item_factors)
    pyfunc = load_pyfunc(challenger.model_dir)
    answer = pyfunc.predict(pd.DataFrame({"customer_id": [full.customer_ids[0], "nobody"]}))
    assert answer["strategy"].tolist() == ["blend", "popular"]
    assert answer["item_ids"].iloc[0] == loaded.recommend(full.customer_ids[0]).item_ids()

    assert gate.promote(settings, "recommender").promoted  # first model: no champion yet

    compare = functools.partial(compare_for_gate, data=data)
    weak = make_settings(recommender=SMALL | {"factors": 1, "regularization": 500.0, "mode": "als"})
    train_recommender(weak, data=_data(shop, weak), num_threads=1)
    decision = gate.promote(settings, "recommender", compare=compare)
    assert not decision.promoted and "worse" in decision.reason
    assert decision.challenger_metrics["ndcg_at_k"] < decision.champion_metrics["ndcg_at_k"]
    assert registry.get_alias_version(settings, "recommender") == "1"

    train_recommender(settings, data=data, num_threads=1)
    decision = gate.promote(settings, "recommender", compare=compare)
    assert decision.promoted and decision.challenger_version == "3"
    assert decision.challenger_metrics["ndcg_at_k"] == pytest.approx(decision.champion_metrics["ndcg_at_k"], abs=0.02)

    # tenure recommend, offline from the champion
    from tenure.pipelines.cli import app

    env = {"TENURE_PATHS__DATA_DIR": str(settings.paths.data_dir),
           "TENURE_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
           "TENURE_MLFLOW__ARTIFACT_ROOT": str(settings.mlflow.artifact_root)}
    result = CliRunner().invoke(app, ["recommend", full.customer_ids[0], "-k", "4", "--json"], env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["strategy"] == "als" and payload["model_version"] == "3" and len(payload["items"]) == 4
    result = CliRunner().invoke(app, ["recommend", "x", "--category", "nope"], env=env)
    assert result.exit_code == 2


def test_train_command_usage_errors():
    from tenure.pipelines.cli import app

    result = CliRunner().invoke(app, ["train", "recommender", "--source", "movielens"])
    assert result.exit_code == 2 and "--path" in result.output
    result = CliRunner().invoke(app, ["train", "recommender", "--source", "csv"])
    assert result.exit_code == 2


@pytest.mark.realdata
def test_movielens_through_the_same_pipeline(shared_datasets, make_settings, tmp_path):
    from tenure.pipelines.cli import app

    settings = make_settings()
    env = {"TENURE_PATHS__DATA_DIR": str(settings.paths.data_dir),
           "TENURE_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
           "TENURE_MLFLOW__ARTIFACT_ROOT": str(settings.mlflow.artifact_root),
           "TENURE_RECOMMENDER__HOLDOUT_DAYS": "730", "TENURE_RECOMMENDER__ITERATIONS": "3",
           "TENURE_RECOMMENDER__FACTORS": "16"}
    result = CliRunner().invoke(app, ["train", "recommender", "--source", "movielens", "--path",
                                      str(shared_datasets / "movielens_small"), "--threads", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert "as challenger" in result.stdout and "mode als" in result.stdout
    # the dataset was ingested by the pipeline's ingest step into its own workspace; training read that
    from tenure.features.tables import read_events
    from tenure.pipelines.steps import StepRunner
    from tenure.training.sources import source_settings

    ws = source_settings(settings, "movielens")
    assert len(read_events(ws, columns=["event_id"])) == 100_836
    assert [h["status"] for h in StepRunner(ws.paths.state_dir).history("ingest")] == ["done"]


def test_tuning_uses_a_validation_cutoff_before_the_test_one(shop, make_settings, monkeypatch):
    from tenure.training import recommender_pipeline as rp

    settings = make_settings(recommender=SMALL | {"mode": "blend"})
    data = _data(shop, settings)
    test_cutoff = rp.time_split(data.events, 14)[2]
    seen_ends = []
    real = rp.holdout_evaluation

    def spy(data_, config, holdout_days, k, baselines=(), num_threads=0, events=None, **kw):
        seen_ends.append(pd.to_datetime((events if events is not None else data_.events)["event_at"]).max())
        return real(data_, config, holdout_days, k, baselines, num_threads, events, **kw)

    monkeypatch.setattr(rp, "holdout_evaluation", spy)
    best = rp.tune(data, rp.config_from_settings(settings, data), 2, 14, 10, num_threads=1)
    assert len(seen_ends) == 2 and all(end < test_cutoff for end in seen_ends)
    assert {"factors", "regularization", "alpha", "weighting", "blend_weight"} <= set(best)
    assert 0 <= best["tuned_validation_ndcg_at_k"] <= 1
    with pytest.raises(ValueError, match="at least 1 trial"):
        rp.tune(data, rp.config_from_settings(settings, data), 0, 14, 10)
