"""What a person (or a script) sees: the CLI's consoles, log lines, third-party noise and numbers.

Only entry points use this module (the ``tenure`` CLI, the demo, the benchmarks); library code
logs with ``logging`` and never prints.

- Results go to stdout (``out``): tables, or one JSON document with ``--json`` (:func:`print_json`).
- Progress, our own log lines and errors go to stderr (``console``), so stdout stays readable by
  scripts.
- :func:`configure_output` sets the verbosity once, at the entry point: ``-1`` (``--quiet``:
  results, warnings and errors), ``0`` (default: also our progress lines), ``1`` (``-v``: also
  third-party INFO logs and Python warnings), ``2`` (``-vv``: everything at DEBUG).
  Its third-party half, ``tenure.logging_setup.quiet_third_party``, also serves entry points
  that keep their own logging (the benchmarks, the BentoML service process).
- Numbers are rounded for people: :func:`format_number`, :func:`format_reason`
  (``days since last activity: 48``), :func:`format_probability` (0.53) and
  :func:`format_metric` (0.812).
"""

from __future__ import annotations

import logging
import math
import numbers
from contextlib import nullcontext
from typing import Any, ClassVar, NoReturn

import typer
from rich.console import Console

from tenure.logging_setup import OUR_PACKAGES, quiet_third_party

console = Console(stderr=True)
out = Console()

#: Width of tables and text when the output is a file or a pipe (rich would use 80 columns).
PIPE_WIDTH = 200

def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error that says what to fix and exit with ``code`` (1 = failure)."""
    console.print(f"[bold red]error:[/bold red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


# --- verbosity ------------------------------------------------------------------------------------


def configure_output(verbosity: int = 0, level: int | str = logging.INFO) -> None:
    """Set up logging for an entry point: our log lines on stderr, third parties quiet.

    Parameters
    ----------
    verbosity:
        -1 quiet (our warnings and errors only), 0 default (our lines at ``level``), 1 verbose
        (ours at DEBUG, third parties at INFO, Python warnings shown), 2 (everything at DEBUG).
    level:
        Level of our own loggers at verbosity 0 (``settings.log_level``), e.g. ``"INFO"``.
    """
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            raise ValueError(f"log level must be DEBUG, INFO, WARNING or ERROR, got {level!r}")  # noqa: TRY004
    ours = logging.DEBUG if verbosity >= 1 else max(level, logging.WARNING) if verbosity < 0 else level
    root = logging.getLogger()
    root.handlers = [ConsoleLogHandler(show_names=verbosity >= 1)]
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(ours)
    quiet_third_party(verbosity)
    if not console.is_terminal:
        console.soft_wrap = True  # a log line stays one line in a file
        console.width = PIPE_WIDTH
    if not out.is_terminal:  # a piped table keeps its columns: `tenure models list | cat`
        out.soft_wrap = True
        out.width = PIPE_WIDTH


def informing() -> bool:
    """Whether progress lines should show (our INFO level is on: not ``--quiet``)."""
    return logging.getLogger("tenure.pipelines").isEnabledFor(logging.INFO)


class ConsoleLogHandler(logging.Handler):
    """Log records on the stderr console: our INFO lines as plain progress text.

    ``warning:`` / ``error:`` prefixes (coloured on a terminal) for higher levels; a third
    party's records (and every record when ``show_names``) say which logger wrote them.
    """

    _STYLES: ClassVar[dict[int, str]] = {logging.DEBUG: "dim", logging.WARNING: "yellow", logging.ERROR: "red"}

    def __init__(self, show_names: bool = False) -> None:
        super().__init__()
        self.show_names = show_names
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            ours = record.name.split(".", 1)[0] in OUR_PACKAGES
            name = f"{record.name}: " if self.show_names or not ours else ""
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            style = self._STYLES.get(min(record.levelno // 10 * 10, logging.ERROR), "")
            console.print(f"{level}{name}{text}", style=style or None, markup=False, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never raise (the stdlib's own rule)
            self.handleError(record)


# --- progress and results -------------------------------------------------------------------------


def progress():
    """A progress bar for long work (rich), on stderr so stdout stays machine-readable.

    Hidden with ``--quiet`` (the bar still counts, nothing is drawn).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not informing(),
    )


def status(message: str):
    """A spinner with ``message`` on stderr while work runs; nothing with ``--quiet``."""
    return console.status(message) if informing() else nullcontext()


def note(message: str) -> None:
    """A progress line for people on stderr (``next: ...``, ``done in 3 s``); hidden by ``--quiet``."""
    if informing():
        console.print(message, highlight=False)


def print_json(document: Any) -> None:
    """Write ``document`` to stdout as one JSON document (``tenure.jsonable.to_jsonable`` first:
    numpy, pandas, dates, paths and dataclasses become plain types, NaN becomes null)."""
    import json

    from tenure.jsonable import to_jsonable

    typer.echo(json.dumps(to_jsonable(document), indent=2, allow_nan=False))


# --- numbers for people ---------------------------------------------------------------------------


def format_number(value: Any) -> str:
    """A number as a person reads it: 48.12 -> ``48``, 3.47 -> ``3.5``, 0.5312 -> ``0.53``.

    Integers (and whole floats) keep every digit with thousands separators; other values
    (strings, categories) are shown as they are; None and NaN read ``missing``.
    """
    if value is None:
        return "missing"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "missing"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if isinstance(value, numbers.Integral) or number.is_integer():
        return f"{int(number):,}"
    size = abs(number)
    if size >= 10:
        return f"{number:,.0f}"
    if size >= 1:
        return f"{number:.1f}"
    if size >= 0.01:
        return f"{number:.2f}"
    return f"{number:.2g}"


def format_reason(reason: dict[str, Any], contribution: bool = False) -> str:
    """One churn reason (``{feature, value, contribution}``) as ``days since last activity: 48``.

    With ``contribution`` the signed log-odds contribution follows: ``... : 48 (+0.42)``
    (positive raises the churn risk).
    """
    feature = str(reason.get("feature", "?")).replace("_", " ")
    text = f"{feature}: {format_number(reason.get('value'))}"
    weight = reason.get("contribution")
    if contribution and isinstance(weight, numbers.Real) and math.isfinite(weight):
        text += f" ({weight:+.2f})"
    return text


def format_probability(value: float | None) -> str:
    """A probability to two decimals (0.53); ``-`` when missing."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def format_metric(value: float | None) -> str:
    """A metric to three decimals (0.812); ``-`` when missing."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"
