"""Erasure in recommender models: the registry room's own ``forget`` (saved model folders and a loaded runtime).

A trained recommender holds each customer's id (``mappings.json``), latent factors
(``factors.npz``), interaction and purchase rows (``user_items.npz``, ``purchases.npz``) and
repurchase timing (``timing.npz``). Erasure keeps row numbers (the item side and every other
customer stay as trained) and clears the person's row everywhere: the id becomes ``""``, the
factors and matrix rows zero. The customer then gets the non-personal answer. The model's item
factors were learned with the person's history and are not retrained here: the next training
leaves the person out (tables and tombstones), and the erasure receipt says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAPPINGS = "mappings.json"


def model_dirs(*roots: Path) -> list[Path]:
    """Saved recommender folders (holding ``mappings.json``) under the roots (model cache, MLflow artifacts)."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            found += sorted(p.parent for p in root.rglob(MAPPINGS))
    return found


def count_in_model_dir(directory: Path, customer_ids: Iterable[str]) -> dict[str, int]:
    """Customers of ``customer_ids`` that still have a row in this saved model (1 each)."""
    ids = {str(c) for c in customer_ids}
    held = json.loads((Path(directory) / MAPPINGS).read_text()).get("customer_ids", [])
    return {c: 1 for c in held if c in ids}


def _replace(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.erasing{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _zero_rows(matrix, rows: list[int]):
    import scipy.sparse as sp

    m = sp.csr_matrix(matrix, copy=True)
    for r in rows:
        m.data[m.indptr[r]:m.indptr[r + 1]] = 0
    m.eliminate_zeros()
    return m


def forget_in_model_dir(directory: Path, customer_ids: Iterable[str]) -> int:
    """Clear these customers' rows in one saved recommender folder; returns customers cleared."""
    import scipy.sparse as sp

    directory = Path(directory)
    ids = {str(c) for c in customer_ids}
    mappings = json.loads((directory / MAPPINGS).read_text())
    rows = [i for i, c in enumerate(mappings.get("customer_ids", [])) if c in ids]
    if not rows:
        return 0
    factors_path = directory / "factors.npz"
    if factors_path.is_file():
        with np.load(factors_path) as f:
            arrays = {k: f[k].copy() for k in f.files}
        arrays["user_factors"][rows] = 0
        _replace(factors_path, lambda tmp: np.savez(tmp, **arrays))
    for name in ("user_items.npz", "purchases.npz"):
        path = directory / name
        if path.is_file():
            matrix = _zero_rows(sp.load_npz(path), rows)
            _replace(path, lambda tmp, m=matrix: sp.save_npz(tmp, m))
    timing = directory / "timing.npz"
    if timing.is_file():
        with np.load(timing) as f:
            arrays = {k: f[k].copy() for k in f.files}
        for prefix in sorted({k.split("_")[0] for k in arrays if k.endswith("_indptr")}):
            indptr, data = arrays[f"{prefix}_indptr"], arrays[f"{prefix}_data"]
            for r in rows:
                if r + 1 < len(indptr):
                    data[indptr[r]:indptr[r + 1]] = 0  # no time left for the person's rows (explicit zeros)
        _replace(timing, lambda tmp: np.savez(tmp, **arrays))
    for r in rows:
        mappings["customer_ids"][r] = ""
    _replace(directory / MAPPINGS, lambda tmp: tmp.write_text(json.dumps(mappings)))
    logger.info("cleared %d customer row(s) in the recommender at %s", len(rows), directory)
    return len(rows)


def forget_in_runtime(runtime, customer_ids: Iterable[str]) -> int:
    """Make a loaded :class:`~tenure.registry.recommender_runtime.RecommenderRuntime` forget customers now:
    their rows are cleared and they are no longer known (they get the non-personal answer)."""
    index = getattr(runtime, "_customer_index", None)
    if index is None:
        return 0
    rows = [index.pop(str(c)) for c in customer_ids if str(c) in index]
    if rows:
        runtime.user_factors[rows] = 0
        for name in ("user_items", "purchases"):
            if getattr(runtime, name, None) is not None:
                setattr(runtime, name, _zero_rows(getattr(runtime, name), rows))
        timing = getattr(runtime, "timing", None)
        if timing is not None:
            runtime.timing = dataclasses.replace(timing, last_bought=_zero_rows(timing.last_bought, rows),
                                                 pair_interval=_zero_rows(timing.pair_interval, rows))
        for r in rows:
            runtime.customer_ids[r] = ""
        if hasattr(runtime, "_prepare_requests"):  # what the runtime prepared from those rows at load
            runtime._prepare_requests()
    return len(rows)
