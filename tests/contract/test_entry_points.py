"""Every public entry point under attack: hypothesis throws wrong types and
extreme values at each keyword. The result is a correct answer or a clear
exception (``TypeError``/``ValueError`` naming the argument, or one of the
library's own errors); never a panic, a hang or a changed state."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import OrchestratorError
from orchestrator.models.model_registry import ModelRegistry, Selection
from tests.contract.helpers import fleet, state

pytestmark = pytest.mark.timeout(300)

#: Anything a caller might pass by mistake, including extremes.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**64, 2**63, 10**400, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-320, -0.0, 5e-324, 1.7976931348623157e308]),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.one_of(st.text(max_size=12), st.integers(), st.floats()), max_size=3),
    st.sampled_from([["chat"], ["vision"], ["a"], ("b",), {"chat": 1}, object(), [None]]),
)

REQUEST_KEYS = (
    "capabilities",
    "max_cost",
    "min_speed",
    "context_length",
    "exclude_models",
    "input_tokens",
    "output_tokens",
    "prompt",
    "embedding",
    "willingness_to_pay",
    "session_id",
    "tags",
    "alias",
)
OUTCOME_KEYS = (
    "success",
    "latency",
    "error_class",
    "time_to_first_token",
    "input_tokens",
    "output_tokens",
    "cost",
    "quality",
    "retry_after",
)
BATCH_KEYS = (
    "successes",
    "latencies",
    "error_classes",
    "input_tokens",
    "output_tokens",
    "costs",
    "qualities",
)


def registry() -> ModelRegistry:
    return fleet("a", "b")


def attempt(call: Callable[[], Any], r: ModelRegistry, names: list[str]) -> Any:
    """Run ``call``: a clear error leaves the registry unchanged."""
    before = state(r)
    try:
        return call()
    except (TypeError, ValueError, OrchestratorError) as exc:
        if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, OrchestratorError):
            assert any(n in str(exc) for n in names), f"{exc!r} names none of {names}"
        assert state(r) == before
        return None


BUSY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BUSY
@given(
    key=st.sampled_from(REQUEST_KEYS),
    value=anything,
    entry=st.integers(0, 4),
    strategy=st.sampled_from(["ucb", "contextual"]),
)
def test_selection_entry_points(key: str, value: Any, entry: int, strategy: str) -> None:
    r = fleet("a", "b", strategy=strategy)
    calls: list[Callable[[], Any]] = [
        lambda: r.select_model(**{key: value}),
        lambda: r.select(**{key: value}),
        lambda: r.select_many(3, **{key: value}),
        lambda: r.explain_selection(**{key: value}),
        lambda: r.scores(**{key: value}),
    ]
    result = attempt(calls[entry], r, [key])
    if entry == 0 and result is not None:
        assert result.name in ("a", "b")
    if entry == 4 and result is not None:
        names, scores = result
        assert len(names) == len(scores) == 2
        assert all(not math.isnan(s) for s in scores)


@BUSY
@given(count=anything)
def test_select_many_counts(count: Any) -> None:
    r = registry()
    result = attempt(lambda: r.select_many(count), r, ["n"])
    if result is not None:
        assert len(result) == count


@BUSY
@given(key=st.sampled_from(OUTCOME_KEYS), value=anything)
def test_report_outcome(key: str, value: Any) -> None:
    r = registry()
    selection = r.select()
    kwargs: dict[str, Any] = {"success": True, "latency": 0.1, key: value}
    before = r.statistics()["trials"].sum()
    if attempt(lambda: r.report_outcome(selection, **kwargs), r, [key]) is None:
        after = r.statistics()["trials"].sum()
        assert after in (before, before + 1)


@BUSY
@given(key=st.sampled_from(BATCH_KEYS), value=anything)
def test_report_many(key: str, value: Any) -> None:
    r = registry()
    selections = r.select_many(2)
    kwargs: dict[str, Any] = {"successes": [True, True], "latencies": [0.1, 0.1], key: value}
    attempt(lambda: r.report_many(selections, **kwargs), r, [key])


@BUSY
@given(selection=anything)
def test_report_outcome_selections(selection: Any) -> None:
    r = registry()
    attempt(lambda: r.report_outcome(selection, True, 0.1), r, ["selection", "model"])
    attempt(lambda: r.report_many([selection], [True], [0.1]), r, ["selection"])
    assert not isinstance(selection, Selection)


@BUSY
@given(seed=anything)
def test_seed(seed: Any) -> None:
    r = registry()
    attempt(lambda: r.seed(seed), r, ["seed"])
