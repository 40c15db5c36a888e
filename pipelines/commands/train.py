"""``tenure train churn|recommender`` and ``tenure recommend``: one module per model."""

from __future__ import annotations

import typer

from tenure.pipelines.commands import insight, train_churn, train_recommender, train_uplift

app = typer.Typer(help="Train a model, log it to MLflow and register it as challenger.", no_args_is_help=True)
train_churn.register(app)
train_recommender.register(app)
train_uplift.register(app)  # experiments: uplift from a past campaign (training/uplift_pipeline.py)
app.command("value")(insight.train_value)  # customer value (insight room)


def register_recommend(root: typer.Typer) -> None:
    """Add ``tenure recommend CUSTOMER_ID`` (offline recommendations from the champion)."""
    train_recommender.register_recommend(root)
