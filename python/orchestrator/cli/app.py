"""The Typer application, its global options and the state they set.

Commands live in :mod:`orchestrator.cli.commands`, one module per concept; each
registers itself on :data:`app` (or a sub-app such as :data:`cache_app`) when
imported. To add a command: write ``commands/<name>.py`` with an ``@app.command()``
function and list it in ``commands/__init__.py``.

Exit codes: 0 success, 1 the request failed (no eligible model, every model
failed, a model unhealthy), 2 usage error, 3 configuration error, 130 interrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler

from orchestrator import DISTRIBUTION, __version__
from orchestrator.cli.output import console, err_console
from orchestrator.config import DEFAULT_CONFIG_NAME, LoadedConfig
from orchestrator.errors import CLIError as CLIError

EXIT_FAILED = CLIError.FAILED
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="orchestrator",
    help=(
        "Pick the right LLM for each request. Start with orchestrator simulate (no API key needed)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
cache_app = typer.Typer(
    help="Inspect or clear the response cache.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache")


@dataclass
class State:
    """The global options of one invocation, and the configuration once loaded."""

    config: Optional[Path] = None
    debug: bool = False
    loaded: Optional[LoadedConfig] = None
    notes: list[str] = field(default_factory=list)


STATE = State()


def setup_logging(debug: bool) -> None:
    """Errors only, or everything with ``--debug``, through rich on stderr."""
    handler = RichHandler(console=err_console, show_path=debug, rich_tracebacks=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


ConfigOption = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        "-c",
        help=(
            f"TOML configuration file. Default: ./{DEFAULT_CONFIG_NAME} if present, "
            "else the providers found in the environment. Accepted before or after "
            "the command."
        ),
        show_default=False,
    ),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Log diagnostics and show tracebacks.", show_default=False)
]


def show_version(requested: bool) -> None:
    """``--version``: the distribution's name and version, then exit."""
    if requested:
        console.print(f"{DISTRIBUTION} {__version__}", markup=False)
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        help="Show the installed version and exit.",
        callback=show_version,
        is_eager=True,
        show_default=False,
    ),
]


@app.callback()
def global_options(
    config: ConfigOption = None, debug: DebugOption = False, version: VersionOption = False
) -> None:
    """Pick the right LLM for each request."""
    STATE.config = config
    STATE.debug = debug or STATE.debug
    setup_logging(STATE.debug)
