"""Where each data source's prepared tables live: the workspace settings of a source.

``generated`` is this workspace (``tenure generate`` + ``tenure run ingest features``), and so
is ``snapshot`` (this workspace's labelled customers, ``tenure ingest customers FILE
--label-column COL``: trained from their attributes, split at random). The
public datasets (``telco``, ``cdnow``, ``movielens``) are prepared by the pipelines room
(:func:`pipelines.flows.prepare_source`: the adapter's frames through the ingest step, then
the features step where the source has events) into a workspace of their own under
``data/sources/<name>`` with a Feast project of their own, so they never mix with this
workspace's data. Training and the promotion gate only read that workspace; they never read
a dataset's files.
"""

from __future__ import annotations

from tenure.settings import Settings

SOURCES: tuple[str, ...] = ("generated", "snapshot", "telco", "cdnow", "movielens")
CHURN_SOURCES: tuple[str, ...] = ("generated", "snapshot", "telco", "cdnow")
RECOMMENDER_SOURCES: tuple[str, ...] = ("generated", "movielens")

CDNOW_HORIZON_DAYS = 90
"""CDNOW customers buy a few times a year: a 30-day silence says little, 90 days says more."""

CDNOW_SNAPSHOT_EVERY_DAYS = 28
"""Four-weekly snapshots (and so training cut-offs) over CDNOW's 18 months."""


def source_settings(settings: Settings, source: str) -> Settings:
    """Settings of the workspace ``source`` is prepared in and trained from.

    Parameters
    ----------
    settings:
        This workspace's settings.
    source:
        One of :data:`SOURCES`.

    Returns
    -------
    Settings
        ``settings`` itself for ``generated`` and ``snapshot``; otherwise a copy whose data folder is
        ``data/sources/<source>`` and whose Feast project is ``<project>_<source>`` (local
        profile). CDNOW also gets its churn definition: purchases only, a 90-day horizon,
        540 days of history and four-weekly snapshots.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source in ("generated", "snapshot"):
        return settings
    paths = settings.paths.model_copy(update={"data_dir": settings.paths.data_dir / "sources" / source})
    feast = settings.feast.model_copy(update={"project": f"{settings.feast.project}_{source}", "profile": "local"})
    update: dict = {"paths": paths, "feast": feast}
    if source == "cdnow":
        update["feast"] = feast.model_copy(update={"snapshot_every_days": CDNOW_SNAPSHOT_EVERY_DAYS})
        update["churn"] = settings.churn.model_copy(update={
            "horizon_days": max(settings.churn.horizon_days, CDNOW_HORIZON_DAYS),
            "qualifying_event_types": ["purchase"],
            "history_days": 540,
            "cutoff_every_days": CDNOW_SNAPSHOT_EVERY_DAYS,
        })
    return settings.model_copy(update=update)


def detect_churn_source(settings: Settings) -> str:
    """The churn source this workspace's data calls for, when the user names none.

    ``generated`` when a feature table exists (events turned into point-in-time snapshots),
    ``snapshot`` when the customers table holds labels and there is no feature table.

    Raises
    ------
    ValueError
        Saying what to ingest or build, when the workspace has neither.
    """
    from tenure.features.snapshots import CUSTOMER_TABLE
    from tenure.training.churn_dataset import has_labelled_snapshot

    if (settings.paths.features_dir / CUSTOMER_TABLE).exists():
        return "generated"
    if has_labelled_snapshot(settings):
        return "snapshot"
    raise ValueError(
        f"nothing to train churn from under {settings.paths.data_dir}: either a labelled snapshot "
        "(`tenure ingest customers FILE --label-column COL`, one row per customer with a yes/no label), "
        "or events and their feature snapshots (`tenure ingest --from-dir DIR`, then `tenure features build "
        "--start ... --end ... --every 7d`); or try `tenure demo` / `--source telco --path DIR`"
    )
