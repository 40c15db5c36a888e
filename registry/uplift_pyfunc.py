"""MLflow pyfunc wrapper of :class:`registry.uplift_runtime.UpliftRuntime` (DataFrame of features -> uplift)."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from tenure.registry.uplift_runtime import BUNDLE_DIR, UpliftRuntime


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame of customer features) -> DataFrame[uplift]`` (churn reduction by the treatment)."""

    def load_context(self, context) -> None:
        self.runtime = UpliftRuntime.load(context.artifacts[BUNDLE_DIR])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predict_frame(self.runtime, model_input)

    @staticmethod
    def predict_frame(runtime: UpliftRuntime, frame: pd.DataFrame) -> pd.DataFrame:
        """One ``uplift`` per row."""
        return pd.DataFrame({"uplift": runtime.predict_rows(frame.to_dict(orient="records"))})
