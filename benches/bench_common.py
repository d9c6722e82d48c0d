"""Shared inputs of the benchmarks: one deterministic fleet of models, built
identically for every contender (our registry, the plain-Python baseline,
LiteLLM's Router, MABWiser), and the request's constraints."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeVar

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from baseline import BaselineModel, BaselineRegistry
from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.models.model_registry import ModelRegistry

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = Path(os.environ.get("ORCH_BENCH_RESULTS", BENCH_DIR / "results"))
#: ``--quick`` in ``benches/run.py``: fewer sizes, seeds and rounds.
QUICK = os.environ.get("ORCH_BENCH_QUICK", "") == "1"
#: ``--full``: also run LiteLLM at 10,000 deployments (minutes per strategy).
FULL = os.environ.get("ORCH_BENCH_FULL", "") == "1"

SIZES: tuple[int, ...] = (10, 100, 1000) if QUICK else (10, 100, 1000, 10000)
#: The request every contender answers: code models with a 16k window that
#: cost at most $0.02 at the core's default request size.
REQUEST: dict[str, Any] = {
    "capabilities": ["code_generation"],
    "max_cost": 0.02,
    "context_length": 16000,
}
INPUT_PRICES = (0.15, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0, 15.0)
CONTEXTS = (8192, 32768, 131072)


@dataclass(frozen=True)
class Spec:
    name: str
    code: bool
    chat: bool
    context_length: int
    input_per_million: float
    output_per_million: float
    speed: float
    success_rate: float
    latency_s: float


def fleet(n: int) -> list[Spec]:
    """``n`` models; about a third satisfy :data:`REQUEST`."""
    return [
        Spec(
            name=f"model-{i:05d}",
            code=i % 2 == 0,
            chat=i % 3 != 0,
            context_length=CONTEXTS[i % 3],
            input_per_million=INPUT_PRICES[i % 8],
            output_per_million=4 * INPUT_PRICES[i % 8],
            speed=40.0 + (i * 37) % 160,
            success_rate=0.90 + (i * 7 % 10) / 100,
            latency_s=0.2 + (i * 13 % 20) / 10,
        )
        for i in range(n)
    ]


def capability_names(s: Spec) -> list[str]:
    names = ["text_generation"]
    if s.code:
        names.append("code_generation")
    if s.chat:
        names.append("chat")
    return names


class BenchModel(Model):
    """A registered model that is never called in the speed benchmarks."""

    async def generate_response(self, prompt: Any, **kwargs: Any) -> str:
        return "ok"

    async def health_check(self) -> bool:
        return True


def warm_outcomes(specs: list[Spec], per_model: int = 5) -> list[tuple[str, bool, float]]:
    """Deterministic history: ``per_model`` outcomes per model, so every
    model is past its forced trials and selection is steady-state UCB."""
    out = []
    for k in range(per_model):
        for i, s in enumerate(specs):
            ok = (i * 31 + k * 17) % 100 < s.success_rate * 100
            out.append((s.name, ok, s.latency_s * (0.8 + 0.1 * k)))
    return out


#: ``(rpm, tpm)`` on every model of the rate-limit benchmarks: the largest
#: the core allows, so the windows never fill and only their check is timed.
BENCH_LIMITS: tuple[int, int] = (1_000_000, 2**40)


def build_registry(
    n: int,
    strategy: str = "ucb",
    warm: bool = True,
    limits: tuple[Optional[int], Optional[int]] = (None, None),
) -> ModelRegistry:
    """Our registry over :func:`fleet` ``(n)``, with a warm history;
    ``limits`` is every model's ``(rpm, tpm)``."""
    logging.getLogger("orchestrator").setLevel(logging.WARNING)
    registry = ModelRegistry(selection_strategy=strategy)
    specs = fleet(n)
    for s in specs:
        caps = ModelCapabilities(
            code_generation=s.code, chat=s.chat, context_length=s.context_length
        )
        cost = ModelCost(
            input_per_million=s.input_per_million, output_per_million=s.output_per_million
        )
        rpm, tpm = limits
        registry.register_model(
            BenchModel(s.name, "bench", caps, cost, speed=s.speed, rpm=rpm, tpm=tpm)
        )
    if warm:
        for name, ok, latency in warm_outcomes(specs):
            registry.report_outcome(name, ok, latency, output_tokens=200)
    return registry


def build_baseline(
    n: int,
    strategy: str = "ucb",
    warm: bool = True,
    limits: tuple[Optional[int], Optional[int]] = (None, None),
) -> BaselineRegistry:
    """The plain-Python baseline over the same fleet, history and limits."""
    registry = BaselineRegistry(strategy)
    specs = fleet(n)
    for s in specs:
        registry.register_model(
            BaselineModel(
                s.name,
                "bench",
                capability_names(s),
                s.context_length,
                s.input_per_million,
                s.output_per_million,
                speed=s.speed,
                rpm=limits[0],
                tpm=limits[1],
            )
        )
    if warm:
        by_name = {m.name: i for i, m in enumerate(registry.models)}
        from baseline import BaselineSelection

        for name, ok, latency in warm_outcomes(specs):
            slot = by_name[name]
            registry.report_outcome(
                BaselineSelection(registry.models[slot], 0, slot), ok, latency, output_tokens=200
            )
    return registry


def in_fresh_context(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a new, empty context, as each request (task) of a server
    would: ``select`` holds its ticket in a context variable for the next
    model call of that task."""
    return contextvars.Context().run(fn, *args, **kwargs)


def litellm_router(n: int, strategy: str, api_base: str = "http://127.0.0.1:9/v1") -> Any:
    """LiteLLM ``Router`` with ``n`` deployments of one model group, the
    fleet's prices as custom pricing, in memory (no Redis)."""
    import litellm
    from litellm import Router

    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model_list = [
        {
            "model_name": "bench",
            "litellm_params": {
                "model": f"openai/{s.name}",
                "api_key": "sk-bench",
                "api_base": api_base,
                "input_cost_per_token": s.input_per_million / 1e6,
                "output_cost_per_token": s.output_per_million / 1e6,
            },
            "model_info": {"id": s.name},
        }
        for s in fleet(n)
    ]
    return Router(model_list=model_list, routing_strategy=strategy)


def run_coroutine(loop: asyncio.AbstractEventLoop, make: Callable[[], Awaitable[T]]) -> T:
    async def call() -> T:
        return await make()

    coro: Coroutine[Any, Any, T] = call()
    return loop.run_until_complete(coro)


def pick_rounds(n: int, cost_per_call_s: float, budget_s: float) -> int:
    """Rounds so a contender costing ``cost_per_call_s`` fits ``budget_s``."""
    return max(3, min(200, int(budget_s / max(cost_per_call_s, 1e-9))))


def optional_float(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)
