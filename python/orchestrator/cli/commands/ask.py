"""``orchestrator ask``: one request through the registry, streamed, with its usage."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from orchestrator.cli import context
from orchestrator.cli.app import CLIError, app
from orchestrator.cli.output import console, err_console, money, one_line, print_note
from orchestrator.core.tokens import estimate_tokens
from orchestrator.errors import OrchestratorError
from orchestrator.models.failover import FailoverError
from orchestrator.models.model_registry import ModelRegistry, NoEligibleModelsError


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
    prompt: Annotated[str, typer.Argument(help="The prompt.", show_default=False)],
    capability: context.CapabilityOption = None,
    max_cost: context.MaxCostOption = None,
    min_speed: context.MinSpeedOption = None,
    context_length: context.ContextOption = None,
    exclude: context.ExcludeOption = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream the answer.")] = True,
    use_cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Use the configured cache.")
    ] = True,
    max_tokens: Annotated[
        Optional[int], typer.Option("--max-tokens", min=1, help="Most output tokens.")
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Other models to try after a failure.")
    ] = 2,
    deadline: Annotated[
        Optional[float],
        typer.Option(
            "--deadline", min=0.1, help="Seconds for the whole request, failovers included."
        ),
    ] = None,
) -> None:
    """Ask one question: select a model, call it, stream the answer.

    Uses the cache and fails over to the next model on failure, then prints the
    model, tokens, cost and latency.
    """
    constraints = context.constraints(capability, max_cost, min_speed, context_length, exclude)
    registry = context.registry()
    params: dict[str, Any] = dict(constraints)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if not use_cache:
        params["cache"] = False
    answer = context.run(_ask(registry, prompt, params, stream, retries, deadline))
    if not answer.text.endswith("\n"):
        console.print()
    for name, why in answer.failed:
        print_note(f"failed over from {name}: {why}", style="yellow")
    err_console.print(
        f"[dim]model[/dim] [bold]{escape(answer.model)}[/bold] ({escape(answer.provider)})  "
        f"[dim]tokens[/dim] {answer.input_tokens} in / {answer.output_tokens} out  "
        f"[dim]cost[/dim] {money(answer.cost)}  [dim]latency[/dim] {answer.latency:.2f}s"
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
            f"every model failed: {one_line(exc)}; check keys and hosts with `orchestrator health`"
        ) from None
    except OrchestratorError as exc:
        raise CLIError(f"{one_line(exc)}; check the model's key and endpoint") from None
    finally:
        await context.close(registry)
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
