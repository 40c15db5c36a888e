"""MLflow pyfunc wrapper of the recommender runtime (the registered ``tenure-recommender`` model).

The service does not go through pyfunc: it downloads the model directory and calls
``RecommenderRuntime.from_model_dir``. The wrapper makes the registered model usable by any
MLflow tool: ``predict`` takes a DataFrame with ``customer_id`` (optional ``k``,
``exclude_purchased``: true, false or ``auto``, the default: what training decided from the data) and returns one row per customer with ``item_ids``, ``scores``,
``strategy``.
"""

from __future__ import annotations

import mlflow.pyfunc


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the runtime from the ``recommender`` artifact directory."""

    def load_context(self, context) -> None:
        from tenure.registry.recommender_runtime import RecommenderRuntime

        self.runtime = RecommenderRuntime.from_model_dir(context.artifacts["recommender"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        frame = pd.DataFrame(model_input)
        if "customer_id" not in frame.columns:
            raise ValueError("model input needs a 'customer_id' column")
        k = int((params or {}).get("k", frame["k"].iloc[0] if "k" in frame.columns and len(frame) else 10))
        exclude = (params or {}).get("exclude_purchased", "auto")
        if isinstance(exclude, str) and exclude != "auto":
            exclude = exclude.strip().lower() in ("true", "1", "yes")
        answers = self.runtime.recommend_batch(frame["customer_id"].astype(str).tolist(), k=k,
                                               exclude_purchased=exclude)
        return pd.DataFrame({
            "customer_id": frame["customer_id"].astype(str).tolist(),
            "item_ids": [a.item_ids() for a in answers],
            "scores": [[it["score"] for it in a.items] for a in answers],
            "strategy": [a.strategy for a in answers],
        })
