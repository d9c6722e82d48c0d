"""What commands share: the configuration, the registry built from it, the
request constraints given as options, running their async part, and closing
what a command opened."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from orchestrator.cli.app import EXIT_CONFIG, EXIT_USAGE, STATE, CLIError
from orchestrator.cli.output import print_note, remember_secret_variable
from orchestrator.config import (
    DEFAULT_CONFIG_NAME,
    ConfigError,
    LoadedConfig,
    build_model,
    discover_environment,
    load_config,
    registry_parts,
)
from orchestrator.core.model import check_capability_names
from orchestrator.models.model_registry import ModelRegistry

logger = logging.getLogger("orchestrator.cli")

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with Ctrl-C through the event loop's wake-up pipe.

    ``asyncio.run`` cancels on SIGINT from a Python handler, which runs only
    when the main thread wakes. The kernel may hand a process's SIGINT to
    any of its threads (numpy's BLAS threads included): then the loop slept
    on until its next timer, a silent server's read timeout. A loop signal
    handler has the signal written to the loop's pipe from whatever thread
    receives it. The first Ctrl-C cancels ``main`` (which closes what it
    opened) and raises :class:`KeyboardInterrupt`; a second raises at once.
    """

    async def interruptible() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            if interrupted:
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()

        loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            return await main
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(interruptible())


def load(require_file: bool = False) -> LoadedConfig:
    """The configuration: ``--config``, ``./orchestrator.toml``, else the environment."""
    if STATE.loaded is not None:
        return STATE.loaded
    path = STATE.config
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)
    if path is not None:
        loaded = load_config(path)
    elif require_file:
        raise CLIError(
            f"no configuration: pass --config PATH or create ./{DEFAULT_CONFIG_NAME} "
            "(see examples/orchestrator.toml)",
            EXIT_CONFIG,
        )
    else:
        loaded = discover_environment()
        if not loaded.config.models:
            missing = "; ".join(loaded.notes)
            raise CLIError(
                f"no models: no ./{DEFAULT_CONFIG_NAME}, no --config, and no provider in the "
                f"environment ({missing}); or try `orchestrator simulate`",
                EXIT_CONFIG,
            )
    for entry in loaded.config.models:
        if entry.api_key_env:
            remember_secret_variable(entry.api_key_env)
    STATE.loaded = loaded
    return loaded


def registry(local: bool = False) -> ModelRegistry:
    """The registry of the configuration's models (notes about skipped ones on
    stderr); ``local``: without its ``[state]``, for a command that reads and
    must not join the fleet (a budget's first lease is taken at once)."""
    loaded = load()
    if loaded.path is None:
        built = _registry_from_discovery(loaded)
    else:
        parts = registry_parts(loaded)
        built = ModelRegistry.from_parts(
            dataclasses.replace(parts, state="local") if local else parts
        )
    for note in loaded.notes:
        print_note(note)
    return built


def _registry_from_discovery(loaded: LoadedConfig) -> ModelRegistry:
    """A registry of discovered providers, skipping those whose adapter is missing."""
    built = ModelRegistry()
    for entry in loaded.config.models:
        key = os.environ.get(entry.api_key_env) if entry.api_key_env else None
        try:
            built.register_model(build_model(entry, key))
        except ConfigError as exc:
            loaded.notes.append(f"{entry.provider}: skipped, {exc.problem}")
    if not len(built):
        raise CLIError(
            "no usable provider in the environment (" + "; ".join(loaded.notes) + ")",
            EXIT_CONFIG,
        )
    return built


#: Seconds each close may take when a command ends (Ctrl-C included): a
#: connection stuck on a silent server must not keep the process alive.
CLOSE_TIMEOUT_S = 5.0


async def close(target: ModelRegistry) -> None:
    """Close the registry, its models and its cache, each within
    :data:`CLOSE_TIMEOUT_S`; errors and overruns are only logged. Each close
    is created only when awaited, so an interrupt leaves none un-awaited."""
    closers = [target.aclose, *(m.aclose for m in target)]
    if target.cache is not None:
        closers.append(target.cache.aclose)
    for closer in closers:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await closer()
        except TimeoutError:
            logger.warning(
                "closing %s took over %gs; left to the process exit", closer, CLOSE_TIMEOUT_S
            )
        except Exception:
            logger.debug("closing failed", exc_info=True)


CapabilityOption = Annotated[
    Optional[list[str]],
    typer.Option("--capability", "-k", help="Required capability (repeatable), e.g. chat, vision."),
]
MaxCostOption = Annotated[
    Optional[float], typer.Option("--max-cost", min=0, help="Most USD one request may cost.")
]
MinSpeedOption = Annotated[
    Optional[float], typer.Option("--min-speed", min=0, help="Least output tokens per second.")
]
ContextOption = Annotated[
    Optional[int], typer.Option("--context-length", min=1, help="Context window needed (tokens).")
]
ExcludeOption = Annotated[
    Optional[list[str]], typer.Option("--exclude", "-x", help="Model never to choose (repeatable).")
]


def constraints(
    capability: Optional[list[str]],
    max_cost: Optional[float],
    min_speed: Optional[float],
    context_length: Optional[int],
    exclude: Optional[list[str]],
) -> dict[str, Any]:
    """The selection keyword arguments the options ask for."""
    try:
        check_capability_names(capability or [])
    except ValueError as exc:
        raise CLIError(f"{exc}", EXIT_USAGE) from None
    out: dict[str, Any] = {}
    if capability:
        out["capabilities"] = list(capability)
    if max_cost is not None:
        out["max_cost"] = max_cost
    if min_speed is not None:
        out["min_speed"] = min_speed
    if context_length is not None:
        out["context_length"] = context_length
    if exclude:
        out["exclude_models"] = list(exclude)
    return out
