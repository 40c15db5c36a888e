"""``tenure train recommender`` and ``tenure recommend`` (owner: recommender room)."""

from __future__ import annotations

from pathlib import Path

import typer

from tenure.pipelines.console import fail, format_metric, out, print_json, progress, status

_COLUMNS = (
    ("precision_at_k", "P"), ("recall_at_k", "R"), ("ndcg_at_k", "nDCG"), ("map_at_k", "MAP"),
    ("hit_rate_at_k", "HR"), ("coverage_at_k", "cov."), ("popularity_percentile_at_k", "pop."),
)


def metrics_table(frame, k: int, title: str = ""):
    """Rich table of the evaluation frame (one row per ranker, ``model`` first)."""
    from rich.table import Table

    table = Table(title=title or None, caption=f"metrics at k={k}; cov. = catalogue coverage, "
                  "pop. = mean popularity percentile of recommended items")
    table.add_column("ranker", no_wrap=True, min_width=19)
    for _, label in _COLUMNS:
        table.add_column(label, justify="right", no_wrap=True, min_width=5)
    best = {col: frame[col].drop(index=["model", "model_excluding_purchased"], errors="ignore").max()
            for col, _ in _COLUMNS}
    for ranker, row in frame.iterrows():
        cells = []
        for col, _ in _COLUMNS:
            text = format_metric(row[col])
            if ranker == "model" and col in ("ndcg_at_k", "recall_at_k") and row[col] >= best[col]:
                text = f"[bold green]{text}[/bold green]"
            cells.append(text)
        table.add_row(str(ranker), *cells)
    return table


def register(app: typer.Typer) -> None:
    """Add the ``recommender`` command to the ``train`` group."""

    @app.command("recommender")
    def recommender(
        ctx: typer.Context,
        tune: int = typer.Option(0, "--tune", min=0, help="Optuna trials on the validation split (0 = none)."),
        source: str = typer.Option("generated", "--source", help="generated (the canonical tables) or movielens."),
        path: Path | None = typer.Option(None, "--path", help="Folder of the MovieLens files (--source movielens)."),
        promote: bool = typer.Option(False, "--promote", help="Run the promotion gate after registering."),
        threads: int = typer.Option(0, "--threads", min=0, help="Threads for implicit (0 = all cores)."),
        as_json: bool = typer.Option(False, "--json", help="Print the run's result as one JSON document."),
    ) -> None:
        """Train ALS, compare it with baselines on a time holdout, log to MLflow, register as challenger.

        Examples: `tenure train recommender`, `tenure train recommender --tune 20 --promote`,
        `tenure train recommender --source movielens --path ../shared/datasets/movielens_small`.
        JSON: model, source, name, run_id, version, k, mode, cutoff, metrics (per ranker), config, gate.
        """
        settings = ctx.obj
        if source not in ("generated", "movielens"):
            raise typer.BadParameter(f"--source must be generated or movielens, got {source!r}")
        if source == "movielens" and path is None:
            raise typer.BadParameter("--source movielens needs --path DIR (the folder with ratings.csv)")
        if path is not None and not path.is_dir():
            raise typer.BadParameter(f"--path {path} is not a folder")
        from tenure.training.recommender_pipeline import train_recommender

        steps = 5 + tune
        try:
            with progress() as bar:
                task = bar.add_task("recommender", total=steps)

                def step(message: str) -> None:
                    bar.update(task, advance=1, description=message)

                if source != "generated":  # ingest the dataset into its own workspace first
                    from tenure.pipelines.flows import prepare_source

                    step(f"preparing the {source} workspace (ingest)")
                    prepare_source(settings, source, path)
                result = train_recommender(settings, tune_trials=tune, source=source,
                                           num_threads=threads, progress=step)
                bar.update(task, completed=steps)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        decision = None
        if promote:
            from tenure.training.gate import promote as run_gate

            with status("promotion gate: refitting champion and challenger on the current holdout"):
                decision = run_gate(settings, "recommender")
        name = settings.mlflow.recommender_model_name
        if as_json:
            print_json(recommender_result_document(result, decision, source, name, settings.recommender.k))
        else:
            print_recommender_result(result, decision, name, settings.recommender.k)


def recommender_result_document(result, decision, source: str, name: str, k: int) -> dict:
    """The ``--json`` document of ``tenure train recommender``: the run, metrics per ranker, the gate."""
    metrics = {str(ranker): row for ranker, row in result.metrics.to_dict(orient="index").items()}
    return {"model": "recommender", "source": source, "name": name, "run_id": result.run_id,
            "version": result.model_version, "k": k, "mode": result.config.get("mode"),
            "cutoff": result.cutoff, "n_train_customers": result.n_train_customers, "n_items": result.n_items,
            "metrics": metrics, "config": result.config,
            "gate": decision.as_dict() if decision is not None else None}


def print_recommender_result(result, decision, name: str, k: int) -> None:
    """The people's view of a recommender training run: metrics table, registered version, gate."""
    out.print(metrics_table(
        result.metrics, k,
        title=f"mode {result.config['mode']}: holdout after {result.cutoff:%Y-%m-%d}, "
              f"{int(result.metrics['n_customers'].iloc[0]):,} customers"))
    out.print(f"run [bold]{result.run_id}[/bold]; registered {name} version [bold]{result.model_version}[/bold] "
              "as challenger")
    if decision is not None:
        verdict = "[green]promoted[/green]" if decision.promoted else "[yellow]not promoted[/yellow]"
        out.print(f"gate: version {decision.challenger_version} {verdict}: {decision.reason}")


def register_recommend(root: typer.Typer) -> None:
    """Add ``tenure recommend CUSTOMER_ID`` to the root app."""

    @root.command("recommend")
    def recommend(
        ctx: typer.Context,
        customer_id: str = typer.Argument(..., help="The customer to recommend for."),
        k: int = typer.Option(10, "-k", "--k", min=1, max=1000, help="Number of items."),
        include_purchased: bool = typer.Option(False, "--include-purchased",
                                               help="Allow items the customer bought (buy-again / blend modes)."),
        category: list[str] | None = typer.Option(None, "--category", help="Only this category (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Recommend items for one customer, offline, with the registered champion.

        Example: `tenure recommend C000042 -k 10 --category snacks`.
        """
        settings = ctx.obj
        import logging

        from tenure.registry.champion import NoChampionError, load_champion

        name = settings.mlflow.recommender_model_name
        consent = _consent(settings, customer_id, logging.getLogger(__name__))
        try:
            with status(f"loading the {name} champion"):
                champion = load_champion(settings, "recommender")
        except NoChampionError as exc:
            fail(str(exc))
        runtime, version = champion.runtime, champion.version
        if category:
            unknown = sorted(set(category) - set(runtime.categories))
            if unknown:
                raise typer.BadParameter(f"unknown categories {unknown}; known: {runtime.categories}")
        answer = runtime.recommend(customer_id, k=k, exclude_purchased=not include_purchased,
                                   categories=category, consent=consent)
        if as_json:
            print_json({"customer_id": customer_id, "strategy": answer.strategy, "model_version": version,
                        "items": answer.items})
            return
        from rich.table import Table

        table = Table("#", "item", "category", "score", "because",
                      title=f"{customer_id}: strategy {answer.strategy}, {name} v{version}")
        index = {item_id: i for i, item_id in enumerate(runtime.item_ids)}
        for rank, item in enumerate(answer.items, start=1):
            table.add_row(str(rank), item["item_id"], str(runtime.item_category[index[item["item_id"]]]),
                          format_metric(item["score"]), ", ".join(item["because"]))
        out.print(table)


def _consent(settings, customer_id: str, logger) -> bool:
    """Consent of ``customer_id`` from the customers table; True (with a warning) when unreadable."""
    try:
        from tenure.features.tables import read_customers

        customers = read_customers(settings)
    except Exception as exc:  # noqa: BLE001 - tables are optional for an offline look
        logger.warning("cannot read the customers table (%s); assuming consent", exc)
        return True
    match = customers[customers["customer_id"].astype(str) == str(customer_id)]
    if match.empty or "consent_personalization" not in match.columns:
        return True
    return bool(match["consent_personalization"].iloc[0])
