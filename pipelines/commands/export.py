"""``tenure export audience``: the customers to act on, as a file for marketing automation."""

from __future__ import annotations

from pathlib import Path

import typer

from tenure.pipelines.console import fail, out, print_json, status

app = typer.Typer(help="Export files for marketing automation (audiences).", no_args_is_help=True)

_BANDS = ("low", "medium", "high")


@app.command("audience")
def audience(
    ctx: typer.Context,
    risk: list[str] = typer.Option(["high"], "--risk", "-r", help="Risk band(s) to export: low, medium, high (repeatable)."),
    with_recommendations: int = typer.Option(0, "--with-recommendations", "-k", min=0, max=1000,
                                             help="Add this many recommended items per customer (item_1..item_K)."),
    file_format: str = typer.Option("csv", "--format", help="csv or parquet."),
    out_path: Path | None = typer.Option(None, "--out", "-o", help="File to write (default: exports_dir/audience-...)."),
    source: str = typer.Option("auto", "--source", help="Features from: auto (online store, else snapshot), online, snapshot."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (path, rows, counts) instead of the path."),
    rank: str | None = typer.Option(None, "--rank", help="Order the file by value_at_risk (churn probability x expected "
                                    "value; needs `tenure train value`), highest first, with those columns added."),
    experiment: str | None = typer.Option(
        None, "--experiment", "-e", help="Send as this experiment's campaign: global holdout left out, arms by hash, "
        "a treatment event recorded per customer (control too), only the customers to contact in the file."),
    policy: str = typer.Option("risk", "--policy", help="risk: the --risk bands; uplift: the --budget customers with "
                               "the largest expected saves by the uplift champion (tenure train uplift)."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Customers to pick with --policy uplift."),
) -> None:
    """Write the customers in the given risk band(s) with churn probability, reasons and recommendations.

    Columns: customer_id, churn_probability, risk_band, churn_model_version, feature_source,
    scored_at, reason_N_feature, reason_N_value, reason_N_contribution (N = 1..serving.top_reasons),
    and with -k: item_1..item_K, recommendation_strategy, recommender_model_version.
    Prints the file's path on stdout (with --json: path, rows, rows per risk band, columns).
    """
    bad = [r for r in risk if r not in _BANDS]
    if bad:
        raise typer.BadParameter(f"unknown risk band(s) {bad}; choose from {list(_BANDS)}", param_hint="--risk")
    if file_format not in ("csv", "parquet"):
        raise typer.BadParameter(f"format must be csv or parquet, got {file_format!r}", param_hint="--format")
    if rank not in (None, "value_at_risk"):
        raise typer.BadParameter(f"rank must be value_at_risk, got {rank!r}", param_hint="--rank")
    if rank is not None:  # before scoring: no file is written when the values are missing
        from tenure.insight.value import values_path

        if not values_path(ctx.obj).is_file():
            fail(f"--rank {rank} needs customer values ({values_path(ctx.obj)}): run `tenure train value` first")
    if source not in ("auto", "online", "snapshot"):
        raise typer.BadParameter(f"source must be auto, online or snapshot, got {source!r}", param_hint="--source")
    settings = ctx.obj
    from tenure.pipelines.scoring import export_audience

    campaign = None
    if policy not in ("risk", "uplift"):
        raise typer.BadParameter(f"policy must be risk or uplift, got {policy!r}", param_hint="--policy")
    if policy == "uplift" and budget is None:
        raise typer.BadParameter("--policy uplift needs --budget N (customers to pick)", param_hint="--budget")
    try:
        with status("scoring customers with the champion models"):
            if policy == "uplift":  # experiments: whom contacting helps most (pipelines/campaigns.py)
                from tenure.pipelines.campaigns import uplift_export

                path, frame, campaign = uplift_export(settings, budget, file_format, out_path, source, experiment)
            elif experiment is not None:  # experiments/: the audience is split into arms first (pipelines/campaigns.py)
                from tenure.pipelines.campaigns import campaign_export

                path, frame, campaign = campaign_export(settings, experiment, risk=tuple(dict.fromkeys(risk)),
                                                        k=with_recommendations, file_format=file_format, out=out_path,
                                                        source=source)
            elif settings.compute.engine == "dask" and rank is None:  # partition by partition (docs/cluster.md)
                from tenure.pipelines.cluster_steps import export_audience_on_cluster

                path, written = export_audience_on_cluster(settings, risk=tuple(dict.fromkeys(risk)),
                                                           k=with_recommendations, file_format=file_format,
                                                           out=out_path, source=source)
                frame = None
            else:
                path, frame = export_audience(settings, risk=tuple(dict.fromkeys(risk)), k=with_recommendations,
                                              file_format=file_format, out=out_path, source=source)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if rank is not None:  # customer value (insight room)
        from tenure.pipelines.commands.insight import rank_export

        try:
            frame = rank_export(settings, path, frame, rank, file_format)
        except (ValueError, FileNotFoundError) as exc:
            fail(f"--rank {rank}: {exc}")
    if as_json:
        summary = (_summary(path, frame, risk, with_recommendations, file_format) if frame is not None else
                   {"path": str(path), "format": file_format, "rows": written["customers_scored"],
                    "risk": list(dict.fromkeys(risk)), "rows_by_risk_band": written["bands"],
                    "with_recommendations": with_recommendations,
                    "churn_model_versions": [written["churn_model_version"]] if written["churn_model_version"] else [],
                    "columns": written["columns"]})
        print_json({**summary,
                    **({"uplift" if policy == "uplift" else "campaign": campaign} if campaign else {})})
        return
    out.print(str(path), highlight=False, soft_wrap=True)  # pipelines.scoring logged what it wrote


def _summary(path: Path, frame, risk: list[str], k: int, file_format: str) -> dict:
    """The ``--json`` document of ``tenure export audience``."""
    bands = frame["risk_band"].value_counts().to_dict() if "risk_band" in frame.columns else {}
    versions = frame.get("churn_model_version")
    versions = [] if versions is None else sorted(versions.dropna().astype(str).unique())
    return {"path": str(path), "format": file_format, "rows": len(frame), "risk": list(dict.fromkeys(risk)),
            "rows_by_risk_band": {band: int(n) for band, n in bands.items()}, "with_recommendations": k,
            "churn_model_versions": versions, "columns": list(frame.columns)}
