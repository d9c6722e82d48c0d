"""The command's entry point: parse, run, and turn every error into one line and
an exit code (see :mod:`orchestrator.cli.app` for the codes)."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from orchestrator.cli import commands
from orchestrator.cli.app import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    STATE,
    CLIError,
    app,
)
from orchestrator.cli.output import (
    console,
    err_console,
    one_line,
    print_error,
    remember_provider_keys,
)
from orchestrator.config import ConfigError
from orchestrator.errors import OrchestratorError

#: What typer's ``get_command`` returns (typer ships its own copy of click).
Command = Any

__all__ = ["commands", "hoist_global_options", "run"]

#: Global options with a value, and flags, that may also be written after the command.
_GLOBAL_WITH_VALUE = ("--config", "-c")
_GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(args: list[str], command_names: set[str]) -> list[str]:
    """``args`` with the global options written after the command moved before it,
    so ``orchestrator models --config x.toml`` means ``orchestrator --config x.toml
    models``. Nothing after ``--`` moves."""
    start = next((i for i, a in enumerate(args) if a in command_names), None)
    if start is None:
        return args
    front, rest, moved = args[:start], [], []
    i = start
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _GLOBAL_WITH_VALUE and i + 1 < len(args):
            moved.extend(args[i : i + 2])
            i += 2
            continue
        if arg.startswith("--config=") or arg in _GLOBAL_FLAGS:
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return [*front, *moved, *rest]


def run(argv: Optional[list[str]] = None) -> None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and exit."""
    command = typer.main.get_command(app)
    names: set[str] = set(getattr(command, "commands", {}))
    args = hoist_global_options(sys.argv[1:] if argv is None else list(argv), names)
    STATE.debug = "--debug" in args
    remember_provider_keys()
    sys.exit(_exit_code(command, args))


def _exit_code(command: Command, args: list[str]) -> int:
    """Run ``command`` and map what it raised to a printed line and an exit code."""
    try:
        result = command.main(args=args, prog_name="orchestrator", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return EXIT_INTERRUPTED  # Ctrl-C: quietly, as shells expect
    except CLIError as exc:
        return _report(str(exc), exc.code)
    except ConfigError as exc:
        return _report(str(exc), EXIT_CONFIG)  # one line per problem
    except typer.TyperException as exc:  # usage errors, parsed by typer's own click
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # its message is the help text
            console.print(message, markup=False)
            return EXIT_USAGE
        code = getattr(exc, "exit_code", EXIT_USAGE)
        return _report(f"{message} (see `orchestrator --help`)", int(code))
    except (OrchestratorError, OSError, ValueError) as exc:
        return _report(one_line(exc) + " (rerun with --debug for details)", EXIT_FAILED)
    except Exception as exc:
        return _report(
            f"unexpected {type(exc).__name__}: {one_line(exc)} (rerun with --debug for the "
            "traceback)",
            EXIT_FAILED,
        )


def _report(message: str, code: int) -> int:
    """Print ``message`` as error lines (and the traceback with ``--debug``)."""
    if STATE.debug:
        err_console.print_exception()
    print_error(message)
    return code
