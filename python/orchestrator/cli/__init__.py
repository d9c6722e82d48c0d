"""The ``orchestrator`` command (Typer + Rich), shipped in the ``[cli]`` extra.

The library never imports this package; the console script's :func:`main` checks
first that the extra is installed, so a base install gets one line saying what to
install instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Optional

#: What ``pip install 'orchestrator-router[cli]'`` brings, as import names.
CLI_PACKAGES = ("typer", "rich", "matplotlib")
EXIT_USAGE = 2


def missing_cli_packages() -> list[str]:
    """The packages of the ``[cli]`` extra that are not installed."""
    return [name for name in CLI_PACKAGES if importlib.util.find_spec(name) is None]


def main(argv: Optional[list[str]] = None) -> None:
    """The console script: run the command, or say which extra to install."""
    missing = missing_cli_packages()
    if missing:
        sys.stderr.write(
            f"error: the orchestrator command needs the [cli] extra ({', '.join(missing)} "
            "not installed): pip install 'orchestrator-router[cli]'\n"
        )
        raise SystemExit(EXIT_USAGE)
    # Imported here, after the check above: the command's modules import typer and rich.
    from orchestrator.cli.main import run

    run(argv)
