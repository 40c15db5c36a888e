"""Erasure of customers from every store, with a receipt; verification; subject access (export).

:func:`forget_customers` tombstones the ids first (so a file ingested meanwhile cannot bring the
person back), then runs each store's own ``forget`` (:func:`workspace_stores` for the stores
this room can reach; callers add the service's: ``serving.erasure.serving_stores`` and, inside
the service, its memory), counts what remains, and writes a receipt to
``<privacy.receipts_dir>/<receipt_id>.json``: what was searched, what was found and removed per
store, the time taken and the tool's version, naming the person only by the tombstone's salted
hash. Models already trained on the person are not retrained on the spot: the receipt says so,
and the next training leaves the person out (their rows are gone from every table).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.privacy.stores import Store

logger = logging.getLogger(__name__)

MODEL_NOTE = ("models trained before this erasure (churn, recommender) keep what they learned from the person "
              "in their weights until the next training, which leaves the person out; the recommender's row for "
              "the person (id, factors, history) was cleared in every saved and served copy")


def receipts_dir(settings) -> Path:
    """``privacy.receipts_dir``, default ``<paths.data_dir>/privacy/receipts``."""
    return Path(settings.privacy.receipts_dir or Path(settings.paths.data_dir) / "privacy" / "receipts")


def tool_version() -> str:
    """The installed tenure version (the receipt's ``tool_version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenure")
    except PackageNotFoundError:
        return "unknown"


def _check_ids(customer_ids: Sequence[str]) -> list[str]:
    ids = list(dict.fromkeys(str(c).strip() for c in customer_ids))
    bad = [c for c in ids if not c]
    if not ids or bad:
        raise ValueError("give at least one non-empty customer id")
    return ids


def workspace_stores(settings, feature_store=None) -> list[Store]:
    """The stores this room reaches itself, in erasure order (sources first, derived data after).

    ``feature_store``: an open Feast store (the service passes its own); default: opened here.
    """
    from tenure.feature_repo import erasure as online
    from tenure.features import erasure as files
    from tenure.privacy.consent import ConsentStore, consent_path
    from tenure.registry import recommender_erasure as reco

    def file_store(name: str, where: str, listing) -> Store:
        return Store(name, where, lambda ids: files.count_files(listing(), ids), lambda ids: files.forget_files(listing(), ids),
                     lambda cid: _rows(listing(), cid))

    model_roots = [Path(settings.serving.model_cache_dir), Path(settings.mlflow.artifact_root)]

    def model_files():
        from tenure.erase import files_under

        return [f for f in files_under(*model_roots) if f.suffix == ".parquet"]

    def feast():
        nonlocal feature_store
        if feature_store is None:
            from tenure.feature_repo.store import open_store

            feature_store = open_store(settings)
        return feature_store

    def online_count(ids):
        try:
            return online.count_online(feast(), ids)
        except FileNotFoundError:
            return {}

    def consent(method: str):
        def run(arg):
            if not consent_path(settings).exists():
                return {} if method == "count" else (0 if method == "forget" else [])
            store = ConsentStore.from_settings(settings)
            try:
                if method == "count":
                    return store.count(arg)
                if method == "forget":
                    return store.forget(arg)
                return store.history(arg)
            finally:
                store.close()
        return run

    reports, exports = Path(settings.paths.reports_dir), Path(settings.paths.exports_dir)
    return [
        file_store("tables", f"{settings.paths.tables_dir}/customers, events", lambda: files.table_files(settings)),
        file_store("inputs", f"{settings.paths.raw_dir}, {settings.paths.rejects_dir}", lambda: files.input_files(settings)),
        file_store("feature_tables", str(settings.paths.features_dir), lambda: files.feature_files(settings)),
        Store("feast_online", f"Feast online store ({settings.feast.profile}: "
              f"{'Redis ' + settings.feast.redis_connection_string if settings.feast.profile == 'production' else 'SQLite'})",
              online_count, lambda ids: online.forget_online(feast(), ids)),
        Store("consent", str(consent_path(settings)), consent("count"), consent("forget"), consent("history")),
        Store("recommender_models", ", ".join(map(str, model_roots)) + " (mappings.json, factors, histories)",
              lambda ids: _merge(reco.count_in_model_dir(d, ids) for d in reco.model_dirs(*model_roots)),
              lambda ids: sum(reco.forget_in_model_dir(d, ids) for d in reco.model_dirs(*model_roots)),
              lambda cid: [{"model_folder": str(d)} for d in reco.model_dirs(*model_roots)
                           if reco.count_in_model_dir(d, [cid])]),
        file_store("model_samples", "reference samples under the model cache and MLflow artifacts", model_files),
        file_store("exports", str(exports), lambda: files._documents(_files(exports))),
        file_store("reports", str(reports), lambda: files._documents(_files(reports))),
    ]


def _files(root: Path) -> list[Path]:
    from tenure.erase import files_under

    return files_under(root)


def _merge(parts) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def _rows(paths: list[Path], cid: str) -> list[dict[str, Any]]:
    """Records naming ``cid`` in tabular files (subject access)."""
    from tenure.features.erasure import DOCUMENT_SUFFIXES, count_in_file

    out: list[dict[str, Any]] = []
    for path in paths:
        mentions = count_in_file(path, [cid])
        if not mentions:
            continue
        if path.suffix in DOCUMENT_SUFFIXES:  # a report page or summary: where, and how often
            out.append({"file": str(path), "mentions": int(sum(mentions.values()))})
            continue
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                if cid in line:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    out.append({"file": str(path), **record})
            continue
        import pandas as pd

        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
        hits = frame[(frame == cid).any(axis=1)] if path.suffix == ".csv" else frame[frame["customer_id"].astype(str) == cid]
        out += [{"file": str(path), **row} for row in hits.to_dict("records")]
    return out


def forget_customers(settings, customer_ids: Sequence[str], stores: Sequence[Store]) -> dict[str, Any]:
    """Erase customers from every store and write the receipt; returns it (with its ``path``).

    Raises
    ------
    ValueError
        When no id (or an empty one) is given.
    """
    from tenure.features.tombstones import Tombstones

    ids = _check_ids(customer_ids)
    started = time.perf_counter()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    subjects = Tombstones.from_settings(settings).add(ids, at)  # first: nothing ingested from now on brings them back
    results: dict[str, dict[str, Any]] = {}
    for store in stores:
        t0 = time.perf_counter()
        found = store.count(ids)
        removed = store.forget(ids) if found else 0
        results[store.name] = {"searched": store.where, "found": int(sum(found.values())), "removed": int(removed),
                               "seconds": round(time.perf_counter() - t0, 3)}
        if removed:
            logger.info("erasure: %s: removed %d record(s)", store.name, removed)
    remaining = {store.name: int(sum(store.count(ids).values())) for store in stores}
    seconds = round(time.perf_counter() - started, 3)
    receipt = {
        "receipt_id": f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "kind": "erasure", "created_at": at, "tool": "tenure", "tool_version": tool_version(),
        "subjects": subjects, "subject_hash": "sha256(workspace salt + customer id), first 32 hex characters "
                                              "(the tombstone list's hash; no raw id is written here)",
        "customers": len(ids), "stores": results,
        "verification": {"remaining": remaining, "clean": not any(remaining.values())},
        "models": MODEL_NOTE, "seconds": seconds,
    }
    receipt["path"] = str(_write_receipt(settings, receipt))
    logger.info("erased %d customer(s) in %.2f s; receipt %s", len(ids), seconds, receipt["path"])
    return receipt


def _write_receipt(settings, receipt: dict[str, Any]) -> Path:
    from tenure.files import fsync_path

    folder = receipts_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{receipt['receipt_id']}.json"
    tmp = folder / f".{path.name}.tmp"
    tmp.write_text(json.dumps({**receipt, "path": str(path)}, indent=2))
    fsync_path(tmp)
    os.replace(tmp, path)
    return path


def workspace_files(settings) -> list[Path]:
    """Every file of the workspace a byte search covers: data, reports, exports, MLflow's files."""
    from tenure.erase import files_under

    roots = [Path(settings.paths.data_dir), Path(settings.paths.reports_dir), Path(settings.paths.exports_dir),
             Path(settings.mlflow.artifact_root)]
    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        roots.append(Path(uri[len("sqlite:///"):]))
    skip = {receipts_dir(settings).resolve()}
    return [f for f in files_under(*roots) if not any(p in skip for p in f.resolve().parents)]


def verify_customers(settings, customer_ids: Sequence[str], stores: Sequence[Store],
                     byte_search: bool = True) -> dict[str, Any]:
    """Re-scan every store (and, with ``byte_search``, every workspace file's bytes) for the ids.

    Returns ``{"clean": bool, "stores": {name: records}, "files": {path: {id: hits}}}``; ``files``
    names raw ids, since the caller asked about them.
    """
    from tenure.erase import byte_hits

    ids = _check_ids(customer_ids)
    per_store = {store.name: int(sum(store.count(ids).values())) for store in stores}
    files = byte_hits(workspace_files(settings), ids) if byte_search else {}
    return {"clean": not any(per_store.values()) and not files, "stores": per_store, "files": files,
            "checked_files": len(workspace_files(settings)) if byte_search else 0}


def export_customer(settings, customer_id: str, stores: Sequence[Store]) -> dict[str, Any]:
    """Everything held on one customer, per store (a subject access request); empty stores are left out."""
    (cid,) = _check_ids([customer_id])
    held: dict[str, Any] = {}
    for store in stores:
        if store.export is not None:
            records = store.export(cid)
            if records:
                held[store.name] = records
        else:
            n = int(sum(store.count([cid]).values()))
            if n:
                held[store.name] = {"records": n, "note": "held in a form that is not readable as records "
                                                          "(feature values or model rows); erasure removes them"}
    return {"customer_id": cid, "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tool_version": tool_version(), "stores": held}
