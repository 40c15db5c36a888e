"""MLflow pyfunc wrapper of :class:`registry.churn_scorer.ChurnScorer` (calibrated probabilities).

Lives beside the scorer, not in ``training/``, so that anything loading the model with
``mlflow.pyfunc.load_model`` (monitoring, notebooks) never imports training code.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from tenure.registry.churn_scorer import BUNDLE_DIR, ChurnScorer


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame of features) -> DataFrame[churn_probability, risk_band, percentile]``."""

    def load_context(self, context) -> None:
        self.scorer = ChurnScorer.load(context.artifacts[BUNDLE_DIR])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predict_frame(self.scorer, model_input)

    @staticmethod
    def predict_frame(scorer: ChurnScorer, frame: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probability, risk band and percentile (0-100, NaN without a reference) for each row."""
        X = scorer.vectorize(frame.to_dict(orient="records"))
        p = scorer.predict_proba(X)
        percentile = scorer.percentiles(p)
        return pd.DataFrame({"churn_probability": p.astype(np.float64), "risk_band": scorer.risk_bands(p),
                             "percentile": percentile if percentile is not None else np.full(len(p), np.nan)})
