"""Rate limits per model in one registry: the window's exact counts and
"next slot in", the token reservation reconciled with reported usage (LiteLLM
counts tpm wrongly), reservations returned by cancelled and expired
selections, and strict ``rpm``/``tpm`` values everywhere they are accepted."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from orchestrator import _core
from orchestrator.core.cache import ModelCache
from orchestrator.core.model import Model
from orchestrator.errors import FailoverTimeoutError, NoEligibleModelsError
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.lazy_ollama_model import LazyOllamaModel
from orchestrator.integrations.ollama_model import OllamaModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.integrations.simulated_model import SimulatedModel
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.errors import from_registry_error
from tests.conftest import ScriptedModel, virtual_registry
from tests.providers.conftest import OPENAI_KEY, fast
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(30)


#: A registry on the core's virtual clock (the window moves only when told).
registry_of = virtual_registry


def test_a_full_window_names_its_count_and_the_next_slot() -> None:
    registry = registry_of(ScriptedModel("a", rpm=3))
    for _ in range(3):
        registry.select()
        registry.core.advance_clock(1.0)
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model()
    assert info.value.reasons == {
        "a": "rate_limit: 3/3 requests in the last minute (rpm), next slot in 57.0 s"
    }
    assert info.value.retry_in == 57.0
    explanation = registry.explain_selection()
    assert explanation.chosen is None and explanation.retry_in == 57.0
    names, scores = registry.scores()
    assert names == ["a"] and list(scores) == [-math.inf]
    registry.core.advance_clock(57.0)  # the first selection leaves the window exactly now
    assert registry.select().model.name == "a"
    assert registry.rate_limits("a")["requests"] == 3


def test_a_shortened_window_is_named_in_the_reason() -> None:
    registry = registry_of(ScriptedModel("a", rpm=2, tpm=1000))
    registry.core.set_rate_limit_window(10.0)
    registry.select()
    registry.select()
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model()
    assert info.value.reasons == {
        "a": "rate_limit: 2/2 requests in the last 10 s (rpm), next slot in 10.0 s"
    }
    registry.core.advance_clock(10.0)
    registry.select_model(input_tokens=600, output_tokens=0)
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model(input_tokens=600, output_tokens=0)
    assert "tokens in the last 10 s (tpm)" in info.value.reasons["a"]


def test_a_full_model_is_skipped_for_the_next_one() -> None:
    registry = registry_of(ScriptedModel("a", rpm=1), ScriptedModel("b"))
    picks = [registry.select().model.name for _ in range(4)]
    assert picks.count("a") == 1 and picks.count("b") == 3


async def test_tokens_reserved_at_selection_are_replaced_by_the_reported_usage() -> None:
    """LiteLLM counts tpm from estimates or after the fact; here the estimate
    is reserved when the model is selected and the provider's usage (10 in,
    20 out) replaces it when the call reports."""
    model = ScriptedModel("a", tpm=1000)
    registry = registry_of(model)
    chosen = registry.select_model(input_tokens=400, output_tokens=400)
    assert registry.rate_limits("a")["tokens"] == 800
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select(input_tokens=400, output_tokens=400)
    assert info.value.reasons["a"].startswith(
        "rate_limit: 800/1000 tokens in the last minute (tpm) and the request needs 800"
    )
    await chosen.generate_response("hi")
    assert registry.rate_limits("a")["tokens"] == 30
    registry.select(input_tokens=400, output_tokens=400)
    assert registry.rate_limits("a")["tokens"] == 830


def test_the_default_estimate_is_reserved_when_no_size_is_given() -> None:
    registry = registry_of(ScriptedModel("a", tpm=10_000))
    registry.select()
    expected = _core.DEFAULT_INPUT_TOKENS + _core.DEFAULT_OUTPUT_TOKENS
    assert registry.rate_limits("a")["tokens"] == expected


def test_cancelled_and_expired_selections_return_their_reservation() -> None:
    registry = registry_of(ScriptedModel("a", rpm=1, tpm=500))
    registry.cancel(registry.select())
    assert registry.rate_limits("a")["requests"] == 0
    registry.select()
    registry.core.set_pending_timeout(1.0)
    registry.core.advance_clock(2.0)
    registry.core.sweep()
    limits = registry.rate_limits("a")
    assert (limits["requests"], limits["tokens"]) == (0, 0)
    registry.select()


def test_a_request_larger_than_tpm_is_never_eligible_and_has_no_slot() -> None:
    registry = registry_of(ScriptedModel("a", tpm=100))
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model(input_tokens=90, output_tokens=20)
    assert info.value.reasons == {
        "a": "rate_limit: the request needs 110 tokens, more than tpm 100 allows"
    }
    assert info.value.retry_in is None


async def test_calls_not_selected_here_count_too() -> None:
    model = ScriptedModel("a", rpm=2)
    registry = registry_of(model)
    await model.generate_response("direct")  # no selection: counted when it reports
    await model.generate_response("direct")
    with pytest.raises(NoEligibleModelsError):
        registry.select()


def test_changed_limits_reach_the_core() -> None:
    model = ScriptedModel("a")
    registry = registry_of(model)
    model.rpm = 1
    registry.update_model(model)
    registry.select()
    with pytest.raises(NoEligibleModelsError):
        registry.select()
    model.rpm = True  # type: ignore[assignment]
    with pytest.raises(TypeError, match="invalid rpm: True"):
        registry.update_model(model)


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("rpm", 0, ValueError, "invalid rpm: 0 (an integer from 1 to 1000000)"),
        ("rpm", True, TypeError, "invalid rpm: True (an integer is required, got bool)"),
        ("rpm", 2**70, ValueError, "invalid rpm: 1180591620717411303424"),
        ("rpm", 1.5, TypeError, "invalid rpm: 1.5"),
        ("rpm", "60", TypeError, "invalid rpm: '60'"),
        ("tpm", -1, ValueError, "invalid tpm: -1"),
        ("tpm", 2**41, ValueError, f"invalid tpm: {2**41} (an integer from 1 to {2**40})"),
        ("tpm", False, TypeError, "invalid tpm: False"),
    ],
)
def test_rate_limits_are_strict_everywhere(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        ScriptedModel("a", **{field: value})  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    with pytest.raises(error):
        OpenAIModel("gpt-4o", api_key="sk-x", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(error):
        ModelRegistry().core.register(object(), "a", "p", [], **{field: value})


ADAPTERS: dict[str, Callable[..., Model]] = {
    "openai": lambda **kw: OpenAIModel("gpt-4o", api_key="sk-x", **kw),
    "anthropic": lambda **kw: AnthropicModel("claude-3-5-haiku", api_key="sk-ant-x", **kw),
    "google": lambda **kw: GoogleModel("gemini-1.5-flash", api_key="g-x", **kw),
    "ollama": lambda **kw: OllamaModel("llama3", **kw),
    "huggingface": lambda **kw: HuggingFaceModel("tgi", endpoint_url="http://127.0.0.1:9", **kw),
    "lazy ollama": lambda **kw: LazyOllamaModel("llama3", **kw),
    "simulated": lambda **kw: SimulatedModel("sim", **kw),
}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_every_adapter_takes_rate_limits(adapter: str) -> None:
    model = ADAPTERS[adapter](rpm=7, tpm=700)
    assert (model.rpm, model.tpm) == (7, 700)
    with pytest.raises(TypeError, match="invalid rpm"):
        ADAPTERS[adapter](rpm=7.0)


def test_adapters_take_rate_limits_as_options() -> None:
    model = OpenAIModel("gpt-4o", api_key="sk-x", rpm=500, tpm=30_000)
    registry = ModelRegistry()
    registry.register_model(model)
    assert registry.rate_limits("gpt-4o") == {
        "rpm": 500,
        "tpm": 30_000,
        "requests": 0,
        "tokens": 0,
        "provider_requests": None,
        "provider_tokens": None,
    }


async def test_a_cache_hit_returns_its_reservation() -> None:
    model = ScriptedModel("a", rpm=2)
    model.enable_caching(ModelCache())
    registry = registry_of(model)
    await registry.generate("same question")
    await registry.generate("same question")  # served from the cache: nothing was sent
    assert (model.calls, registry.rate_limits("a")["requests"]) == (1, 1)
    await registry.generate("another question")
    assert registry.rate_limits("a")["requests"] == 2


def test_select_many_stops_at_the_limit() -> None:
    registry = registry_of(ScriptedModel("a", rpm=3))
    assert len(registry.select_many(10)) == 3
    with pytest.raises(NoEligibleModelsError):
        registry.select_many(1)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("remaining_requests", -1, ValueError),
        ("remaining_requests", True, TypeError),
        ("remaining_tokens", 2**64, ValueError),
        ("remaining_tokens", 1.0, TypeError),
        ("requests_reset", math.nan, ValueError),
        ("tokens_reset", -0.5, ValueError),
        ("tokens_reset", "1s", TypeError),
    ],
)
def test_reported_provider_limits_are_strict(field: str, value: object, error: type) -> None:
    with pytest.raises(error, match=f"invalid {field}"):
        _core.Outcome(True, 0.1, **{field: value})


async def test_a_call_cancelled_after_it_started_stays_counted() -> None:
    model = ScriptedModel("a", rpm=5, delay=30)
    registry = registry_of(model)
    chosen = registry.select_model()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await chosen.generate_response("hi")
    assert registry.rate_limits("a")["requests"] == 1
    assert registry.get_metrics("a").pending == 0


async def test_a_request_cut_by_the_failover_deadline_counts_once() -> None:
    model = ScriptedModel("a", rpm=5, delay=30)
    registry = registry_of(model)
    with pytest.raises(FailoverTimeoutError):
        await registry.generate("hi", deadline=0.05)
    assert registry.rate_limits("a")["requests"] == 1


async def test_an_abandoned_stream_stays_counted() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url, rpm=5))
        registry = ModelRegistry()
        registry.register_model(model)
        stream = registry.select_model().stream_response("Hello")
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        assert registry.rate_limits("gpt-4")["requests"] == 1


def test_a_manual_report_without_a_selection_counts_no_call() -> None:
    registry = registry_of(ScriptedModel("a", rpm=1))
    registry.report_outcome("a", True, 0.1)
    assert registry.rate_limits("a")["requests"] == 0
    registry.select()


def test_the_gateway_answers_a_full_window_with_429_and_retry_after() -> None:
    registry = registry_of(ScriptedModel("a", rpm=1))
    registry.select()
    registry.core.advance_clock(30.0)
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model()
    answer = from_registry_error(info.value, registry)
    assert (answer.status, answer.code) == (429, "rate_limit_exceeded")
    assert answer.retry_after == pytest.approx(30.0)
    assert (b"retry-after", b"30") in answer.headers()
    assert "1/1 requests in the last minute" in answer.message
