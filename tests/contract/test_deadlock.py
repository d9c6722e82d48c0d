"""Deadlock canaries (finding 1): caller code that the binding runs while it
converts arguments (generators, ``__index__``, ``__float__``) sleeps or calls
back into the registry, on several threads at once. The core converts every
argument before it takes its lock, so none of this can hang; on the old
binding a callback that re-entered the registry hung the process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.models.model_registry import ModelRegistry
from tests.contract.helpers import fleet

pytestmark = pytest.mark.timeout(60)

THREADS = 4
ROUNDS = 25


def models(n: int = 6) -> ModelRegistry:
    return fleet(*(f"m{i}" for i in range(n)))


class Reentrant:
    """A number whose conversion sleeps and then uses the registry."""

    def __init__(self, registry: ModelRegistry, value: float) -> None:
        self.registry = registry
        self.value = value

    def _callback(self) -> None:
        time.sleep(0.001)
        self.registry.select_model()
        self.registry.explain_selection(capabilities=["chat"])
        self.registry.scores()

    def __index__(self) -> int:
        self._callback()
        return int(self.value)

    def __float__(self) -> float:
        self._callback()
        return float(self.value)


def sleeping_capabilities(registry: ModelRegistry) -> Iterator[str]:
    """A generator of capability names that sleeps and re-enters the registry."""
    time.sleep(0.001)
    registry.select_model(capabilities=["chat"])
    yield "chat"
    time.sleep(0.001)
    registry.list_models()
    yield "text_generation"


def run_threads(work: Callable[[int], Any]) -> list[BaseException]:
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            for _ in range(ROUNDS):
                work(i)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=50)
    assert not any(t.is_alive() for t in threads), "a selection thread hung"
    return errors


def test_generator_arguments_that_sleep_and_reenter_do_not_deadlock() -> None:
    registry = models()

    def work(i: int) -> None:
        model = registry.select_model(capabilities=sleeping_capabilities(registry))
        assert model.capabilities.chat
        names = (n for n in [f"m{i}"])  # a generator of exclusions
        assert registry.select_model(exclude_models=names).name != f"m{i}"
        explanation = registry.explain_selection(capabilities=sleeping_capabilities(registry))
        assert explanation.chosen is not None

    assert run_threads(work) == []


def test_index_callbacks_that_reenter_do_not_deadlock() -> None:
    registry = models()

    def work(_: int) -> None:
        model = registry.select_model(context_length=Reentrant(registry, 4096))
        assert model.capabilities.context_length >= 4096
        selection = registry.select(input_tokens=Reentrant(registry, 10))
        registry.report_outcome(
            selection, True, 0.1, input_tokens=Reentrant(registry, 10), output_tokens=5
        )

    assert run_threads(work) == []


def test_float_callbacks_that_reenter_do_not_deadlock() -> None:
    registry = models()

    def work(_: int) -> None:
        registry.select_model(max_cost=Reentrant(registry, 1.0))
        selection = registry.select()
        registry.report_outcome(selection, True, Reentrant(registry, 0.2))
        selections = registry.select_many(Reentrant(registry, 3))  # type: ignore[arg-type]
        registry.report_many(selections, [True] * 3, [Reentrant(registry, 0.1)] * 3)  # type: ignore[list-item]

    assert run_threads(work) == []
    # Every report counted: 25 rounds x 4 threads x (1 + 3) outcomes.
    stats = registry.statistics()
    assert sum(stats["successes"]) == THREADS * ROUNDS * 4


def test_a_callback_that_raises_changes_nothing() -> None:
    registry = models(2)

    class Broken:
        def __float__(self) -> float:
            raise RuntimeError("boom")

    before = registry.core.outstanding_tickets()
    with pytest.raises(RuntimeError, match="boom"):
        registry.select_model(max_cost=Broken())  # type: ignore[arg-type]
    assert registry.core.outstanding_tickets() == before


def reentrant_messages(registry: ModelRegistry) -> Iterator[dict[str, str]]:
    """Chat messages from a generator that sleeps and re-enters the contextual
    registry (selecting, explaining and reporting quality) between messages."""
    time.sleep(0.001)
    selection = registry.select(prompt="inner")
    registry.report_quality(selection.request_id or 0, 1.0)
    yield {"role": "system", "content": "be brief"}
    time.sleep(0.001)
    registry.explain_selection(prompt="inner")
    yield {"role": "user", "content": "what is 2+2"}


def test_contextual_prompts_that_sleep_and_reenter_do_not_deadlock() -> None:
    registry = fleet(*(f"m{i}" for i in range(6)), strategy="contextual")

    def work(_: int) -> None:
        selection = registry.select(
            prompt=reentrant_messages(registry),  # type: ignore[arg-type]
            willingness_to_pay=Reentrant(registry, 0.5),  # type: ignore[arg-type]
        )
        registry.report_quality(selection.request_id or 0, Reentrant(registry, 0.5))  # type: ignore[arg-type]
        registry.scores(prompt=reentrant_messages(registry))  # type: ignore[arg-type]
        registry.select_many(2, prompt=reentrant_messages(registry))  # type: ignore[arg-type]

    assert run_threads(work) == []
