"""The ``orchestrator`` command (Typer + Rich).

``orchestrator simulate`` runs a real registry over simulated models (no API
key needed); ``models``, ``select``, ``ask``, ``health`` and ``cache`` work on
the models of a TOML file (``--config``, else ``./orchestrator.toml``, else the
providers found in the environment).

Exit codes: 0 success, 1 the request failed (no eligible model, every model
failed, a model unhealthy), 2 usage error, 3 configuration error, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.config import (
    DEFAULT_CONFIG_NAME,
    ConfigError,
    LoadedConfig,
    build_cache,
    build_registry,
    discover_environment,
    load_config,
)
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.core.cache import ModelCache
    from orchestrator.core.model import Model
    from orchestrator.models.model_registry import ModelRegistry
    from orchestrator.simulation import SimulationResult

logger = logging.getLogger("orchestrator.cli")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INTERRUPTED = 130

DEFAULT_PLOT = Path("orchestrator-simulation.png")
STRATEGIES = [
    "ucb",
    "discounted_ucb",
    "thompson",
    "discounted_thompson",
    "performance",
    "cost",
    "random",
    "oracle",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="orchestrator",
    help=(
        "Pick the right LLM for each request. Start with `orchestrator simulate` "
        "(no API key needed)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
cache_app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


class CLIError(Exception):
    """An error the CLI reports as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class State:
    """Global options."""

    config: Optional[Path] = None
    debug: bool = False
    loaded: Optional[LoadedConfig] = None
    notes: list[str] = field(default_factory=list)


STATE = State()


def _setup_logging(debug: bool) -> None:
    handler = RichHandler(console=err_console, show_path=debug, rich_tracebacks=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


@app.callback()
def _global(
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            "-c",
            help=f"TOML configuration file [default: ./{DEFAULT_CONFIG_NAME} if present, "
            "else the providers found in the environment].",
            show_default=False,
        ),
    ] = None,
    debug: bool = typer.Option(False, "--debug", help="Log diagnostics and show tracebacks."),
) -> None:
    """Pick the right LLM for each request."""
    STATE.config = config
    STATE.debug = debug or STATE.debug
    _setup_logging(STATE.debug)


# ----- helpers -------------------------------------------------------------------


def _config(require_file: bool = False) -> LoadedConfig:
    """The configuration: ``--config``, ``./orchestrator.toml``, else the environment."""
    if STATE.loaded is not None:
        return STATE.loaded
    path = STATE.config
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)
    if path is not None:
        STATE.loaded = load_config(path)
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
        STATE.loaded = loaded
    return STATE.loaded


def _registry() -> ModelRegistry:
    loaded = _config()
    registry = _registry_from_discovery(loaded) if loaded.path is None else build_registry(loaded)
    for note in loaded.notes:
        err_console.print(f"[dim]{note}[/dim]")
    return registry


def _registry_from_discovery(loaded: LoadedConfig) -> ModelRegistry:
    """A registry of discovered providers, skipping those whose adapter is missing."""
    from orchestrator.config import build_model
    from orchestrator.models.model_registry import ModelRegistry

    registry = ModelRegistry()
    for entry in loaded.config.models:
        key = os.environ.get(entry.api_key_env) if entry.api_key_env else None
        try:
            registry.register_model(build_model(entry, key))
        except ConfigError as exc:
            loaded.notes.append(f"{entry.provider}: skipped, {exc.problem}")
    if not len(registry):
        raise CLIError(
            "no usable provider in the environment (" + "; ".join(loaded.notes) + ")",
            EXIT_CONFIG,
        )
    return registry


def _money(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _constraints(
    capability: Optional[list[str]],
    max_cost: Optional[float],
    min_speed: Optional[float],
    context_length: Optional[int],
    exclude: Optional[list[str]],
) -> dict[str, Any]:
    from orchestrator.core.model import check_capability_names

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


CapabilityOpt = typer.Option(
    None, "--capability", "-k", help="Required capability (repeatable), e.g. chat, vision."
)
MaxCostOpt = typer.Option(None, "--max-cost", min=0, help="Most USD one request may cost.")
MinSpeedOpt = typer.Option(None, "--min-speed", min=0, help="Least output tokens per second.")
ContextOpt = typer.Option(None, "--context-length", min=1, help="Context window needed (tokens).")
ExcludeOpt = typer.Option(None, "--exclude", "-x", help="Model never to choose (repeatable).")


# ----- simulate ---------------------------------------------------------------------


@app.command()
def simulate(
    scenario: str = typer.Option(
        "default",
        "--scenario",
        "-s",
        help="default, stationary, drift, outage or price_constrained.",
    ),
    strategy: str = typer.Option(
        "thompson",
        "--strategy",
        help=f"One of: {', '.join(STRATEGIES)}.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: same seed, same numbers."),
    requests: Optional[int] = typer.Option(
        None, "--requests", "-n", min=1, max=1_000_000, help="Requests to simulate [default: 5000]."
    ),
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the plot (PNG).")
    ] = DEFAULT_PLOT,
    cache: bool = typer.Option(
        True, "--cache/--no-cache", help="Serve repeated prompts from a cache."
    ),
    json_path: Annotated[
        Optional[Path],
        typer.Option("--json", help="Also write the totals and per-model numbers as JSON."),
    ] = None,
) -> None:
    """Run thousands of requests through a real registry over simulated models
    (no API key): traffic, reward, regret against an oracle, outages, cache, cost."""
    from orchestrator import simulation as sim

    if scenario not in sim.SCENARIOS:
        raise CLIError(
            f"unknown scenario {scenario!r}; choose one of {', '.join(sim.SCENARIOS)}", EXIT_USAGE
        )
    if strategy not in STRATEGIES:
        raise CLIError(
            f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}", EXIT_USAGE
        )
    if output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CLIError(f"--output must end in .png, .svg or .pdf, got {output}", EXIT_USAGE)
    world = sim.get_scenario(scenario)
    total = requests or world.requests
    model_cache = _simulation_cache() if cache else None
    with Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"{scenario} with {strategy}", total=total)
        result = sim.run(
            world,
            strategy,
            seed=seed,
            requests=total,
            cache=model_cache,
            progress=lambda done: progress.update(task, completed=done),
            progress_every=max(1, total // 200),
        )
    _print_simulation(world, result, model_cache is not None)
    path = _plot(result, world, output)
    console.print(f"plot: {path}")
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        console.print(f"numbers: {json_path.resolve()}")


def _simulation_cache() -> Optional[ModelCache]:
    try:
        from orchestrator.core.cache import ModelCache
    except ImportError as exc:
        logger.warning("no cache available (%s); simulating without one", exc)
        err_console.print("[yellow]cache unavailable; simulating without one[/yellow]")
        return None
    cache: ModelCache = ModelCache(backend="memory", max_size=100_000)
    return cache


def _print_simulation(scenario: Any, result: SimulationResult, cached: bool) -> None:
    console.print(f"[bold]{scenario.name}[/bold]: {scenario.description}")
    table = Table(
        title=(f"{result.requests:,} requests, strategy {result.strategy}, seed {result.seed}"),
        title_justify="left",
    )
    table.add_column("model", no_wrap=True)
    table.add_column("traffic", justify="right")
    table.add_column("mean reward", justify="right")
    table.add_column("regret", justify="right")
    table.add_column("dead hits", justify="right")
    table.add_column("cache hits", justify="right")
    table.add_column("cost", justify="right")
    for i, row in enumerate(result.summary()):
        mask = result.chosen == i
        regret = float(result.regret[mask].sum())
        name = row.name if i in result.eligible else f"{row.name} [dim](over max_cost)[/dim]"
        table.add_row(
            name,
            f"{row.share:6.1%}",
            "-" if row.requests == 0 else f"{row.mean_reward:.3f}",
            f"{regret:.1f}",
            str(row.dead_hits),
            str(row.cache_hits),
            _money(row.cost),
        )
    table.add_section()
    table.add_row(
        "[bold]all[/bold]",
        "100.0%",
        f"[bold]{result.mean_reward:.3f}[/bold]",
        f"[bold]{result.cumulative_regret:.1f}[/bold]",
        f"[bold]{result.dead_hits}[/bold]",
        f"[bold]{result.cache_hit_rate:.1%}[/bold]" if cached else "off",
        f"[bold]{_money(result.total_cost)}[/bold]",
    )
    console.print(table)
    console.print(
        f"oracle mean reward {result.mean_oracle_reward:.3f} (it knew the truth); "
        f"regret = oracle's expected reward - chosen model's, summed over requests "
        f"({result.cumulative_regret / result.requests:.4f} per request); "
        f"failed requests {result.failures}"
    )


def _plot(result: SimulationResult, scenario: Any, output: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, reward, oracle, share = result.timeline(bins=60)
    x = x * result.requests
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.2]}
    )
    for change in scenario.changes:
        for axis in (top, bottom):
            axis.axvspan(change.start * result.requests, change.end * result.requests,
                         color="0.85", zorder=0)  # fmt: skip
        top.text(
            (change.start + change.end) / 2 * result.requests, 1.0,
            f"{change.model}\n{change.label}", ha="center", va="top", fontsize=8,
        )  # fmt: skip
    top.plot(x, oracle, color="black", linestyle="--", linewidth=1.2, label="oracle (expected)")
    top.plot(x, reward, color="tab:blue", linewidth=1.8, label=f"{result.strategy} (observed)")
    top.set_ylabel("mean reward")
    low = float(min(reward.min(), oracle.min()))
    top.set_ylim(max(0.0, low - 0.1), 1.02)
    top.legend(loc="lower left", fontsize=8)
    top.set_title(
        f"orchestrator simulate: {result.scenario}, {result.strategy}, seed {result.seed} "
        f"(regret {result.cumulative_regret:.1f}, dead-model hits {result.dead_hits}, "
        f"cache hits {result.cache_hit_rate:.0%})",
        fontsize=10,
    )
    bottom.stackplot(x, share.T, labels=result.model_names, alpha=0.9)
    bottom.set_ylabel("traffic share")
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("request")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output.resolve()


# ----- models / select ---------------------------------------------------------------


@app.command()
def models() -> None:
    """List the registered models (from the config, else the environment)."""
    registry = _registry()
    table = Table(
        title=f"{len(registry)} models, strategy {registry.strategy}", title_justify="left"
    )
    for column in ("name", "provider", "context", "$/M in", "$/M out", "speed", "capabilities"):
        table.add_column(column, justify="right" if column.startswith(("$", "c", "s")) else "left")
    for model in registry:
        cost = model.cost
        table.add_row(
            model.name,
            model.provider,
            f"{model.capabilities.context_length:,}" if model.capabilities.context_length else "?",
            "unpriced" if cost is None else f"{cost.input_per_million:g}",
            "unpriced" if cost is None else f"{cost.output_per_million:g}",
            "?" if model.speed is None else f"{model.speed:g}",
            ", ".join(model.capabilities.names()),
        )
    console.print(table)


@app.command()
def select(
    capability: Optional[list[str]] = CapabilityOpt,
    max_cost: Optional[float] = MaxCostOpt,
    min_speed: Optional[float] = MinSpeedOpt,
    context_length: Optional[int] = ContextOpt,
    exclude: Optional[list[str]] = ExcludeOpt,
    explain: bool = typer.Option(False, "--explain", "-e", help="Show every model's verdict."),
) -> None:
    """Show which model a request would go to (and why, with --explain)."""
    from orchestrator.models.model_registry import NoEligibleModelsError

    constraints = _constraints(capability, max_cost, min_speed, context_length, exclude)
    registry = _registry()
    explanation = registry.explain_selection(**constraints)
    chosen = explanation.chosen
    if chosen is None and any(c.eligible for c in explanation.candidates):
        chosen = registry.select_model(**constraints).name
    if explain:
        table = Table(title=f"strategy {explanation.strategy}", title_justify="left")
        for column in ("model", "verdict", "score", "estimate", "bonus", "trials", "cost/request"):
            table.add_column(column, justify="left" if column in ("model", "verdict") else "right")
        for c in explanation.candidates:
            if not c.eligible:
                verdict = f"[red]rejected[/red]: {c.constraint} ({c.reason})"
            elif c.name == chosen:
                verdict = "[green]chosen[/green]" + (" (forced trial)" if c.forced else "")
            else:
                verdict = "eligible" + (" (forced trial)" if c.forced else "")
            table.add_row(
                c.name,
                verdict,
                "-" if c.score is None or not math.isfinite(c.score) else f"{c.score:.4f}",
                "-" if c.estimate is None else f"{c.estimate:.4f}",
                "-"
                if c.exploration_bonus is None or not math.isfinite(c.exploration_bonus)
                else f"{c.exploration_bonus:.4f}",
                str(c.trials),
                _money(c.expected_cost),
            )
        console.print(table)
        if explanation.all_breakers_open:
            console.print("every eligible model's circuit is open; probing the soonest to recover")
    if chosen is None:
        raise CLIError(str(NoEligibleModelsError(explanation)) + "; relax the constraints")
    model = registry.get_model(chosen)
    console.print(f"selected: [bold]{model.name}[/bold] ({model.provider})")


# ----- ask ------------------------------------------------------------------------------


@dataclass
class Answer:
    """What ``ask`` prints at the end."""

    text: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost: float
    latency: float
    cached: bool
    failed: list[tuple[str, str]]


@app.command()
def ask(
    prompt: str = typer.Argument(..., help="The prompt."),
    capability: Optional[list[str]] = CapabilityOpt,
    max_cost: Optional[float] = MaxCostOpt,
    min_speed: Optional[float] = MinSpeedOpt,
    context_length: Optional[int] = ContextOpt,
    exclude: Optional[list[str]] = ExcludeOpt,
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Stream the answer."),
    use_cache: bool = typer.Option(True, "--cache/--no-cache", help="Use the configured cache."),
    max_tokens: Optional[int] = typer.Option(
        None, "--max-tokens", min=1, help="Most output tokens."
    ),
    retries: int = typer.Option(2, "--retries", min=0, help="Other models to try after a failure."),
    deadline: Optional[float] = typer.Option(
        None, "--deadline", min=0.1, help="Seconds for the whole request, failovers included."
    ),
) -> None:
    """Select a model, call it (cache, failover to the next model on failure),
    stream the answer, then print model, tokens, cost and latency."""
    constraints = _constraints(capability, max_cost, min_speed, context_length, exclude)
    registry = _registry()
    params: dict[str, Any] = dict(constraints)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if not use_cache:
        params["cache"] = False
    answer = asyncio.run(_ask(registry, prompt, params, stream, retries, deadline))
    if not answer.text.endswith("\n"):
        console.print()
    for name, why in answer.failed:
        err_console.print(f"[yellow]failed over from {name}: {_escape(why)}[/yellow]")
    if not answer.cost:
        cost = "$0"
    elif answer.cost < 0.0001:
        cost = f"${answer.cost:.6f}"
    else:
        cost = _money(answer.cost)
    err_console.print(
        f"[dim]model[/dim] [bold]{answer.model}[/bold] ({answer.provider})  "
        f"[dim]tokens[/dim] {answer.input_tokens} in / {answer.output_tokens} out  "
        f"[dim]cost[/dim] {cost}  [dim]latency[/dim] {answer.latency:.2f}s"
        + ("  [dim](from cache)[/dim]" if answer.cached else "")
    )


async def _ask(
    registry: ModelRegistry,
    prompt: str,
    params: dict[str, Any],
    stream: bool,
    retries: int,
    deadline: Optional[float],
) -> Answer:
    """One request through ``registry.stream``/``registry.generate`` (select,
    cache, call, fail over), with the answering call's measured usage."""
    from orchestrator.core.model import estimate_tokens
    from orchestrator.models.failover import FailoverError
    from orchestrator.models.model_registry import NoEligibleModelsError

    before = {m.name: registry.get_metrics(m.name) for m in registry}
    started = time.perf_counter()
    chunks: list[str] = []
    name: Optional[str]
    try:
        if stream:
            answer_stream = registry.stream(
                prompt, retry_budget=retries, deadline=deadline, **params
            )
            try:
                async for chunk in answer_stream:
                    chunks.append(chunk)
                    console.print(chunk, end="", markup=False, highlight=False, soft_wrap=True)
            finally:
                await answer_stream.aclose()
            name, attempts = answer_stream.model, list(answer_stream.attempts)
        else:
            result = await registry.generate(
                prompt, retry_budget=retries, deadline=deadline, **params
            )
            chunks.append(result.text)
            console.print(result.text, end="", markup=False, highlight=False, soft_wrap=True)
            name, attempts = result.model, list(result.attempts)
    except NoEligibleModelsError as exc:
        raise CLIError(f"{exc}; relax the constraints") from None
    except FailoverError as exc:
        raise CLIError(
            f"every model failed: {_one_line(exc)}; check keys and hosts with `orchestrator health`"
        ) from None
    except OrchestratorError as exc:
        raise CLIError(f"{_one_line(exc)}; check the model's key and endpoint") from None
    finally:
        await _close(registry)
    latency = time.perf_counter() - started
    if name is None:
        raise CLIError("no model answered")
    model = registry.get_model(name)
    text = "".join(chunks)
    after = registry.get_metrics(name)
    old = before[name]
    called = after.successes > old.successes
    if called:
        tokens_in = after.input_tokens - old.input_tokens
        tokens_out = after.output_tokens - old.output_tokens
        cost = after.total_cost - old.total_cost
    else:  # served from the cache
        tokens_in, tokens_out, cost = estimate_tokens(prompt), estimate_tokens(text), 0.0
    failed = [(a.model, a.outcome) for a in attempts if a.outcome != "ok"]
    return Answer(
        text, model.name, model.provider, tokens_in, tokens_out, cost, latency, not called, failed
    )


async def _close(registry: ModelRegistry) -> None:
    """Close the registry, its models and its cache; errors are only logged."""
    closers = [registry.aclose(), *(m.aclose() for m in registry)]
    if registry.cache is not None:
        closers.append(registry.cache.aclose())
    for closer in closers:
        try:
            await closer
        except Exception:
            logger.debug("closing failed", exc_info=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


# ----- health ---------------------------------------------------------------------------


@app.command()
def health(
    probe: bool = typer.Option(
        True, "--probe/--no-probe", help="Call each model's health check (one cheap request)."
    ),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per probe."),
) -> None:
    """Each model's state: circuit breaker, recent errors and (with --probe) a live check.
    Exits 1 if any model is unhealthy."""
    registry = _registry()
    rows = asyncio.run(_health(registry, probe, timeout))
    table = Table(title="model health", title_justify="left")
    for column in ("model", "provider", "circuit", "probe", "issues"):
        table.add_column(column)
    bad = 0
    for name, provider, state, probed, issues in rows:
        healthy = state == "closed" and probed in ("ok", "skipped")
        bad += not healthy
        colour = "green" if healthy else "red"
        table.add_row(name, provider, f"[{colour}]{state}[/{colour}]", probed, issues or "-")
    console.print(table)
    if bad:
        raise CLIError(f"{bad} of {len(rows)} models unhealthy")


async def _health(
    registry: ModelRegistry, probe: bool, probe_timeout: float
) -> list[tuple[str, str, str, str, str]]:
    async def one(model: Model) -> tuple[str, str, str, str, str]:
        probed = "skipped"
        if probe:
            try:
                ok = await asyncio.wait_for(model.health_check(), probe_timeout)
                probed = "ok" if ok else "failed"
            except TimeoutError:
                probed = f"no answer in {probe_timeout:g}s"
            except Exception as exc:
                probed = f"error: {_one_line(exc)}"
        status = await registry.get_model_health(model.name)
        return model.name, model.provider, status.state, probed, "; ".join(status.issues)

    try:
        return list(await asyncio.gather(*(one(m) for m in registry)))
    finally:
        await _close(registry)


# ----- cache ------------------------------------------------------------------------------


def _configured_cache() -> ModelCache:
    loaded = _config(require_file=True)
    base = loaded.path.parent if loaded.path is not None else None
    cache = build_cache(loaded.config.cache, base)
    if cache is None:
        raise CLIError(
            f"no cache configured in {loaded.path}: add a [cache] table with enabled = true",
            EXIT_CONFIG,
        )
    return cache


def _as_dict(stats: Any) -> dict[str, Any]:
    if isinstance(stats, dict):
        return dict(stats)
    if hasattr(stats, "model_dump"):
        dumped: dict[str, Any] = stats.model_dump()
        return dumped
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    return {k: v for k, v in vars(stats).items() if not k.startswith("_")}


@cache_app.command("stats")
def cache_stats() -> None:
    """Show the configured cache's statistics."""
    cache = _configured_cache()
    stats = _as_dict(cache.get_statistics())
    table = Table(title="cache", title_justify="left")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        shown = f"{value:.2%}" if "rate" in key and isinstance(value, float) else str(value)
        table.add_row(key, shown)
    console.print(table)
    loaded = STATE.loaded
    if loaded is not None and loaded.config.cache.backend == "memory":
        console.print(
            '[dim]the memory backend lives in one process; use backend = "disk" or '
            '"redis" to keep answers between commands[/dim]'
        )


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove every cached answer."""
    cache = _configured_cache()
    result = cache.clear()
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    console.print("cache cleared")


# ----- entry point ----------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    err_console.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True, markup=True)
    return code


def main(argv: Optional[list[str]] = None) -> None:
    """The console script: run the app, turning errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    STATE.debug = "--debug" in args
    command = typer.main.get_command(app)
    code = 0
    try:
        result = command.main(args=args, prog_name="orchestrator", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = _fail("aborted", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        code = _fail("interrupted", EXIT_INTERRUPTED)
    except CLIError as exc:
        if STATE.debug:
            err_console.print_exception()
        code = _fail(_escape(str(exc)), exc.code)
    except ConfigError as exc:
        if STATE.debug:
            err_console.print_exception()
        code = _fail(_escape(str(exc)), EXIT_CONFIG)
    except typer.TyperException as exc:  # click usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":
            code = EXIT_USAGE
        else:
            format_message = getattr(exc, "format_message", None)
            message = format_message() if callable(format_message) else str(exc)
            code = _fail(
                _escape(f"{message} (see `orchestrator --help`)"),
                int(getattr(exc, "exit_code", EXIT_USAGE)),
            )
    except (OrchestratorError, OSError, ValueError) as exc:
        if STATE.debug:
            err_console.print_exception()
        code = _fail(_escape(_one_line(exc)) + " (rerun with --debug for details)", EXIT_FAILED)
    except Exception as exc:
        if STATE.debug:
            err_console.print_exception()
        code = _fail(
            _escape(f"unexpected {type(exc).__name__}: {_one_line(exc)}")
            + " (rerun with --debug for the traceback)",
            EXIT_FAILED,
        )
    sys.exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    main()
