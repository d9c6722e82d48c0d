"""Finding 9 (transport half): a provider's ``Retry-After`` is honoured only
up to a cap (``RetryPolicy.max_retry_after``, at most ``MAX_RETRY_AFTER``),
whatever its form (delta-seconds, an HTTP-date in year 9999, an overflowing
number, a ``retryDelay`` in a Gemini error body), and the cap is logged once."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.waits import caller_waits
from orchestrator.errors import FailoverError, RateLimitError
from orchestrator.integrations._http import (
    MAX_RETRY_AFTER,
    RetryPolicy,
    error_detail,
    error_for_payload,
    parse_retry_after,
)
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import OPENAI_KEY, fast
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

HUGE_VALUES = ["99999999", "Fri, 31 Dec 9999 23:59:59 GMT", "1e400", "9" * 400]


@pytest.mark.parametrize("value", HUGE_VALUES)
def test_parse_retry_after_reads_huge_values_without_failing(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is not None and seconds > MAX_RETRY_AFTER


@pytest.mark.parametrize("value", HUGE_VALUES)
async def test_a_huge_retry_after_is_capped_at_the_documented_maximum(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=0)
        for _ in range(3):
            server.add_fault(status=429, retry_after=value)
            with pytest.raises(RateLimitError) as info:
                await model.generate_response("Hello")
            assert info.value.retry_after == MAX_RETRY_AFTER
    capped = [r for r in caplog.records if "capped at 600s" in r.getMessage()]
    assert [r.levelno for r in capped] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


async def test_the_cap_follows_the_policy() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=0)
        model.retry_policy = dataclasses.replace(model.retry_policy, max_retry_after=30.0)
        server.add_fault(status=429, retry_after="3600")
        with pytest.raises(RateLimitError) as info:
            await model.generate_response("Hello")
    assert info.value.retry_after == 30.0


def test_a_retry_delay_in_an_error_body_is_capped() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "quota",
            "details": [{"retryDelay": "99999999s"}],
        }
    }
    exc = error_for_payload(error_detail(body), status=None, model="gemini")
    assert isinstance(exc, RateLimitError) and exc.retry_after == MAX_RETRY_AFTER


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, MAX_RETRY_AFTER + 1, "60", True])
def test_the_policy_refuses_a_cap_beyond_the_maximum(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid max_retry_after"):
        RetryPolicy(max_retry_after=bad)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.floats(allow_nan=True).map(repr), st.integers().map(str)))
def test_any_retry_after_value_is_a_wait_or_none_and_never_raises(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (seconds >= 0 and not math.isnan(seconds))
    exc = error_for_payload(error_detail({}), status=429, model="m", retry_after=seconds)
    assert exc.retry_after is None or 0 <= exc.retry_after <= MAX_RETRY_AFTER


@pytest.mark.parametrize(
    ("max_wait", "requests", "answered"),
    [(None, 2, True), (1.0, 2, True), (0.1, 1, False), (0.0, 1, False)],
)
async def test_failover_waits_in_place_only_as_long_as_max_wait(
    max_wait: float | None, requests: int, answered: bool
) -> None:
    """A Retry-After of 0.3 s is slept on and the call retried unless the
    request's ``max_wait`` is shorter: then the one model's 429 is raised."""
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=2)
        registry = ModelRegistry()
        registry.register_model(model)
        server.add_fault(status=429, retry_after="0.3", times=1)
        if answered:
            result = await registry.generate("Hello", deadline=30, max_wait=max_wait)
            assert result.model == "gpt-4"
        else:
            with pytest.raises((RateLimitError, FailoverError)):
                await registry.generate("Hello", deadline=30, max_wait=max_wait)
        assert len(server.requests) == requests
    assert not caller_waits()  # the request's setting only


async def test_a_retry_after_under_failover_moves_to_a_model_that_can_answer_now() -> None:
    """Failover does not sleep on one provider's Retry-After while another
    eligible model can answer: the HTTP layer leaves the wait to failover."""
    with (
        OpenAIServer(api_key=OPENAI_KEY) as limited,
        OpenAIServer(api_key=OPENAI_KEY) as free,
    ):
        registry = ModelRegistry()
        registry.register_model(
            fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=limited.url), max_retries=2)
        )
        registry.register_model(
            fast(OpenAIModel("gpt-4o", api_key=OPENAI_KEY, base_url=free.url), max_retries=2)
        )
        limited.add_fault(status=429, retry_after="30", times=-1)
        # Each model gets its first trials, so the limited one is tried once;
        # inside its Retry-After it is not selected again.
        answered = [(await registry.generate(f"Hello {i}", deadline=60)).model for i in range(4)]
        assert answered == ["gpt-4o"] * 4
        assert len(limited.requests) == 1
    assert not caller_waits()


async def test_without_a_deadline_the_http_layer_still_waits_out_a_retry_after() -> None:
    """Failover without a deadline never waits itself, so a single provider's
    short Retry-After is still slept on and retried in place, as before."""
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = ModelRegistry()
        registry.register_model(
            fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=2)
        )
        server.add_fault(status=429, retry_after="0.2", times=1)
        assert (await registry.generate("Hello")).model == "gpt-4"
        assert len(server.requests) == 2
