"""Time is bounded and always reported (finding 9, core half): a stream cut by
the deadline after its first chunk counts as a ``timeout`` outcome that the
breaker sees, and no sequence of outcomes makes a score NaN or infinite."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import _core
from orchestrator.errors import FailoverTimeoutError
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import (
    CostBasedSelector,
    ModelRegistry,
    PerformanceSelector,
    ThompsonSelector,
    UCBModelSelector,
)
from orchestrator.models.selectors import ModelSelector
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)


class StallingStreamer(ScriptedModel):
    """Sends one chunk, then stalls."""

    async def stream_response(self, prompt: Any, **kwargs: Any) -> AsyncIterator[str]:
        yield "first "
        await asyncio.sleep(60)
        yield "never"


async def test_a_stream_cut_mid_way_by_the_deadline_is_a_timeout_outcome() -> None:
    monitor = ModelHealthMonitor(failure_threshold=1)
    registry = ModelRegistry(health_monitor=monitor)
    registry.register_model(StallingStreamer("staller"))
    stream = registry.stream("hi", deadline=0.2)
    assert await stream.__anext__() == "first "
    with pytest.raises(FailoverTimeoutError):
        await stream.__anext__()
    metrics = registry.get_metrics("staller")
    assert metrics.failures_by_class == {"timeout": 1}
    assert metrics.pending == 0
    assert registry.core.breaker(0)["state"] == "open"


SELECTORS: list[ModelSelector] = [
    UCBModelSelector(),
    UCBModelSelector(discount=1e-6),
    ThompsonSelector(seed=3),
    ThompsonSelector(discount=0.5, exploration_factor=1e6),
    PerformanceSelector(min_trials=0),
    CostBasedSelector(),
]

outcomes = st.lists(
    st.tuples(
        st.booleans(),
        st.floats(0.0, _core.MAX_LATENCY_S),
        st.integers(0, _core.MAX_TOKENS),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
        st.floats(0.0, 1e6),
    ),
    max_size=60,
)


@pytest.mark.parametrize("selector", SELECTORS, ids=repr)
@settings(max_examples=40, deadline=None)
@given(outcomes=outcomes)
def test_no_score_is_ever_nan_and_only_a_forced_trial_is_infinite(
    selector: ModelSelector, outcomes: list[tuple[bool, float, int, Any, float]]
) -> None:
    registry = ModelRegistry(model_selector=selector)
    for i in range(3):
        registry.register_model(ScriptedModel(f"m{i}"))
    for success, latency, tokens, quality, cost in outcomes:
        selection = registry.select()
        registry.report_outcome(
            selection,
            success,
            latency,
            error_class="none" if success else "server_error",
            output_tokens=tokens,
            quality=quality,
            cost=cost,
        )
        _, scores = registry.scores()
        assert not any(math.isnan(s) for s in scores)
        for candidate in registry.explain_selection().candidates:
            assert candidate.estimate is None or math.isfinite(candidate.estimate)
            for value in (candidate.score, candidate.exploration_bonus):
                # A forced trial outranks every scored model: +inf, by design.
                assert value is None or math.isfinite(value) or candidate.forced
                assert not candidate.forced or value == math.inf
