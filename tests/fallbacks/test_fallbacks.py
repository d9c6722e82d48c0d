"""Error-typed fallbacks and fallback chains, end to end over real HTTP to
the loopback provider servers: a context-length error moves to a larger
window (the request's size estimated up front, a tokenizer's count checked
before sending), a content filter to another provider, chains in order to
exhaustion, streams before and after their first chunk, the deadline and
cancellation while falling back, and bad ``fallbacks=`` values.

In a fresh registry the first model registered is selected first (every
model owes its forced trials; ties go to registration order), which the
tests use to decide which model is tried first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Optional

import pytest

from orchestrator.core.model import ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import (
    ContentFilteredError,
    ContextLengthExceededError,
    FailoverExhaustedError,
    FailoverTimeoutError,
    NoEligibleModelsError,
    StreamCutError,
)
from orchestrator.integrations._http import HTTPModel
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY, fast
from tests.servers import AnthropicServer, GeminiServer, LoopbackServer, OpenAIServer

pytestmark = pytest.mark.timeout(60)

BLOCKED = "forbidden"


def caps(window: int) -> ModelCapabilities:
    return ModelCapabilities(chat=True, supports_streaming=True, context_length=window)


def openai(name: str, server: OpenAIServer, window: int = 128_000, **options: Any) -> OpenAIModel:
    """An OpenAI model named ``name`` (also its id on the server), no retries."""
    model = OpenAIModel(
        name,
        api_key=OPENAI_KEY,
        base_url=server.url,
        capabilities=caps(window),
        cost=ModelCost(input_per_million=1.0, output_per_million=2.0),
        **options,
    )
    return fast(model, max_retries=0)


class CountingOpenAIModel(OpenAIModel):
    """An OpenAI model with a tokenizer: it counts words, exactly as the
    loopback server counts the prompt's tokens."""

    counted: int = 0

    async def count_tokens(self, prompt: Prompt) -> Optional[int]:
        type(self).counted += 1
        messages = [{"content": prompt}] if isinstance(prompt, str) else prompt
        return sum(len(str(m.get("content", "")).split()) for m in messages)


def registry_of(*models: HTTPModel) -> ModelRegistry:
    registry = ModelRegistry()
    for model in models:
        registry.register_model(model)
    return registry


def chat_requests(server: LoopbackServer, model: str) -> int:
    """How many chat calls for ``model`` reached ``server``."""
    return sum(1 for r in server.requests if r.json() and r.json().get("model") == model)


def assert_nothing_pending(registry: ModelRegistry) -> None:
    for model in registry.list_models():
        assert registry.get_metrics(model.name).pending == 0, model.name


@pytest.fixture
def servers() -> Iterator[tuple[OpenAIServer, OpenAIServer, OpenAIServer]]:
    """Three OpenAI servers, one per model of the chain tests."""
    with ExitStack() as stack:
        a, b, c = (stack.enter_context(OpenAIServer(api_key=OPENAI_KEY)) for _ in range(3))
        yield a, b, c


def chain_registry(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer], *windows: int
) -> ModelRegistry:
    """Models "a", "b", "c", each on its own server, with these windows (default 128,000)."""
    sizes = (*windows, *(128_000,) * (3 - len(windows)))
    return registry_of(*(openai(n, s, w) for n, s, w in zip("abc", servers, sizes)))


# ----- context length ---------------------------------------------------------------


async def test_a_context_length_error_moves_to_a_larger_window_only() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        server.context_windows = {"small": 50, "medium": 8_000}
        # "small" declares a larger window than the server enforces, so the
        # up-front estimate lets it through and the provider refuses.
        small, same = openai("small", server, 8_192), openai("same", server, 8_192)
        registry = registry_of(small, same, openai("large", server))
        result = await registry.generate("word " * 100)
        assert [(a.model, a.outcome, a.sent) for a in result.attempts] == [
            ("small", "context_length", True),
            ("large", "ok", True),
        ]
        assert result.attempts[1].reason == (
            "context_length on small: a known context window of at least 8193 tokens"
        )
        assert chat_requests(server, "small") == 1  # sent once, never again
        assert chat_requests(server, "same") == 0  # its window is no larger
        assert registry.get_metrics("small").failures_by_class == {"context_length": 1}
        assert_nothing_pending(registry)


async def test_with_no_larger_window_the_context_error_is_raised_with_its_attempts() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        server.context_windows = {"small": 10}
        registry = registry_of(openai("small", server, 8_192), openai("same", server, 8_192))
        with pytest.raises(ContextLengthExceededError) as info:
            await registry.generate("word " * 20)
        attempts = info.value.attempts  # type: ignore[attr-defined]
        assert [(a.model, a.outcome) for a in attempts] == [("small", "context_length")]
        assert chat_requests(server, "same") == 0


async def test_a_prompt_estimated_too_large_is_not_even_selected_for_a_small_window() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = registry_of(openai("small", server, 8_192), openai("large", server))
        prompt = "x" * 40_000  # about 10,000 tokens, four characters a token
        result = await registry.generate(prompt)
        assert [(a.model, a.outcome) for a in result.attempts] == [("large", "ok")]
        assert chat_requests(server, "small") == 0
        explanation = registry.explain_selection(input_tokens=10_000)
        small = next(c for c in explanation.candidates if c.name == "small")
        assert small.constraint == "context_length" and "8192" in (small.reason or "")
        # max_tokens counts too: a short prompt asking for more than the window.
        result = await registry.generate("hi", max_tokens=9_000)
        assert [a.model for a in result.attempts] == ["large"]
        assert chat_requests(server, "small") == 0


async def test_a_tokenizer_stops_an_oversize_prompt_before_it_is_sent() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        server.context_windows = {"counted": 50}
        counted = CountingOpenAIModel(
            "counted", api_key=OPENAI_KEY, base_url=server.url, capabilities=caps(50), rpm=10
        )
        registry = registry_of(fast(counted, max_retries=0), openai("large", server))
        # 60 words: the estimate (30 tokens) fits, the tokenizer's count does not.
        prompt = "a " * 60
        result = await registry.generate(prompt, retry_budget=0)  # a local refusal costs no budget
        assert [(a.model, a.outcome, a.sent) for a in result.attempts] == [
            ("counted", "context_length", False),
            ("large", "ok", True),
        ]
        assert chat_requests(server, "counted") == 0  # never sent
        metrics = registry.get_metrics("counted")
        assert metrics.requests == 0 and metrics.pending == 0  # not the model's failure
        assert registry.rate_limits("counted")["requests"] == 0  # its reservation returned
        # A prompt that fits is sent as usual.
        result = await registry.generate("a " * 10)
        assert [a.model for a in result.attempts] == ["counted"]
        assert chat_requests(server, "counted") == 1


async def test_a_stream_is_checked_before_sending_too() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        counted = CountingOpenAIModel(
            "counted", api_key=OPENAI_KEY, base_url=server.url, capabilities=caps(50)
        )
        registry = registry_of(fast(counted, max_retries=0), openai("large", server))
        stream = registry.stream("a " * 60)
        text = "".join([chunk async for chunk in stream])
        assert text and stream.model == "large"
        assert [(a.model, a.outcome, a.sent) for a in stream.attempts] == [
            ("counted", "context_length", False),
            ("large", "ok", True),
        ]
        assert chat_requests(server, "counted") == 0
        assert_nothing_pending(registry)


# ----- content filter ---------------------------------------------------------------


def _blocking_harness(provider: str, stack: ExitStack) -> tuple[LoopbackServer, HTTPModel]:
    """A server of ``provider`` whose content filter blocks ``BLOCKED``, and its model."""
    if provider == "openai":
        openai_server = stack.enter_context(OpenAIServer(api_key=OPENAI_KEY))
        openai_server.blocked_words = {BLOCKED}
        return openai_server, openai("gpt-4o", openai_server)
    if provider == "anthropic":
        anthropic_server = stack.enter_context(AnthropicServer(api_key=ANTHROPIC_KEY))
        anthropic_server.blocked_words = {BLOCKED}
        model: HTTPModel = AnthropicModel(
            "claude-3-5-sonnet-20241022",
            api_key=ANTHROPIC_KEY,
            base_url=anthropic_server.url,
            capabilities=caps(200_000),
        )
        return anthropic_server, fast(model, max_retries=0)
    gemini_server = stack.enter_context(GeminiServer(api_key=GOOGLE_KEY))
    gemini_server.blocked_words = {BLOCKED}
    model = GoogleModel(
        "gemini-1.5-flash",
        api_key=GOOGLE_KEY,
        base_url=gemini_server.root_url,
        capabilities=caps(1_000_000),
    )
    return gemini_server, fast(model, max_retries=0)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_a_content_filter_moves_to_another_provider(provider: str, streaming: bool) -> None:
    with ExitStack() as stack:
        blocking, first = _blocking_harness(provider, stack)
        sibling = stack.enter_context(OpenAIServer(api_key=OPENAI_KEY))
        other = stack.enter_context(AnthropicServer(api_key=ANTHROPIC_KEY))
        same_provider = type(first)(
            f"{first.name}-sibling", **_same_provider_options(first, blocking, sibling)
        )
        elsewhere: HTTPModel = (
            openai("gpt-4o-other", sibling)
            if provider != "openai"
            else AnthropicModel(
                "claude-3-5-haiku-20241022", api_key=ANTHROPIC_KEY, base_url=other.url
            )
        )
        registry = registry_of(first, fast(same_provider, max_retries=0), elsewhere)
        prompt = f"please write something {BLOCKED}"
        if streaming:
            stream = registry.stream(prompt)
            text = "".join([chunk async for chunk in stream])
            attempts = stream.attempts
        else:
            result = await registry.generate(prompt)
            text, attempts = result.text, result.attempts
        assert text
        assert [(a.model, a.outcome) for a in attempts] == [
            (first.name, "content_filter"),
            (elsewhere.name, "ok"),
        ]
        assert attempts[1].reason == (
            f"content_filter on {first.name}: a provider other than {first.provider}"
        )
        assert registry.get_metrics(same_provider.name).requests == 0  # its filter is the same
        assert_nothing_pending(registry)


def _same_provider_options(
    first: HTTPModel, blocking: LoopbackServer, sibling: OpenAIServer
) -> dict[str, Any]:
    """Constructor options for a second model of ``first``'s provider (on the
    same blocking server: one provider, one filter)."""
    keys = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "google": GOOGLE_KEY}
    url = blocking.root_url if first.provider == "google" else blocking.url
    return {"api_key": keys[first.provider], "base_url": url, "model_id": first.model_id}


async def test_with_every_provider_filtering_the_filter_error_is_raised() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        server.blocked_words = {BLOCKED}
        registry = registry_of(openai("a", server), openai("b", server))
        with pytest.raises(ContentFilteredError) as info:
            await registry.generate(f"say {BLOCKED}")
        attempts = info.value.attempts  # type: ignore[attr-defined]
        assert [(a.model, a.outcome) for a in attempts] == [("a", "content_filter")]
        assert chat_requests(server, "b") == 0


# ----- chains -----------------------------------------------------------------------


async def test_a_request_chain_is_followed_in_order(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer],
) -> None:
    sa, _sb, sc = servers
    registry = chain_registry(servers)
    sa.add_fault(status=500)
    sc.add_fault(status=503)
    result = await registry.generate("hello", fallbacks=["c", "b"])
    assert [(a.model, a.outcome) for a in result.attempts] == [
        ("a", "server_error"),
        ("c", "server_error"),
        ("b", "ok"),
    ]
    assert [a.reason for a in result.attempts] == [
        "selected",
        "server_error on a; fallback chain fallbacks= step 1/2: 'c'",
        "server_error on c; fallback chain fallbacks= step 2/2: 'b'",
    ]


async def test_a_spent_chain_is_failover_exhausted_with_every_attempt(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer],
) -> None:
    sa, sb, sc = servers
    registry = chain_registry(servers)
    registry.set_fallbacks("a", ["c"])
    sa.add_fault(status=500)
    sc.add_fault(status=500)
    with pytest.raises(FailoverExhaustedError, match="fallback chain 'a' spent") as info:
        await registry.generate("hello")
    assert [(a.model, a.outcome) for a in info.value.attempts] == [
        ("a", "server_error"),
        ("c", "server_error"),
    ]
    assert chat_requests(sb, "b") == 0  # not in the chain: never tried
    # fallbacks=[] sets the configured chain aside: any eligible model.
    sa.add_fault(status=500)
    result = await registry.generate("hello", fallbacks=[])
    assert [a.outcome for a in result.attempts][-1] == "ok"
    assert "fallback chain" not in result.attempts[-1].reason


async def test_a_chain_obeys_the_retry_budget_and_the_typed_restrictions(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer],
) -> None:
    sa, sb, _sc = servers
    registry = chain_registry(servers, 128_000, 4_000)
    for server in servers:
        server.add_fault(status=500)
    with pytest.raises(FailoverExhaustedError, match="retry budget of 1 spent") as info:
        await registry.generate("hello", fallbacks=["b", "c"], retry_budget=1)
    assert [a.model for a in info.value.attempts] == ["a", "b"]
    for server in servers:
        server.clear()
    # After a context-length error the chain's smaller-window entry is skipped.
    registry = chain_registry(servers, 8_192, 4_000)
    sa.add_fault(status=400, kind="context_length")
    result = await registry.generate("hello", fallbacks=["b", "c"])
    assert [(a.model, a.outcome) for a in result.attempts] == [
        ("a", "context_length"),
        ("c", "ok"),
    ]
    assert result.attempts[1].reason.endswith("step 2/2: 'c'")
    assert chat_requests(sb, "b") == 0


async def test_a_stream_falls_back_along_its_chain_only_before_its_first_chunk(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer],
) -> None:
    sa, _sb, sc = servers
    registry = chain_registry(servers)
    sa.add_fault(status=500)
    stream = registry.stream("hello there friend", fallbacks=["c"])
    text = "".join([chunk async for chunk in stream])
    assert text and stream.model == "c"
    assert [(a.model, a.outcome) for a in stream.attempts] == [("a", "server_error"), ("c", "ok")]
    # A failure after the first chunk is raised as it is: the caller has part of an answer.
    registry = chain_registry(servers)
    sa.add_fault(cut=True)
    stream = registry.stream("hello there friend", fallbacks=["c"])
    chunks = [await stream.__anext__()]
    with pytest.raises(StreamCutError) as info:
        chunks.extend([chunk async for chunk in stream])
    assert [a.model for a in info.value.attempts] == ["a"]  # type: ignore[attr-defined]
    assert chat_requests(sc, "c") == 1
    assert_nothing_pending(registry)


# ----- deadline, cancellation --------------------------------------------------------


async def test_the_deadline_bounds_the_fallback(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer],
) -> None:
    sa, sb, _ = servers
    registry = registry_of(openai("a", sa, 8_192), openai("b", sb))
    sa.add_fault(status=400, kind="context_length")
    sb.add_fault(delay=30)
    with pytest.raises(FailoverTimeoutError) as info:
        await registry.generate("hello", fallbacks=["b"], deadline=1.0)
    assert [(a.model, a.outcome) for a in info.value.attempts] == [
        ("a", "context_length"),
        ("b", "timeout"),
    ]
    assert_nothing_pending(registry)


async def test_cancelling_during_a_fallback_leaks_no_ticket(
    servers: tuple[OpenAIServer, OpenAIServer, OpenAIServer],
) -> None:
    sa, sb, _ = servers
    registry = registry_of(openai("a", sa), openai("b", sb, rpm=5))
    sa.add_fault(status=500)
    sb.add_fault(delay=30)
    task = asyncio.create_task(registry.generate("hello", fallbacks=["b"]))
    assert await asyncio.to_thread(sb.wait_for_requests, 1, 30)  # the fallback reached b
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_nothing_pending(registry)
    # The cancelled call was sent: its rate-limit reservation stays counted.
    assert registry.rate_limits("b")["requests"] == 1


async def test_cancelling_during_the_tokenizer_check_releases_the_selection() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    class SlowCounting(OpenAIModel):
        async def count_tokens(self, prompt: Prompt) -> Optional[int]:
            started.set()
            await release.wait()
            return 1

    with OpenAIServer(api_key=OPENAI_KEY) as server:
        slow = SlowCounting(
            "slow", api_key=OPENAI_KEY, base_url=server.url, capabilities=caps(1_000), rpm=5
        )
        registry = registry_of(fast(slow, max_retries=0))
        task = asyncio.create_task(registry.generate("hello"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert registry.get_metrics("slow").pending == 0
        assert registry.rate_limits("slow")["requests"] == 0  # nothing was sent
        assert not server.requests


# ----- bad values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("a", TypeError, r"invalid fallbacks: expected a list"),
        (b"a", TypeError, r"invalid fallbacks: expected a list"),
        ({"a"}, TypeError, r"invalid fallbacks: expected a list"),
        ([1], TypeError, r"invalid fallbacks\[0\]: expected a model or alias name"),
        ([None], TypeError, r"invalid fallbacks\[0\]"),
        ([""], ValueError, r"invalid fallbacks\[0\]: '' \(an empty name\)"),
        (["b\n"], ValueError, r"fallbacks\[0\].*control character"),
        (["b" * 300], ValueError, r"fallbacks\[0\].*300 bytes"),
        (["b", "b"], ValueError, r"fallbacks\[1\]: 'b' is listed twice"),
        (["bb"], ValueError, r"invalid fallbacks\[0\]: no model named 'bb'.*did you mean 'b'"),
        (["b"] * 65, ValueError, r"65 entries \(at most 64\)"),
    ],
)
async def test_bad_fallbacks_are_refused_before_any_call(
    value: Any, error: type[Exception], match: str
) -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = registry_of(openai("a", server), openai("b", server))
        with pytest.raises(error, match=match):
            await registry.generate("hello", fallbacks=value)
        with pytest.raises(error, match=match):
            registry.stream("hello", fallbacks=value)
        assert not server.requests
        assert_nothing_pending(registry)


def test_bad_configured_chains_are_refused() -> None:
    registry = ModelRegistry()
    with pytest.raises(TypeError, match="invalid name"):
        registry.set_fallbacks(3, ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invalid fallbacks"):
        registry.set_fallbacks("a", "b")
    with pytest.raises(ValueError, match="cannot name its own key"):
        registry.set_fallbacks("a", ["b", "a"])
    registry.set_fallbacks("a", ["b"])
    assert registry.fallbacks == {"a": ("b",)}
    registry.set_fallbacks("a", None)
    assert registry.fallbacks == {}


async def test_nothing_eligible_up_front_is_still_the_selection_error() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = registry_of(openai("a", server, 1_000))
        with pytest.raises(NoEligibleModelsError, match="context window 1000 tokens"):
            await registry.generate("x" * 8_000, fallbacks=["a"])
        assert not server.requests
