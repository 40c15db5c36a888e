"""``tenure train uplift --experiment NAME``: an uplift model from a past randomised campaign."""

from __future__ import annotations

import typer

from tenure.pipelines.console import fail, format_metric, out, print_json, status


def register(app: typer.Typer) -> None:
    """Add ``train uplift`` to the ``train`` group."""
    app.command("uplift")(train_uplift)


def train_uplift(
    ctx: typer.Context,
    experiment: str = typer.Option(..., "--experiment", "-e", help="Campaign (experiment) with treatment events."),
    learner: str = typer.Option("x_learner", "--learner", help="x_learner or t_learner (meta-learners on LightGBM)."),
    promote: bool = typer.Option(False, "--promote", help="Run the gate: champion if it beats churn ranking and "
                                                          "random, and is not worse than the champion."),
    test_share: float = typer.Option(0.3, "--test-share", min=0.05, max=0.9, help="Held-out share of each arm."),
    seed: int = typer.Option(0, "--seed", help="Split and model seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Fit T- or X-learner uplift on a campaign, compare with churn ranking and random (Qini AUC), register it.

    JSON: ``{"version", "run_id", "campaign", "treatment_arm", "metrics", "gate"}``.
    """
    from tenure.experiments.assignment import UnknownExperimentError
    from tenure.training.uplift import LEARNERS

    if learner not in LEARNERS:
        raise typer.BadParameter(f"learner must be one of {list(LEARNERS)}, got {learner!r}", param_hint="--learner")
    from tenure.training.gate import promote as run_gate
    from tenure.training.uplift_pipeline import train_uplift as train

    settings = ctx.obj
    try:
        with status(f"training the uplift model on {experiment}"):
            result = train(settings, experiment, learner=learner, test_share=test_share, random_state=seed)
            gate = run_gate(settings, "uplift").as_dict() if promote else None
    except UnknownExperimentError as exc:
        fail(str(exc))
    except (ValueError, FileNotFoundError) as exc:
        fail(f"uplift on {experiment!r}: {exc}")
    document = {"version": result.version, "run_id": result.run_id, "campaign": result.campaign,
                "treatment_arm": result.treatment_arm, "metrics": result.metrics, "gate": gate}
    if as_json:
        print_json(document)
        return
    m = result.metrics
    out.print(f"uplift v{result.version} ({learner}) on {experiment}/{result.treatment_arm}: Qini AUC "
              f"{format_metric(m['qini_auc'])} vs churn ranking {format_metric(m['qini_auc_churn_ranking'])} and "
              f"random {format_metric(m['qini_auc_random'])}; observed uplift in the top 10% "
              f"{m['uplift_top10']:+.1%} (churn ranking {m['uplift_top10_churn_ranking']:+.1%})", highlight=False)
    if gate is not None:
        out.print(f"gate: {'promoted' if gate['promoted'] else 'not promoted'}: {gate['reason']}", highlight=False)
