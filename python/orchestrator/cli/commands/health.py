"""``orchestrator health``: each model's circuit, recent issues and a live probe."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated

import typer

from orchestrator.cli import context
from orchestrator.cli.app import CLIError, app
from orchestrator.cli.output import one_line, print_table, table
from orchestrator.core.model import Model
from orchestrator.models.model_registry import ModelRegistry

Row = tuple[str, str, str, str, str]
_PROBE_FAILED = re.compile(r"health check of (?P<model>.+?)(?: failed)?: (?P<reason>.+)", re.DOTALL)


class ProbeReasons(logging.Handler):
    """Collects why a health check failed: adapters log the reason at WARNING
    (``health check of NAME failed: REASON``) and return ``False``. Other records
    go on to the usual handlers as if this one were not there."""

    def __init__(self, passthrough_level: int) -> None:
        super().__init__(logging.DEBUG)
        self.passthrough_level = passthrough_level
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        # The message, not its arguments: the library's log redaction formats it first.
        found = _PROBE_FAILED.match(record.getMessage())
        if found is not None:
            self.reasons[found["model"]] = found["reason"]
        elif record.levelno >= self.passthrough_level:
            logging.getLogger().handle(record)


@app.command()
def health(
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe", help="Call each model's health check (one cheap request)."
        ),
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per probe.")] = 10.0,
) -> None:
    """Show each model's circuit, recent issues and a live probe.

    The probe is one cheap request per model; --no-probe skips it. Exits 1 if any
    model is unhealthy.
    """
    registry = context.registry()
    rows = context.run(_health(registry, probe, timeout))
    shown = table("model health", ["model", "provider", "circuit", "probe", "issues"])
    bad = 0
    for name, provider, state, probed, issues in rows:
        healthy = state == "closed" and probed in ("ok", "skipped")
        bad += not healthy
        colour = "green" if healthy else "red"
        shown.add_row(name, provider, f"[{colour}]{state}[/{colour}]", probed, issues or "-")
    print_table(shown)
    if bad:
        raise CLIError(f"{bad} of {len(rows)} models unhealthy")


async def _health(registry: ModelRegistry, probe: bool, probe_timeout: float) -> list[Row]:
    library_logger = logging.getLogger("orchestrator")
    level, propagate = library_logger.level, library_logger.propagate
    reasons = ProbeReasons(library_logger.getEffectiveLevel())
    library_logger.addHandler(reasons)
    library_logger.setLevel(min(library_logger.getEffectiveLevel(), logging.WARNING))
    library_logger.propagate = False

    async def one(model: Model) -> Row:
        probed = "skipped"
        if probe:
            try:
                async with asyncio.timeout(probe_timeout):
                    ok = await model.health_check()
                probed = (
                    "ok" if ok else f"failed: {reasons.reasons.get(model.name, 'no reason given')}"
                )
            except TimeoutError:
                probed = f"no answer in {probe_timeout:g}s"
            except Exception as exc:
                probed = f"error: {one_line(exc)}"
        status = await registry.get_model_health(model.name)
        return model.name, model.provider, status.state, probed, "; ".join(status.issues)

    try:
        return list(await asyncio.gather(*(one(m) for m in registry)))
    finally:
        library_logger.removeHandler(reasons)
        library_logger.setLevel(level)
        library_logger.propagate = propagate
        await context.close(registry)
