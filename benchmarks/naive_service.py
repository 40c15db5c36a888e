"""A deliberately straightforward churn service, the baseline of ``benchmarks/serving_load.py``.

Per request it builds pandas DataFrames, asks Feast for the features with
``get_online_features(...).to_df()`` and predicts with the MLflow pyfunc model on a DataFrame
(LightGBM inside), the way most tutorials write it. Models and the store are loaded once at
start, as any tutorial does; it computes no reasons and writes no logs, so it does less work
than ``serving.service`` per request. Run: ``TENURE_CONFIG=... bentoml serve benchmarks.naive_service:NaiveChurnService``.
"""

from __future__ import annotations

import bentoml
from pydantic import BaseModel


class NaiveRequest(BaseModel):
    """Customers to score."""

    customer_ids: list[str]


@bentoml.service(name="naive_churn")
class NaiveChurnService:
    """``POST /churn-score`` the straightforward way."""

    def __init__(self) -> None:
        from tenure.feature_repo.store import open_store
        from tenure.registry.champion import load_champion, load_pyfunc
        from tenure.settings import load_settings

        settings = load_settings()
        # the registry's one loader fetches the files; the model is then used the tutorial way (pyfunc)
        self.model = load_pyfunc(load_champion(settings, "churn", runtime=False).model_dir)
        self.store = open_store(settings)
        self.features = self.store.get_feature_service("churn_v1")

    @bentoml.api(route="/churn-score", input_spec=NaiveRequest)
    def churn_score(self, customer_ids: list[str]) -> dict:
        """Probability and risk band per customer (unknown customers get NaN features)."""
        import pandas as pd

        entities = pd.DataFrame({"customer_id": customer_ids})
        frame = self.store.get_online_features(
            features=self.features, entity_rows=entities.to_dict(orient="records")
        ).to_df()
        # the python model itself: pyfunc's schema enforcement rejects the None values Feast
        # returns for missing features, which LightGBM handles as NaN
        predictions = self.model.unwrap_python_model().predict(None, frame.drop(columns=["customer_id"]))
        out = pd.concat([frame[["customer_id"]], predictions], axis=1)
        return {"results": out.to_dict(orient="records")}
