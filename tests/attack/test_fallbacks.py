"""Attacks on fallback chains: chains that loop (a -> b -> a), chains naming
unknown or since-unregistered models, bad chains that must change nothing
stored, a content filter on every provider, a failure after a stream's first
chunk, and cancellation in the middle of a fallback (the core's counters of
outstanding tickets and bound sessions compared before and after)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrator.core.model import ModelCapabilities, Prompt
from orchestrator.errors import (
    ContentFilteredError,
    ContextLengthExceededError,
    FailoverExhaustedError,
    NoEligibleModelsError,
    ServerError,
)
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)


class LyingStr(str):
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


class ChunkThenFail(ScriptedModel):
    """Streams one chunk, then fails with a retryable server error (raised
    as it is: the caller already has part of an answer)."""

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        self.calls += 1
        yield "partial "
        raise ServerError("cut after the first chunk", model=self.name)


class Hanging(ScriptedModel):
    """Says when its call has started, then never answers."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.started = asyncio.Event()

    async def generate_response(self, prompt: Any, **kwargs: Any) -> str:
        self.calls += 1
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def registry_of(*models: ScriptedModel) -> ModelRegistry:
    registry = ModelRegistry()
    for model in models:
        registry.register_model(model)
    return registry


def failing(
    name: str, provider: str = "scripted", exc: BaseException | None = None
) -> ScriptedModel:
    return ScriptedModel(name, provider=provider, fail=exc or ServerError("down", model=name))


def assert_released(registry: ModelRegistry) -> None:
    """No selection of the call is still held."""
    assert registry.core.outstanding_tickets() == 0
    for model in registry.list_models():
        assert registry.get_metrics(model.name).pending == 0, model.name


async def test_configured_chains_that_loop_try_each_model_once() -> None:
    a, b, c = failing("a"), failing("b"), failing("c")
    registry = registry_of(a, b, c)
    registry.set_fallbacks("a", ["b"])
    registry.set_fallbacks("b", ["a"])
    with pytest.raises(FailoverExhaustedError) as info:
        await registry.generate("hello", retry_budget=50)
    tried = [attempt.model for attempt in info.value.attempts]
    assert tried == ["a", "b"], "the chain of the first failure only, each model once"
    assert (a.calls, b.calls, c.calls) == (1, 1, 0)
    assert_released(registry)


async def test_a_request_chain_naming_the_first_model_does_not_retry_it() -> None:
    a, b = failing("a"), failing("b")
    registry = registry_of(a, b)
    with pytest.raises(FailoverExhaustedError) as info:
        await registry.generate("hello", retry_budget=50, fallbacks=["a", "b"])
    assert [attempt.model for attempt in info.value.attempts] == ["a", "b"]
    assert (a.calls, b.calls) == (1, 1)
    assert_released(registry)


async def test_a_configured_chain_of_unknown_and_unregistered_models_is_spent_cleanly() -> None:
    a, b, spare = failing("a"), ScriptedModel("b"), ScriptedModel("spare")
    registry = registry_of(a, b, spare)
    registry.set_fallbacks("a", ["ghost", "b"])  # "ghost" was never registered
    registry.unregister_model("b")
    with pytest.raises(FailoverExhaustedError) as info:
        await registry.generate("hello")
    assert [attempt.model for attempt in info.value.attempts] == ["a"]
    assert (spare.calls, b.calls) == (0, 0), "a spent chain is not free failover"
    assert_released(registry)
    assert registry.fallbacks_for("a") == ("ghost", "b"), "the configured chain is kept"


@pytest.mark.parametrize(
    ("name", "chain", "error", "field"),
    [
        ("a", [LyingStr("b")], TypeError, "fallbacks"),
        ("a", [b"b"], TypeError, "fallbacks"),
        ("a", ["b", "a"], ValueError, "own key"),
        ("a", "b", TypeError, "fallbacks"),
        ("a", ["b"] * 2, ValueError, "listed twice"),
        ("a", [f"m{i}" for i in range(65)], ValueError, "65 entries"),
        ("a", ["b\x00"], ValueError, "control character"),
        ("a", [" "], ValueError, "empty name"),
        ("a", [float("nan")], TypeError, "fallbacks"),
        (LyingStr("a"), ["b"], TypeError, "name"),
        (b"a", ["b"], TypeError, "name"),
        ("é" * 129, ["b"], ValueError, "258 bytes"),
    ],
)
def test_bad_configured_chains_name_the_field_and_change_nothing(
    name: Any, chain: Any, error: type[Exception], field: str
) -> None:
    registry = registry_of(ScriptedModel("a"), ScriptedModel("b"))
    registry.set_fallbacks("a", ["b"])
    before = registry.fallbacks
    with pytest.raises(error, match=field):
        registry.set_fallbacks(name, chain)
    assert registry.fallbacks == before


async def test_a_lying_str_in_a_request_chain_is_refused_before_any_call() -> None:
    a, b = failing("a"), ScriptedModel("b")
    registry = registry_of(a, b)
    with pytest.raises(TypeError, match=r"fallbacks\[0\]"):
        await registry.generate("hello", fallbacks=[LyingStr("b")])
    with pytest.raises(TypeError, match=r"fallbacks\[0\]"):
        registry.stream("hello", fallbacks=[LyingStr("b")])
    assert (a.calls, b.calls) == (0, 0)
    assert_released(registry)


async def test_a_content_filter_on_every_provider_raises_the_filter_error() -> None:
    def filtered(name: str, provider: str) -> ScriptedModel:
        return failing(name, provider, ContentFilteredError("refused", model=name))

    models = [
        filtered("a1", "p1"),
        filtered("a2", "p1"),
        filtered("b1", "p2"),
        filtered("c1", "p3"),
    ]
    registry = registry_of(*models)
    with pytest.raises(ContentFilteredError) as info:
        await registry.generate("hello", retry_budget=10, session_id="chat")
    providers = [registry.get_model(a.model).provider for a in info.value.attempts]  # type: ignore[attr-defined]
    assert sorted(providers) == ["p1", "p2", "p3"], "one attempt per provider, never the same twice"
    assert sum(m.calls for m in models) == 3
    assert_released(registry)


async def test_a_failure_after_the_first_chunk_is_not_a_fallback() -> None:
    first, second = ChunkThenFail("a"), ScriptedModel("b")
    registry = registry_of(first, second)
    stream = registry.stream("hello", fallbacks=["b"], session_id="chat")
    chunks = [await stream.__anext__()]
    with pytest.raises(ServerError, match="after the first chunk"):
        chunks.extend([chunk async for chunk in stream])
    assert chunks == ["partial "]
    assert second.calls == 0
    assert_released(registry)


async def test_cancelling_mid_fallback_leaves_the_core_as_it_was() -> None:
    first = failing("a")
    slow = Hanging("b", rpm=5)
    registry = registry_of(first, slow)
    registry.select(session_id="other")  # one outstanding ticket, one session, before
    tickets, sessions = registry.core.outstanding_tickets(), registry.core.session_counts()[0]
    task = asyncio.create_task(registry.generate("hello", fallbacks=["b"], session_id="chat"))
    await slow.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert registry.core.outstanding_tickets() == tickets
    assert registry.get_metrics("a").pending + registry.get_metrics("b").pending == 1
    assert registry.core.session_counts()[0] <= sessions + 1
    assert registry.rate_limits("b")["requests"] == 1, "a call already sent keeps its reservation"


class Counting(ScriptedModel):
    """A model of a 1,000-token window whose tokenizer returns ``count``."""

    def __init__(self, name: str, count: object) -> None:
        super().__init__(
            name,
            capabilities=ModelCapabilities(text_generation=True, chat=True, context_length=1000),
        )
        self.count = count

    async def count_tokens(self, prompt: Prompt) -> Any:
        return self.count


@pytest.mark.parametrize("max_tokens", [2**31, 2**32 - 1, 2**32, 2**40, 2**70])
async def test_a_max_tokens_no_window_holds_is_never_sent(max_tokens: int) -> None:
    """The size check before selection counts ``max_tokens``: a value larger
    than every window is refused however large it is (2**31 was, 2**32 was sent)."""
    model = ScriptedModel("a")  # an 8,192-token window
    registry = registry_of(model)
    with pytest.raises(NoEligibleModelsError, match="context_length"):
        await registry.generate("hello", max_tokens=max_tokens)
    with pytest.raises(NoEligibleModelsError, match="context_length"):
        _ = [chunk async for chunk in registry.stream("hello", max_tokens=max_tokens)]
    assert model.calls == 0
    assert_released(registry)


@pytest.mark.parametrize("count", [-1, float("nan"), True, "12", 1.5])
async def test_a_tokenizer_returning_garbage_is_a_clear_error_and_releases(count: object) -> None:
    counting, other = Counting("a", count), ScriptedModel("b")
    registry = registry_of(counting, other)
    with pytest.raises(TypeError, match=r"count_tokens returned"):
        await registry.generate("hello")
    assert (counting.calls, other.calls) == (0, 0)
    assert_released(registry)


async def refused_as_too_long(count: int) -> None:
    """A count larger than every window is the request's problem, said as a
    context-length error; never an error about a ``context_length`` the
    caller did not give."""
    counting, other = Counting("a", count), ScriptedModel("b")
    registry = registry_of(counting, other)
    with pytest.raises(ContextLengthExceededError, match="not sent"):
        await registry.generate("hello")
    assert (counting.calls, other.calls) == (0, 0)
    assert_released(registry)


async def test_a_tokenizer_count_larger_than_every_window_is_the_context_length_error() -> None:
    await refused_as_too_long(10**9)


@pytest.mark.parametrize("count", [2**32, 2**70])
async def test_a_tokenizer_count_no_window_holds_is_the_context_length_error(count: int) -> None:
    """The same beyond the largest window the core can express (2**32 - 1)."""
    await refused_as_too_long(count)


class HangingStream(Hanging):
    """Says when its stream has started, then never sends a chunk."""

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        self.calls += 1
        self.started.set()
        await asyncio.Event().wait()
        yield "unreachable"


async def test_cancelling_a_stream_mid_fallback_leaves_the_core_as_it_was() -> None:
    first = failing("a")
    slow = HangingStream("b", rpm=5)
    registry = registry_of(first, slow)
    tickets = registry.core.outstanding_tickets()

    async def consume() -> list[str]:
        return [chunk async for chunk in registry.stream("hello", fallbacks=["b"], session_id="s")]

    task = asyncio.create_task(consume())
    await slow.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert registry.core.outstanding_tickets() == tickets
    assert_released(registry)
    assert registry.rate_limits("b")["requests"] == 1, (
        "a stream already opened keeps its reservation"
    )


async def test_the_restrictions_add_up_across_a_chain_of_failures() -> None:
    """After a context-length error and then a content filter, the next model
    needs the larger window and another provider; nothing else is sent."""

    def windowed(
        name: str, provider: str, window: int, fail: BaseException | None
    ) -> ScriptedModel:
        capabilities = ModelCapabilities(text_generation=True, chat=True, context_length=window)
        return ScriptedModel(name, provider=provider, capabilities=capabilities, fail=fail)

    models = [
        windowed("a", "p1", 8_000, ContextLengthExceededError("too long", model="a")),
        windowed("b", "p2", 16_000, ContentFilteredError("refused", model="b")),
        windowed("small-p3", "p3", 4_000, None),  # another provider, too small a window
        windowed("large-p2", "p2", 64_000, None),  # large enough, the filtering provider
        windowed("answer", "p3", 32_000, None),
    ]
    registry = registry_of(*models)
    result = await registry.generate(
        "hello", retry_budget=5, fallbacks=["b", "small-p3", "large-p2", "answer"]
    )
    assert [(a.model, a.outcome) for a in result.attempts] == [
        ("a", "context_length"),
        ("b", "content_filter"),
        ("answer", "ok"),
    ]
    assert [m.calls for m in models] == [1, 1, 0, 0, 1]
    assert_released(registry)
