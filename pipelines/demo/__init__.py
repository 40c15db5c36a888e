"""The demo: the whole loop on a generated shop, from raw files to a retrained, hot-reloaded model.

1. generate a shop whose last days hold a drift episode, and hold those days back (``data``);
2. ingest, build and materialize features, train both models and promote them (``story``);
3. start the service (``tenure serve`` on a free port), call every endpoint, show an event
   changing a score (``tour``);
4. a monitoring pass before the drift (a quiet week: no alert), then replay the held-back
   days through ``/events`` and ``/churn-score`` (``nightly``, ``replay``);
5. the nightly job: ingest the new events, rebuild the feature snapshot, run monitoring on it:
   the drift raises an alert, retraining runs, the gate decides, the service hot-reloads the
   new champion (``nightly``);
6. batch scores and an audience file; a summary (``reports_dir/demo_summary.json``, ``summary``)
   and the champions' plots (``plots``).

Modules: ``config`` (sizes, the progress callback, :class:`DemoError`), ``workspace`` (empty
stores, the service's settings file), ``data``, ``tour``, ``replay``, ``nightly``, ``plots``,
``summary`` and ``story`` (the stages in order, :func:`run_demo`). The service is started and
stopped through ``pipelines.service_process`` and spoken to through ``pipelines.service_client``.
Library code: progress goes through a ``say`` callback (the CLI prints, tests log).
"""

from tenure.pipelines.demo.config import DEFAULT, SMALL, DemoConfig, DemoError, Say
from tenure.pipelines.demo.story import run_demo
from tenure.pipelines.demo.summary import summary_path

__all__ = ["DEFAULT", "SMALL", "DemoConfig", "DemoError", "Say", "run_demo", "summary_path"]
