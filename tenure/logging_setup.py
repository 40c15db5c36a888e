"""Third-party noise at our entry points: Python warnings and other libraries' log lines.

Only entry points call this (the ``tenure`` CLI through ``pipelines.console.configure_output``,
the demo, the benchmarks, a service process): it changes process-wide state (warning filters,
logger levels, a few environment variables that child processes inherit). It lives in
``tenure/`` so that rooms which must not import ``pipelines`` (serving) can call it too.
"""

from __future__ import annotations

import logging
import os
import warnings

#: Our own top-level packages (every room is ``tenure.<room>``): their loggers follow the chosen
#: verbosity, every other logger is a third party's (quiet unless ``-v``).
OUR_PACKAGES = ("tenure", "benchmarks")

#: Environment levers read by third-party code at import time or in child processes (the
#: BentoML service started by ``tenure serve`` inherits them); set only when the user has not.
_QUIET_ENV = {
    "PYTHONWARNINGS": "ignore",  # child interpreters: warnings printed before any of our code runs
    "MLFLOW_CONFIGURE_LOGGING": "false",  # MLflow logs through our handler instead of its own
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no tqdm "Downloading artifacts" bars
}

#: Third-party loggers that stay at WARNING even with ``-v`` (only ``-vv`` shows their chatter).
_CHATTY = ("urllib3", "httpx", "httpcore", "numexpr", "matplotlib", "PIL", "git", "asyncio", "fsspec",
           "sqlalchemy.engine", "filelock")


def quiet_third_party(verbosity: int = 0) -> None:
    """Hide (``verbosity <= 0``) or show (``>= 1``) third-party warnings and log lines.

    Quiet: Python warnings are ignored (here, and through ``PYTHONWARNINGS`` in child
    processes), warnings a library lets through anyway go to the ``py.warnings`` logger at a
    level that drops them, MLflow stops installing its own log handler and artifact progress
    bars, and every logger outside :data:`OUR_PACKAGES` shows errors only (ours keep the
    level they have, INFO when none was set). Loud: warnings are
    shown once per place, through the logging handler, and third parties log at INFO
    (``verbosity >= 2``: DEBUG, chatty HTTP/plotting loggers included).

    Call it at an entry point, before the heavy imports when possible; it also resets the
    loggers MLflow configured if MLflow was imported first.
    """
    loud = verbosity >= 1
    if loud:
        warnings.simplefilter("default")
    else:
        warnings.simplefilter("ignore")
        for name, value in _QUIET_ENV.items():
            os.environ.setdefault(name, value)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if loud else logging.CRITICAL)
    for name in ("mlflow", "alembic", "huey"):  # MLflow's own handlers bypass ours (and print INFO)
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for name in OUR_PACKAGES:  # ours keep their level (INFO unless the caller chose one)
        ours = logging.getLogger(name)
        if ours.level == logging.NOTSET:
            ours.setLevel(logging.DEBUG if loud else logging.INFO)
    third_party = logging.DEBUG if verbosity >= 2 else logging.INFO if loud else logging.ERROR
    logging.getLogger().setLevel(third_party)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(third_party if verbosity >= 2 else max(third_party, logging.WARNING))
