"""``tenure report ...``: reports on what the service logged (attribution, KPIs, ...).

Each subcommand reads logs and tables, prints a table (or one JSON document with ``--json``)
and never changes anything. Subcommands register themselves on :data:`app` below.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Reports on what the service logged: attribution, KPIs.", no_args_is_help=True)


@app.callback()
def _report() -> None:
    """Reports on what the service logged: attribution, KPIs."""
