"""What assignment adds to a ``/churn-score`` call: the arms of every customer, as the service computes them.

The service's added work per request is ``ExperimentArms.active`` once and ``ExperimentArms.of`` per
customer (serving/service.py); this times exactly that, in-process, for requests of 1, 10 and 100
customers with 1 and 3 active experiments (10% global holdout), p50 and p99 over many calls. In-process
on purpose: an HTTP comparison of two services on a shared 2-core machine varies by more than the
effect measured.

    .venv/bin/python benchmarks/experiments_speed.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(n_experiments: int, batch: int, calls: int = 3000) -> dict:
    import numpy as np

    from tenure.experiments.assignment import Assigner
    from tenure.serving.experiment_arms import ExperimentArms
    from tenure.settings import ExperimentDefinition

    definitions = [ExperimentDefinition(name=f"exp{i}", arms=[{"name": "control", "share": 0.5},
                                                               {"name": "offer", "share": 0.3},
                                                               {"name": "message", "share": 0.2}])
                   for i in range(n_experiments)]
    arms = ExperimentArms(Assigner(0.1, "holdout", definitions))
    ids = [f"c{i:06d}" for i in range(batch)]
    times = np.empty(calls)
    for k in range(calls):
        start = time.perf_counter_ns()
        active = arms.active("churn", 1.0e9)
        [arms.of(cid, active) for cid in ids]
        times[k] = time.perf_counter_ns() - start
    return {"experiments": n_experiments, "customers_per_call": batch,
            "p50_ms": float(np.percentile(times, 50) / 1e6), "p99_ms": float(np.percentile(times, 99) / 1e6)}


def uplift_scoring(n: int = 100_000) -> dict:
    """Seconds to score ``n`` customers' feature rows (dicts, as the export reads them) with an X-learner runtime."""
    import numpy as np
    import pandas as pd

    from tenure.training.uplift import UpliftModel
    from tenure.training.uplift_dataset import FeatureEncoder

    rng = np.random.default_rng(0)
    encoder = FeatureEncoder()
    numeric = [c for c in encoder.columns if c not in ("plan", "region", "acquisition_channel")]
    frame = pd.DataFrame(rng.random((n, len(numeric))), columns=numeric)
    for col, values in (("plan", ["free", "monthly", "annual"]), ("region", ["north", "south"]),
                        ("acquisition_channel", ["organic", "paid_search"])):
        frame[col] = rng.choice(values, n)
    encoder.fit(frame)
    X = encoder.transform(frame)
    treated, churned = rng.random(n) < 0.5, (rng.random(n) < 0.2).astype(float)
    runtime = UpliftModel("x_learner").fit(X[:20_000], treated[:20_000], churned[:20_000]).to_runtime(encoder)
    rows = frame[list(encoder.columns)].to_dict(orient="records")
    start = time.perf_counter()
    uplift = runtime.predict_rows(rows)
    seconds = time.perf_counter() - start
    return {"customers": n, "seconds": round(seconds, 2), "scored": len(uplift), "target": "< 30 s"}


def main() -> dict:
    scoring = uplift_scoring()
    print(f"uplift scoring of {scoring['customers']:,} customers (rows -> X-learner): {scoring['seconds']} s")
    rows = [measure(e, b) for e in (1, 3) for b in (1, 10, 100)]
    for r in rows:
        print(f"{r['experiments']} experiment(s), {r['customers_per_call']:>3} customers/call: "
              f"p50 {r['p50_ms']:.4f} ms, p99 {r['p99_ms']:.4f} ms")
    result = {"benchmark": "experiments_speed", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "load_average": os.getloadavg(), "target": "< 0.2 ms added per /churn-score call (p50)", "rows": rows,
              "uplift_scoring": scoring}
    out = ROOT / "benchmarks" / "results" / "experiments_speed.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"load average {os.getloadavg()}; written {out}")
    return result


if __name__ == "__main__":
    main()
