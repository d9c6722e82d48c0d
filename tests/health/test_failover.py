"""Failover on the registry: generate and stream try the next-best model on a
retryable failure, within a retry budget and a deadline.

In a fresh registry the first model registered is selected first (every
model owes its forced trials; ties go to registration order), which the
tests use to decide which model fails first.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from health_scripted import HANG, CutAfter, ScriptedModel, make_registry

from orchestrator.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    ModelError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    StreamCutError,
)
from orchestrator.models.failover import (
    FailoverExhaustedError,
    FailoverTimeoutError,
    GenerationResult,
)
from orchestrator.models.model_registry import NoEligibleModelsError


async def test_a_prompt_that_is_not_unicode_is_the_callers_error_and_charges_no_model() -> None:
    a = ScriptedModel("a")
    registry = make_registry(a)
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi \udfff"}]}]
    for prompt in ("\ud800", messages):
        with pytest.raises(ValueError, match=r"invalid prompt.*index"):
            await registry.generate(prompt)
        with pytest.raises(ValueError, match="invalid prompt"):
            registry.stream(prompt)
    model = registry.select_model()  # a direct call: refused before sending, ticket released
    with pytest.raises(ValueError, match="invalid prompt"):
        await model.generate_response("\ud800")
    with pytest.raises(ValueError, match="invalid prompt"):
        model.stream_response("\ud800")
    metrics = registry.get_metrics("a")
    assert a.calls == 0
    assert metrics.failures == metrics.requests == metrics.pending == 0


async def test_generate_fails_over_and_says_what_was_tried() -> None:
    a = ScriptedModel("a", script=[ServerError("boom", status_code=503)])
    b = ScriptedModel("b")
    registry = make_registry(a, b)
    result = await registry.generate("hello there", temperature=0.3, capabilities=["chat"])
    assert isinstance(result, GenerationResult)
    assert result.model == "b" and result.text == "b says hi"
    assert [(x.model, x.outcome) for x in result.attempts] == [
        ("a", "server_error"),
        ("b", "ok"),
    ]
    model, outcome, latency = result.attempts[-1]  # attempts are plain tuples too
    assert (model, outcome) == ("b", "ok") and latency >= 0
    assert b.last_kwargs == {"temperature": 0.3}  # generation params pass through
    assert result.input_tokens > 0 and result.output_tokens > 0 and result.cost > 0
    assert result.latency >= max(x.latency for x in result.attempts)
    assert registry.get_metrics("a").failures_by_class == {"server_error": 1}
    assert registry.get_metrics("b").successes == 1
    assert registry._core.outstanding_tickets() == 0


async def test_retry_budget_limits_attempts() -> None:
    models = [ScriptedModel(n, default=ProviderConnectionError("refused")) for n in "abcd"]
    registry = make_registry(*models)
    with pytest.raises(FailoverExhaustedError, match="retry budget of 2") as info:
        await registry.generate("hi", retry_budget=2)
    assert [x.model for x in info.value.attempts] == ["a", "b", "c"]  # never one twice
    assert {x.outcome for x in info.value.attempts} == {"connection"}
    assert isinstance(info.value.__cause__, ProviderConnectionError)
    assert sum(m.calls for m in models) == 3


async def test_running_out_of_models_raises_with_attempts() -> None:
    a = ScriptedModel("a", default=ServerError("x"))
    b = ScriptedModel("b", default=RateLimitError("slow", retry_after=5))
    registry = make_registry(a, b)
    with pytest.raises(FailoverExhaustedError, match="no eligible model left") as info:
        await registry.generate("hi", retry_budget=5)
    assert [(x.model, x.outcome) for x in info.value.attempts] == [
        ("a", "server_error"),
        ("b", "rate_limit"),
    ]
    with pytest.raises(NoEligibleModelsError):  # nothing tried: the selection error itself
        await registry.generate("hi", capabilities=["vision"])


@pytest.mark.parametrize(
    "error",
    [AuthenticationError("bad key", status_code=401), ContextLengthExceededError("too long")],
)
async def test_non_retryable_error_raises_at_once_with_attempts(error: ModelError) -> None:
    a = ScriptedModel("a", default=error)
    b = ScriptedModel("b")
    registry = make_registry(a, b)
    with pytest.raises(type(error)) as info:
        await registry.generate("hi")
    attempts = info.value.attempts  # type: ignore[attr-defined]
    assert [(x.model, x.outcome) for x in attempts] == [("a", error.error_class)]
    assert b.calls == 0


async def test_deadline_bounds_the_whole_request_and_a_hang_is_recorded() -> None:
    a = ScriptedModel("a", default=HANG)
    b = ScriptedModel("b", default=HANG)
    registry = make_registry(a, b)
    started = time.perf_counter()
    with pytest.raises(FailoverTimeoutError, match=r"deadline of 0\.2s") as info:
        await registry.generate("hi", deadline=0.2)
    # Bounded by the deadline, not by the hanging models (generous for a loaded machine).
    assert 0.15 < time.perf_counter() - started < 5.0
    assert isinstance(info.value, TimeoutError)
    assert [(x.model, x.outcome) for x in info.value.attempts] == [("a", "timeout")]
    # The cut call counts as a timeout of that model, so a hanging model trips.
    assert registry.get_metrics("a").failures_by_class == {"timeout": 1}
    assert registry._core.outstanding_tickets() == 0


async def test_attempt_timeout_moves_on_to_the_next_model() -> None:
    a = ScriptedModel("a", default=HANG)
    b = ScriptedModel("b")
    registry = make_registry(a, b)
    result = await registry.generate("hi", attempt_timeout=0.05, deadline=5)
    assert result.model == "b"
    assert [(x.model, x.outcome) for x in result.attempts] == [("a", "timeout"), ("b", "ok")]


async def test_a_models_own_timeout_error_is_retryable() -> None:
    a = ScriptedModel("a", script=[TimeoutError("read timeout")])
    registry = make_registry(a, ScriptedModel("b"))
    result = await registry.generate("hi", deadline=5)
    assert [(x.model, x.outcome) for x in result.attempts] == [("a", "timeout"), ("b", "ok")]


async def test_caller_constraints_and_exclusions_are_kept() -> None:
    a, b, c = ScriptedModel("a", default=ServerError("x")), ScriptedModel("b"), ScriptedModel("c")
    registry = make_registry(a, b, c)
    with pytest.raises(FailoverExhaustedError):
        await registry.generate("hi", exclude_models=["b", "c"])
    assert b.calls == c.calls == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retry_budget": -1}, "retry_budget"),
        ({"retry_budget": 1.5}, "retry_budget"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": -3}, "deadline"),
        ({"attempt_timeout": float("inf")}, "attempt_timeout"),
        ({"max_wait": -1}, "invalid max_wait: -1"),
        ({"max_wait": float("nan")}, "invalid max_wait: nan"),
        ({"max_wait": float("inf")}, "invalid max_wait: inf"),
        ({"max_wait": True}, "invalid max_wait: True"),
        ({"max_wait": "1"}, "invalid max_wait: '1'"),
        ({"capabilities": ["telepathy"]}, "telepathy"),
    ],
)
async def test_bad_arguments_are_clear_errors(kwargs: dict[str, object], match: str) -> None:
    a = ScriptedModel("a")
    registry = make_registry(a)
    with pytest.raises(ValueError, match=match):
        await registry.generate("hi", **kwargs)
    assert a.calls == 0


async def test_stream_fails_over_before_the_first_chunk() -> None:
    a = ScriptedModel("a", script=[ServerError("503 before any token")])
    b = ScriptedModel("b")
    registry = make_registry(a, b)
    stream = registry.stream("hi")
    chunks = [chunk async for chunk in stream]
    assert "".join(chunks) == "Hello, world"
    assert stream.model == "b"
    assert [(x.model, x.outcome) for x in stream.attempts] == [("a", "server_error"), ("b", "ok")]
    assert registry.get_metrics("b").successes == 1
    assert registry._core.outstanding_tickets() == 0


async def test_stream_never_fails_over_after_a_chunk_was_yielded() -> None:
    a = ScriptedModel("a", script=[CutAfter(1)])
    b = ScriptedModel("b")
    registry = make_registry(a, b)
    received: list[str] = []
    with pytest.raises(StreamCutError) as info:
        async for chunk in registry.stream("hi"):
            received.append(chunk)
    assert received == ["Hello"]  # the caller got a's first chunk, and nothing of b
    assert b.calls == 0
    attempts = info.value.attempts  # type: ignore[attr-defined]
    assert [(x.model, x.outcome) for x in attempts] == [("a", "stream_cut")]
    assert registry.get_metrics("a").failures_by_class == {"stream_cut": 1}


async def test_stream_hang_before_first_chunk_times_out_and_fails_over() -> None:
    a = ScriptedModel("a", default=HANG)
    registry = make_registry(a, ScriptedModel("b"))
    stream = registry.stream("hi", attempt_timeout=0.05)
    assert [chunk async for chunk in stream] == ["Hello", ", ", "world"]
    assert [(x.model, x.outcome) for x in stream.attempts] == [("a", "timeout"), ("b", "ok")]


async def test_stream_closed_early_releases_its_selection() -> None:
    registry = make_registry(ScriptedModel("a"))
    stream = registry.stream("hi")
    assert await stream.__anext__() == "Hello"
    await stream.aclose()
    assert registry._core.outstanding_tickets() == 0
    assert registry.get_metrics("a").requests == 0  # abandoned: not an outcome
    assert [chunk async for chunk in stream] == []


async def test_concurrent_requests_each_fail_over() -> None:
    a = ScriptedModel("a", default=ServerError("down"))
    b, c = ScriptedModel("b"), ScriptedModel("c")
    registry = make_registry(a, b, c)
    results = await asyncio.gather(*(registry.generate(f"q{i}") for i in range(30)))
    assert all(r.model in {"b", "c"} for r in results)
    in_flight = a.calls  # selected before any outcome was known
    assert 3 <= in_flight <= 10
    results = await asyncio.gather(*(registry.generate(f"q{i}") for i in range(30)))
    assert all(r.model in {"b", "c"} and len(r.attempts) == 1 for r in results)
    assert a.calls == in_flight  # its breaker is open: no request reaches it
    assert registry._core.outstanding_tickets() == 0


async def test_stream_deadline_after_the_first_chunk_raises_without_failover() -> None:
    a = ScriptedModel("a", script=[CutAfter(2, hang=True)])
    b = ScriptedModel("b")
    registry = make_registry(a, b)
    received: list[str] = []
    with pytest.raises(FailoverTimeoutError):
        async for chunk in registry.stream("hi", deadline=0.2):
            received.append(chunk)
    assert received == ["Hello", ", "]
    assert b.calls == 0
    assert registry._core.outstanding_tickets() == 0
