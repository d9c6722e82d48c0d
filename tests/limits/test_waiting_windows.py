"""Waiting for the soonest slot of a full ``rpm`` window (issue 14, item 6;
LiteLLM #3646), the case ``test_waiting.py`` leaves out: there the wait is
for a 429's Retry-After, a provider's allowance or a minute budget. Here the
registry's own window is full (shortened to half a second, a core parameter,
so the real clock moves it): ``generate`` and ``stream`` with a deadline wait
for the oldest request to leave it, requests that wait together are each
sent once a slot is theirs, and no more than ``rpm`` are ever sent in one
window."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)

WINDOW = 0.5


def limited(*models: ScriptedModel) -> ModelRegistry:
    registry = ModelRegistry()
    registry.core.set_rate_limit_window(WINDOW)
    for model in models:
        registry.register_model(model)
    return registry


async def test_a_full_window_is_waited_for_within_the_deadline() -> None:
    model = ScriptedModel("a", rpm=1)
    registry = limited(model)
    await registry.generate("first")
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model()
    assert info.value.reasons["a"].startswith("rate_limit: 1/1 requests in the last 0.5 s")
    assert info.value.retry_in is not None and 0 < info.value.retry_in <= WINDOW
    result = await registry.generate("second", deadline=10)
    assert [a.outcome for a in result.attempts] == ["ok"] and model.calls == 2
    stream = registry.stream("third", deadline=10)
    assert "".join([chunk async for chunk in stream]) and model.calls == 3


async def test_the_soonest_of_several_full_windows_is_taken() -> None:
    first, second = ScriptedModel("a", rpm=1), ScriptedModel("b", rpm=1)
    registry = limited(first, second)
    await registry.generate("one")
    await registry.generate("two")
    result = await registry.generate("three", deadline=10)
    assert result.model == "a", "a's request leaves its window first"
    assert (first.calls, second.calls) == (2, 1)


async def test_requests_waiting_together_are_each_sent_within_the_limit() -> None:
    """Six requests at once against ``rpm=2``: all are sent, and since at
    most two fit in a window, the fifth and sixth waited for a third one (a
    lower bound that a window admitting more would break)."""
    model = ScriptedModel("a", rpm=2)
    registry = limited(model)
    started = time.monotonic()
    results = await asyncio.gather(*(registry.generate(f"q{i}", deadline=20) for i in range(6)))
    assert len(results) == 6 and model.calls == 6
    assert time.monotonic() - started >= 2 * WINDOW
    assert all([a.outcome for a in r.attempts] == ["ok"] for r in results)


async def test_at_most_max_waiting_requests_wait_the_rest_fail_at_once() -> None:
    """A flood against a full window: ``max_waiting`` requests wait for a
    slot; the others fail at once with the window's ``retry_in`` (a 429 with
    Retry-After at the gateway) instead of each holding a task open."""
    model = ScriptedModel("a", rpm=1)
    registry = ModelRegistry(max_waiting=2)
    registry.core.set_rate_limit_window(WINDOW)
    registry.register_model(model)
    await registry.generate("first")
    outcomes = await asyncio.gather(
        *(registry.generate(f"q{i}", deadline=20) for i in range(6)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, NoEligibleModelsError)]
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(served), len(refused)) == (2, 4), outcomes
    assert all(e.retry_in is not None and 0 < e.retry_in <= WINDOW for e in refused)
    assert model.calls == 3 and registry.slot_waiters.waiting == 0
    never = ModelRegistry(max_waiting=0)
    never.core.set_rate_limit_window(WINDOW)
    never.register_model(ScriptedModel("b", rpm=1))
    await never.generate("first")
    with pytest.raises(NoEligibleModelsError):
        await never.generate("second", deadline=20)


@pytest.mark.parametrize(
    ("bad", "error", "why"),
    [
        (-1, ValueError, r"\(0 to 1,000,000; 0: never wait\)"),
        (10**6 + 1, ValueError, r"\(0 to 1,000,000"),
        (True, TypeError, r"\(an int is required, got bool\)"),
        (2.0, TypeError, r"\(an int is required, got float\)"),
        ("8", TypeError, r"\(an int is required, got str\)"),
        (None, TypeError, r"\(an int is required, got NoneType\)"),
    ],
)
def test_a_bad_max_waiting_names_the_field_and_the_value(
    bad: object, error: type[Exception], why: str
) -> None:
    with pytest.raises(error, match=rf"invalid max_waiting: {re.escape(repr(bad))} {why}"):
        ModelRegistry(max_waiting=bad)  # type: ignore[arg-type]


def test_the_configuration_sets_max_waiting(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text(
        '[selection]\nmax_waiting = 3\n\n[[models]]\nprovider = "simulated"\nname = "m"\n'
    )
    assert ModelRegistry.from_config(path).slot_waiters.limit == 3
    assert ModelRegistry().slot_waiters.limit == 1024, "the documented default"
