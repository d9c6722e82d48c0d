"""Strict validation, the same at every entry point (finding 6), and bounded
resources (finding 2): a wrong type is a ``TypeError`` and a bad value a
``ValueError``, each naming the field; nothing is ever silently converted, and
a rejected call changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from orchestrator import _core
from orchestrator.core.model import ModelConstraints
from orchestrator.errors import NoEligibleModelsError, StaleTicketError
from orchestrator.models.model_registry import ModelRegistry, ThompsonSelector
from tests.conftest import ScriptedModel
from tests.contract.helpers import fleet, state

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["ucb", "contextual"])
def registry(request: pytest.FixtureRequest) -> ModelRegistry:
    """The fleet under a bandit strategy and under prompt-aware routing:
    both refuse the same requests the same way."""
    return fleet("a", "b", "c", strategy=request.param)


#: Selecting entry points, each called with one request keyword.
SELECTING: dict[str, Callable[..., Any]] = {
    "select_model": lambda r, **kw: r.select_model(**kw),
    "select": lambda r, **kw: r.select(**kw),
    "select_many": lambda r, **kw: r.select_many(2, **kw),
    "explain_selection": lambda r, **kw: r.explain_selection(**kw),
    "scores": lambda r, **kw: r.scores(**kw),
}

BAD_REQUESTS = [
    ({"capabilities": "chat"}, TypeError, "capabilities"),
    ({"capabilities": [1]}, TypeError, "capabilities"),
    ({"capabilities": ["telepathy"]}, ValueError, "telepathy"),
    ({"exclude_models": "a"}, TypeError, "exclude_models"),
    ({"exclude_models": ["nobody"]}, ValueError, "exclude_models"),
    ({"context_length": "8"}, TypeError, "context_length"),
    ({"context_length": 8.0}, TypeError, "context_length"),
    ({"context_length": True}, TypeError, "context_length"),
    ({"context_length": 2**70}, ValueError, "context_length"),
    ({"context_length": 0}, ValueError, "context_length"),
    ({"max_cost": "0.1"}, TypeError, "max_cost"),
    ({"max_cost": True}, TypeError, "max_cost"),
    ({"max_cost": 10**400}, ValueError, "max_cost"),
    ({"max_cost": math.nan}, ValueError, "max_cost"),
    ({"max_cost": -1.0}, ValueError, "max_cost"),
    ({"min_speed": math.inf}, ValueError, "min_speed"),
    ({"input_tokens": -1}, ValueError, "input_tokens"),
    ({"output_tokens": 1.9}, TypeError, "output_tokens"),
    ({"prompt": 7}, TypeError, "prompt"),
    ({"prompt": b"bytes"}, TypeError, "prompt"),
    ({"prompt": "\ud800"}, ValueError, "prompt"),
    ({"prompt": [{"role": "user"}]}, TypeError, "prompt"),
    ({"prompt": [{"content": 3}]}, TypeError, "prompt"),
    ({"embedding": [0.1, 0.2]}, TypeError, "embedding"),
    ({"embedding": np.zeros(3, np.float64)}, TypeError, "embedding"),
    ({"embedding": np.zeros((2, 2), np.float32)}, ValueError, "embedding"),
    ({"embedding": np.array([0.0, np.nan], np.float32)}, ValueError, "embedding"),
    ({"embedding": np.array([np.inf], np.float32)}, ValueError, "embedding"),
    ({"willingness_to_pay": True}, TypeError, "willingness_to_pay"),
    ({"willingness_to_pay": "1"}, TypeError, "willingness_to_pay"),
    ({"willingness_to_pay": 0.0}, ValueError, "willingness_to_pay"),
    ({"willingness_to_pay": -1.0}, ValueError, "willingness_to_pay"),
    ({"willingness_to_pay": math.inf}, ValueError, "willingness_to_pay"),
    ({"willingness_to_pay": math.nan}, ValueError, "willingness_to_pay"),
    ({"willingness_to_pay": 10**400}, ValueError, "willingness_to_pay"),
    ({"session_id": b"conversation"}, TypeError, "session_id"),
    ({"session_id": 42}, TypeError, "session_id"),
    ({"session_id": ""}, ValueError, "session_id"),
    ({"session_id": "x" * 257}, ValueError, "session_id"),
    ({"session_id": "a\nb"}, ValueError, "session_id"),
    ({"session_id": "\ud800"}, ValueError, "session_id"),
]


@pytest.mark.parametrize("entry", list(SELECTING))
@pytest.mark.parametrize(("kwargs", "error", "field"), BAD_REQUESTS)
def test_every_selecting_entry_point_rejects_the_same_bad_requests(
    registry: ModelRegistry,
    entry: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    field: str,
) -> None:
    before = state(registry)
    with pytest.raises(error, match=field):
        SELECTING[entry](registry, **kwargs)
    assert state(registry) == before


BAD_OUTCOMES = [
    ({"success": "false"}, TypeError, "success"),
    ({"success": None}, TypeError, "success"),
    ({"success": 1}, TypeError, "success"),
    ({"latency": "0.1"}, TypeError, "latency"),
    ({"latency": math.nan}, ValueError, "latency"),
    ({"latency": -0.5}, ValueError, "latency"),
    ({"quality": math.nan}, ValueError, "quality"),
    ({"quality": 1.5}, ValueError, "quality"),
    ({"input_tokens": 1.9}, TypeError, "input_tokens"),
    ({"input_tokens": "7"}, TypeError, "input_tokens"),
    ({"input_tokens": 2**70}, ValueError, "input_tokens"),
    ({"cost": math.inf}, ValueError, "cost"),
    ({"error_class": "gremlins"}, ValueError, "error_class"),
    ({"error_class": 3}, TypeError, "error_class"),
    ({"retry_after": -1.0}, ValueError, "retry_after"),
    ({"latency": 1e300}, ValueError, "latency.*at most"),
    ({"latency": _core.MAX_LATENCY_S * 1.01}, ValueError, "latency"),
    ({"time_to_first_token": 1e300}, ValueError, "time_to_first_token"),
    ({"cost": _core.MAX_COST_USD * 2}, ValueError, "cost"),
    ({"input_tokens": _core.MAX_TOKENS + 1}, ValueError, "input_tokens"),
    ({"output_tokens": 2**63}, ValueError, "output_tokens"),
]


@pytest.mark.parametrize(("change", "error", "field"), BAD_OUTCOMES)
def test_report_outcome_rejects_wrong_types_and_values(
    registry: ModelRegistry, change: dict[str, Any], error: type[Exception], field: str
) -> None:
    selection = registry.select()
    kwargs: dict[str, Any] = {"success": True, "latency": 0.1, **change}
    before = state(registry)
    with pytest.raises(error, match=field):
        registry.report_outcome(selection, **kwargs)
    assert state(registry) == before
    registry.report_outcome(selection, True, 0.1)  # the ticket is still good


BAD_BATCHES = [
    ({"successes": ["false", "false"]}, TypeError, "successes"),
    ({"successes": [True, None]}, TypeError, "successes"),
    ({"successes": "tt"}, TypeError, "successes"),
    ({"latencies": ["0.1", "0.1"]}, TypeError, "latencies"),
    ({"input_tokens": [1.9, 2.0]}, TypeError, "input_tokens"),
    ({"input_tokens": ["7", "7"]}, TypeError, "input_tokens"),
    ({"qualities": [math.nan, 0.5]}, ValueError, "qualities"),
    ({"costs": [0.1]}, ValueError, "costs"),
    ({"error_classes": ["none", "gremlins"]}, ValueError, "error_classes"),
]


@pytest.mark.parametrize(("change", "error", "field"), BAD_BATCHES)
def test_report_many_rejects_what_report_outcome_rejects(
    registry: ModelRegistry, change: dict[str, Any], error: type[Exception], field: str
) -> None:
    selections = registry.select_many(2)
    kwargs: dict[str, Any] = {"successes": [True, True], "latencies": [0.1, 0.1], **change}
    before = state(registry)
    with pytest.raises(error, match=field):
        registry.report_many(selections, **kwargs)
    assert state(registry) == before
    registry.report_many(selections, [True, False], [0.1, 0.2])
    assert sum(registry.statistics()["trials"]) == 2


def test_a_failure_reported_with_class_none_counts_as_other(registry: ModelRegistry) -> None:
    registry.report_outcome(registry.select(), False, 0.1)
    failures: dict[str, int] = {}
    for model in registry.list_models():
        for cls, n in registry.get_metrics(model.name).failures_by_class.items():
            failures[cls] = failures.get(cls, 0) + n
    assert failures == {"other": 1}


def test_seed_and_selector_parameters_are_checked_by_type(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="seed"):
        registry.seed(2**64)
    with pytest.raises(ValueError, match="seed"):
        registry.seed(-1)
    with pytest.raises(TypeError, match="seed"):
        registry.seed(1.5)  # type: ignore[arg-type]
    registry.seed(2**64 - 1)
    with pytest.raises(ValueError, match="discount"):
        ThompsonSelector(discount=1e-320)
    with pytest.raises(TypeError, match="min_trials"):
        ThompsonSelector(min_trials=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [10**10, 2**62, 2**64, _core.MAX_SELECT_MANY + 1, -1])
def test_select_many_has_a_documented_maximum(registry: ModelRegistry, n: int) -> None:
    before = state(registry)
    with pytest.raises(ValueError, match=r"\bn\b"):
        registry.select_many(n)
    assert state(registry) == before


def test_select_many_at_the_maximum_works(registry: ModelRegistry) -> None:
    selections = registry.select_many(_core.MAX_SELECT_MANY)
    assert len(selections) == _core.MAX_SELECT_MANY
    assert registry.core.outstanding_tickets() == _core.MAX_SELECT_MANY


def test_select_many_on_an_unsatisfiable_request_raises(registry: ModelRegistry) -> None:
    with pytest.raises(NoEligibleModelsError, match="vision"):
        registry.select_many(3, capabilities=["vision"])


def test_outstanding_tickets_are_bounded_and_pending_counts_agree() -> None:
    registry = ModelRegistry()
    registry.register_model(ScriptedModel("only"))
    batches = _core.MAX_OUTSTANDING_TICKETS // _core.MAX_SELECT_MANY + 3
    for _ in range(batches):
        registry.select_many(_core.MAX_SELECT_MANY)
    assert registry.core.outstanding_tickets() == _core.MAX_OUTSTANDING_TICKETS
    assert registry.get_metrics("only").pending == _core.MAX_OUTSTANDING_TICKETS


def test_the_documented_maxima_are_accepted_and_stay_finite(registry: ModelRegistry) -> None:
    selections = registry.select_many(2, exclude_models=["b", "c"])
    registry.report_many(
        selections,
        [True, True],
        [_core.MAX_LATENCY_S] * 2,
        costs=[_core.MAX_COST_USD] * 2,
        input_tokens=[_core.MAX_TOKENS] * 2,
    )
    metrics = registry.get_metrics("a")
    assert metrics.latency_p50 == pytest.approx(_core.MAX_LATENCY_S)
    assert metrics.total_cost == 2 * _core.MAX_COST_USD
    assert metrics.input_tokens == 2 * _core.MAX_TOKENS


def test_a_stale_ticket_is_its_own_error(registry: ModelRegistry) -> None:
    selection = registry.select()
    registry.report_outcome(selection, True, 0.1)
    with pytest.raises(StaleTicketError):
        registry.report_outcome(selection, True, 0.1)
    other = ModelRegistry()
    other.register_model(ScriptedModel("a"))
    with pytest.raises(StaleTicketError):
        other.report_outcome(other.select()._replace(slot=7), True, 0.1)


def test_constraints_objects_are_strict_too(registry: ModelRegistry) -> None:
    with pytest.raises(ValidationError, match="context_length"):
        ModelConstraints(context_length="8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="either constraints"):
        registry.select_model(
            capabilities=["chat"], constraints=ModelConstraints(capabilities=["chat"])
        )


async def test_constraints_of_another_type_are_refused_by_name(registry: ModelRegistry) -> None:
    """At selection, and where a call selects for itself (generate's and
    stream's path), a ``constraints`` that is not a ``ModelConstraints``."""
    bad: Any = {"capabilities": ["chat"]}
    with pytest.raises(TypeError, match="invalid constraints: expected ModelConstraints"):
        registry.select_model(constraints=bad)
    with pytest.raises(TypeError, match="invalid constraints: expected ModelConstraints"):
        registry.select_for_call(bad)
    with pytest.raises(TypeError, match="invalid constraints: expected ModelConstraints"):
        await registry.generate("Hello", constraints=bad)
