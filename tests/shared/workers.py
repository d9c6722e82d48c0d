"""Worker processes of the shared-state tests (importable by ``spawn``).

Each worker builds a registry over simulated models, runs select-and-report
rounds and returns what it recorded, so the parent can compare with Redis.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import time
import traceback
from collections.abc import Callable
from typing import Any, Optional

import redis

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry, UCBModelSelector
from orchestrator.models.shared_spool import SPOOL_DIR_ENV

#: Success probability of each simulated model; "m4" is the best.
RATES = {"m0": 0.50, "m1": 0.60, "m2": 0.70, "m3": 0.75, "m4": 0.90}
BEST = "m4"


class SimModel(Model):
    """A model that is never called: outcomes are simulated by the worker."""

    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            "sim",
            ModelCapabilities(text_generation=True, chat=True, context_length=8192),
            ModelCost(input_per_million=1.0, output_per_million=1.0),
            speed=100.0,
        )

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        raise NotImplementedError

    async def health_check(self) -> bool:
        return True


class CountWarnings(logging.Handler):
    """Counts warnings of the shared-state module."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def make_registry(
    state: str,
    namespace: str,
    sync_interval: float = 0.1,
    tolerant: bool = True,
    **selector: Any,
) -> ModelRegistry:
    """A registry over the simulated models; ``tolerant`` keeps breakers
    closed through the simulated failures (only selection is under test)."""
    monitor = (
        ModelHealthMonitor(failure_threshold=1_000_000, error_rate_threshold=1.0)
        if tolerant
        else None
    )
    registry = ModelRegistry(
        model_selector=UCBModelSelector(**selector),
        health_monitor=monitor,
        state=state,
        state_namespace=namespace,
        sync_interval=sync_interval,
    )
    for name in RATES:
        registry.register_model(SimModel(name))
    return registry


def final_sync(registry: ModelRegistry, timeout: float = 20.0) -> None:
    """Deliver everything; retries while Redis comes back."""
    shared = registry.shared_state
    assert shared is not None
    deadline = time.monotonic() + timeout
    while not shared.sync_now():
        if time.monotonic() > deadline:
            raise RuntimeError("final sync did not succeed")
        time.sleep(0.1)


def entry(queue: Any, barrier: Any, index: int, name: str, kwargs: dict[str, Any]) -> None:
    """Process entry point: run ``name`` (a function of this module, or
    ``module:function``) and put ``(index, result)`` on ``queue``."""
    try:
        module, _, function = name.rpartition(":")
        run = getattr(importlib.import_module(module), function) if module else globals()[name]
        result = run(ready=barrier.wait, index=index, **kwargs)
        queue.put((index, result))
    except BaseException:
        queue.put((index, {"error": traceback.format_exc()}))


def count_rounds(
    ready: Callable[[], Any],
    index: int,
    url: str,
    namespace: str,
    rounds: int,
    pace: float = 0.0,
    spool_dir: Optional[str] = None,
    stop_in_outage: bool = False,
) -> dict[str, Any]:
    """Run ``rounds`` select-and-report rounds; return what was recorded.
    With ``stop_in_outage`` the worker then waits for Redis to go down and
    closes during the outage (its outcomes go to the spool in ``spool_dir``)."""
    if spool_dir is not None:
        os.environ[SPOOL_DIR_ENV] = spool_dir
    handler = CountWarnings()
    logging.getLogger("orchestrator.models.shared_state").addHandler(handler)
    rng = random.Random(index)
    registry = make_registry(url, namespace)
    requests = dict.fromkeys(RATES, 0)
    successes = dict.fromkeys(RATES, 0)
    ready()
    began = time.time()
    for i in range(rounds):
        selection = registry.select()
        name = selection.model.name
        ok = rng.random() < RATES[name]
        registry.report_outcome(selection, ok, 0.2, input_tokens=10, output_tokens=10)
        requests[name] += 1
        successes[name] += ok
        if pace:
            time.sleep(max(0.0, began + (i + 1) * pace - time.time()))
    shared = registry.shared_state
    assert shared is not None
    if stop_in_outage:
        deadline = time.monotonic() + 30
        while shared.connected:
            if time.monotonic() > deadline:
                raise RuntimeError("Redis did not go down")
            time.sleep(0.01)
    else:
        final_sync(registry)
    slots = {m.name: registry._binding(m).slot for m in registry}
    shared_view = {name: registry._core.shared(slot) for name, slot in slots.items()}
    stats = shared.stats
    registry._shared = None  # closed below; keep the registry from publishing
    shared.close()
    return {
        "requests": requests,
        "successes": successes,
        "shared_view": shared_view,
        "warnings": handler.messages,
        "resets": stats.resets,
        "duplicates": stats.duplicates,
        "cpu": stats.cpu_seconds,
        "cycles": stats.cycles,
        "restores": stats.restores,
        "spools_written": stats.spools_written,
        "spools_delivered": stats.spools_delivered,
    }


def breaker_worker(
    ready: Callable[[], Any],
    index: int,
    url: str,
    namespace: str,
    fail_after: float,
    duration: float,
) -> dict[str, Any]:
    """Select and report at about 1 kHz for ``duration`` seconds; every call
    succeeds and the best model is the fastest, except that worker 0 sees the
    best model fail from ``fail_after`` seconds on. Returns when it tripped
    and when each worker selected the model (wall clock)."""
    registry = make_registry(url, namespace, sync_interval=0.1, tolerant=False, min_trials=2)
    assert registry.shared_state is not None and registry.shared_state.wait_subscribed()
    ready()
    fail_at = time.time() + fail_after
    stop_at = time.time() + duration
    tripped: Optional[float] = None
    opened: Optional[float] = None
    best_picks: list[float] = []
    slot = registry._binding(registry.get_model(BEST)).slot
    while time.time() < stop_at:
        selection = registry.select()
        now = time.time()
        name = selection.model.name
        if name == BEST:
            best_picks.append(now)
        failing = index == 0 and name == BEST and now >= fail_at
        if failing:
            registry.report_outcome(selection, False, 0.2, error_class="server_error")
            if tripped is None and registry._core.breaker(slot)["state"] == "open":
                tripped = time.time()
        else:
            registry.report_outcome(selection, True, 0.1 if name == BEST else 3.0)
        if opened is None and registry._core.breaker(slot)["state"] == "open":
            opened = time.time()
        time.sleep(0.001)
    state = registry._core.breaker(slot)["state"]
    shared = registry.shared_state
    assert shared is not None
    received = shared.stats.received
    shared.close()
    return {
        "fail_at": fail_at,
        "tripped": tripped,
        "opened": opened,
        "best_picks": best_picks,
        "state": state,
        "received": received,
    }


def convergence_worker(
    ready: Callable[[], Any],
    index: int,
    state: str,
    namespace: str,
    rounds: int,
    pace: float,
    seed: int = 0,
    sync_every: int = 0,
) -> list[str]:
    """The sequence of models this worker chose, one per round. With
    ``sync_every``, the worker also syncs with Redis itself every that many
    rounds, so how often it learns from the others does not depend on how
    soon a loaded machine runs its sync thread."""
    rng = random.Random(seed * 100 + index)
    registry = make_registry(state, namespace, sync_interval=0.05)
    shared = registry.shared_state
    ready()
    began = time.time()
    chosen = []
    for i in range(rounds):
        selection = registry.select()
        name = selection.model.name
        chosen.append(name)
        registry.report_outcome(selection, rng.random() < RATES[name], 0.2)
        if shared is not None and sync_every and (i + 1) % sync_every == 0:
            assert shared.sync_now()
        time.sleep(max(0.0, began + (i + 1) * pace - time.time()))
    if shared is not None:
        shared.close()
    return chosen


def session_turns(
    ready: Callable[[], Any],
    index: int,
    url: str,
    namespace: str,
    bind_to: str,
) -> dict[str, Any]:
    """Session affinity across workers: worker 0 binds session ``conv`` to
    ``bind_to`` and says so in Redis; worker 1 waits for that, then for the
    binding to arrive (the propagation interval), and selects in the session."""
    registry = make_registry(url, namespace)
    shared = registry.shared_state
    assert shared is not None and shared.wait_subscribed(10.0)
    client = redis.Redis.from_url(url)
    marker = f"test:{namespace}:bound"
    ready()
    try:
        if index == 0:
            others = [name for name in RATES if name != bind_to]
            chosen = registry.select_model(session_id="conv", exclude_models=others).name
            shared.sync_now()
            client.set(marker, chosen)
            return {"chosen": chosen}
        deadline = time.monotonic() + 20.0
        while client.get(marker) is None:
            assert time.monotonic() < deadline, "worker 0 never bound the session"
            time.sleep(0.01)
        waited_from = time.monotonic()
        note = registry.explain_selection(session_id="conv").session
        while not (note or "").startswith("session: kept on"):
            assert time.monotonic() < deadline, f"the binding never arrived: {note}"
            time.sleep(0.005)
            note = registry.explain_selection(session_id="conv").session
        return {
            "continued_on": registry.select_model(session_id="conv").name,
            "fresh": registry.select_model(session_id="another").name,
            "waited": time.monotonic() - waited_from,
        }
    finally:
        client.close()
        registry.close()
