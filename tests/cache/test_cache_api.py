"""The cache's contract through the public model API, on every backend."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from orchestrator import _core
from orchestrator.core.cache import DEFAULT_REDIS_URL, CacheStatistics, ModelCache
from orchestrator.core.model import estimate_tokens
from orchestrator.errors import MalformedResponseError, ServerError


def make_cache(kind: str, tmp_path: Path, redis_url: str, **kwargs: Any) -> ModelCache:
    if kind == "memory":
        return ModelCache(**kwargs)
    if kind == "redis":
        return ModelCache(backend="redis", redis_url=redis_url, **kwargs)
    if kind == "disk":
        return ModelCache(backend="disk", path=tmp_path / "cache.sqlite3", **kwargs)
    if kind == "tiered-redis":
        return ModelCache(backend="tiered", redis_url=redis_url, **kwargs)
    assert kind == "tiered-disk"
    return ModelCache(backend="tiered", path=tmp_path, **kwargs)


BACKEND_KINDS = ["memory", "redis", "disk", "tiered-redis", "tiered-disk"]


# ----- the API document's example ---------------------------------------------------------


async def run_doc_example(cache: ModelCache, model: Any) -> CacheStatistics:
    """The "Model Caching" example of the API document, as written."""
    model.enable_caching(cache)
    response1 = await model.generate_response("What is AI?")  # first call - cache miss
    response2 = await model.generate_response("What is AI?")  # second call - cache hit
    stats = cache.get_statistics()
    assert response1 == response2
    assert model.calls == 1
    assert stats.misses == 1 and stats.hits == 1
    assert stats.hit_rate == 0.5
    assert f"Cache hit rate: {stats.hit_rate:.2%}" == "Cache hit rate: 50.00%"
    expected_cost = model.cost.price(estimate_tokens("What is AI?"), estimate_tokens(response1))
    assert stats.cost_saved == pytest.approx(expected_cost)
    assert stats.latency_saved > 0
    assert stats.errors == 0 and stats.stores == 1
    return stats


async def test_doc_example_redis_exactly_as_written(
    redis_server: Any, model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    cache = ModelCache(backend="redis", ttl=3600, max_size=10000, compression=True)
    try:
        await run_doc_example(cache, model)
    finally:
        await cache.aclose()
    assert cache.redis_url == redis_server.url


@pytest.mark.parametrize("kind", BACKEND_KINDS)
@pytest.mark.parametrize("compression", [False, True, "zlib"])
async def test_doc_example_every_backend(
    kind: str, compression: Any, tmp_path: Path, redis_server: Any, model: Any
) -> None:
    cache = make_cache(kind, tmp_path, redis_server.url, compression=compression)
    try:
        stats = await run_doc_example(cache, model)
        # A fresh cache over the same shared store serves the answer too.
        if kind != "memory":
            other = make_cache(kind, tmp_path, redis_server.url, compression=compression)
            model.enable_caching(other)
            await model.generate_response("What is AI?")
            assert model.calls == 1
            assert other.get_statistics().hits == 1
            await other.aclose()
    finally:
        await cache.aclose()
    if kind in ("memory", "disk", "tiered-disk"):
        assert stats.entries == 1 and stats.bytes and stats.bytes > 0
    else:
        assert stats.entries is None or kind == "tiered-redis"


def test_default_cache_is_memory_and_needs_no_loop() -> None:
    cache = ModelCache()
    assert cache.backend == "memory"
    stats = cache.get_statistics()
    assert stats.hit_rate == 0.0 and stats.hits == stats.misses == 0
    assert stats.entries == 0 and stats.bytes == 0


def test_redis_url_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert ModelCache(backend="redis").redis_url == DEFAULT_REDIS_URL
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6380/2")
    assert ModelCache(backend="redis").redis_url == "redis://cache.internal:6380/2"


# ----- keys --------------------------------------------------------------------------------


async def test_key_stability(make_model: Any) -> None:
    cache = ModelCache()
    a = make_model("model-a")
    a.enable_caching(cache)
    first = await a.generate_response("hi", temperature=0.2, max_tokens=50, stop=["\n"])
    again = await a.generate_response("hi", stop=["\n"], max_tokens=50, temperature=0.2)
    assert again == first and a.calls == 1  # keyword order does not matter
    zero = await a.generate_response("z", temperature=0.0)
    assert await a.generate_response("z", temperature=-0.0) == zero and a.calls == 2

    # Another temperature, another parameter, another prompt: misses.
    await a.generate_response("hi", temperature=0.3, max_tokens=50, stop=["\n"])
    await a.generate_response("hi", temperature=0.2, max_tokens=51, stop=["\n"])
    await a.generate_response("hi", temperature=0.2, max_tokens=50, stop=["\n"], top_p=0.9)
    await a.generate_response("hi!", temperature=0.2, max_tokens=50, stop=["\n"])
    assert a.calls == 6

    # Another model, or the same name from another provider: misses.
    b = make_model("model-b")
    c = make_model("model-a", provider="other")
    for m in (b, c):
        m.enable_caching(cache)
        await m.generate_response("hi", temperature=0.2, max_tokens=50, stop=["\n"])
        assert m.calls == 1

    # Another namespace (tenant) over the same Redis-like key space: misses.
    tenant = ModelCache(namespace="tenant-2")
    a.enable_caching(tenant)
    await a.generate_response("hi", temperature=0.2, max_tokens=50, stop=["\n"])
    assert a.calls == 7


async def test_messages_prompts_and_tools_are_keyed(model: Any) -> None:
    cache = ModelCache()
    model.enable_caching(cache)
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await model.generate_response(msgs, tools=tools)
    await model.generate_response(list(msgs), tools=[dict(tools[0])])
    assert model.calls == 1
    await model.generate_response(msgs, tools=tools, response_format={"type": "json_object"})
    await model.generate_response([msgs[1], msgs[0]], tools=tools)
    assert model.calls == 3


async def test_unhashable_params_bypass_the_cache(model: Any, caplog: Any) -> None:
    cache = ModelCache()
    model.enable_caching(cache)
    with caplog.at_level(logging.WARNING, logger="orchestrator.core.cache"):
        await model.generate_response("hi", temperature=math.nan)
        await model.generate_response("hi", callback=object())
    assert model.calls == 2
    stats = cache.get_statistics()
    assert stats.errors == 2 and stats.hits == stats.misses == 0
    assert "params" in caplog.text


# ----- per-call control ----------------------------------------------------------------------


async def test_cache_false_and_refresh(model: Any) -> None:
    cache = ModelCache()
    model.enable_caching(cache)
    first = await model.generate_response("q")
    uncached = await model.generate_response("q", cache=False)
    assert model.calls == 2 and uncached != first
    assert await model.generate_response("q") == first  # cache=False did not store
    refreshed = await model.generate_response("q", refresh_cache=True)
    assert model.calls == 3 and refreshed != first
    assert await model.generate_response("q") == refreshed  # the entry was replaced
    assert model.calls == 3
    stats = cache.get_statistics()
    assert (stats.hits, stats.misses) == (2, 1)


# ----- errors are not cached -------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKEND_KINDS)
async def test_errors_are_not_cached(
    kind: str, tmp_path: Path, redis_server: Any, model: Any
) -> None:
    cache = make_cache(kind, tmp_path, redis_server.url)
    model.enable_caching(cache)
    model.fail_with = ServerError("boom", model=model.name)
    for _ in range(2):
        with pytest.raises(ServerError):
            await model.generate_response("q")
    model.fail_with = None
    ok = await model.generate_response("q")
    assert model.calls == 3 and "answer #3" in ok
    stats = cache.get_statistics()
    assert stats.stores == 1 and stats.hits == 0
    await cache.aclose()


async def test_malformed_answer_not_cached(make_model: Any) -> None:
    class Bad(make_model):  # type: ignore[misc,valid-type]
        async def generate_response(self, prompt: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return 42

    model = Bad()
    cache = ModelCache()
    model.enable_caching(cache)
    for _ in range(2):
        with pytest.raises(MalformedResponseError):
            await model.generate_response("q")
    assert model.calls == 2 and cache.get_statistics().stores == 0


async def test_unserialisable_answer_is_returned_and_counted(model: Any, caplog: Any) -> None:
    cache = ModelCache()
    model.enable_caching(cache)
    model.answer = "half a surrogate: \ud800"
    with caplog.at_level(logging.WARNING, logger="orchestrator.core.cache"):
        assert await model.generate_response("q") == model.answer
        assert await model.generate_response("q") == model.answer
    assert model.calls == 2
    stats = cache.get_statistics()
    assert stats.errors == 2 and stats.stores == 0 and stats.entries == 0
    assert "not serialisable" in caplog.text


# ----- coalescing ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "redis", "disk"])
async def test_fifty_concurrent_requests_make_one_call(
    kind: str, tmp_path: Path, redis_server: Any, make_model: Any
) -> None:
    model = make_model(delay=0.05)
    cache = make_cache(kind, tmp_path, redis_server.url)
    model.enable_caching(cache)
    answers = await asyncio.gather(*(model.generate_response("same") for _ in range(50)))
    assert model.calls == 1
    assert len(set(answers)) == 1
    stats = cache.get_statistics()
    assert stats.misses == 1 and stats.hits == 49 and stats.coalesced == 49
    await cache.aclose()


async def test_coalesced_waiters_all_get_the_error(make_model: Any) -> None:
    model = make_model(delay=0.05)
    model.fail_with = ServerError("down", model=model.name)
    cache = ModelCache()
    model.enable_caching(cache)
    results = await asyncio.gather(
        *(model.generate_response("same") for _ in range(20)), return_exceptions=True
    )
    assert model.calls == 1
    assert all(isinstance(r, ServerError) for r in results)
    model.fail_with = None
    await model.generate_response("same")
    assert model.calls == 2 and cache.get_statistics().stores == 1


async def test_cancelled_leader_does_not_fail_waiters(make_model: Any) -> None:
    model = make_model(delay=0.1)
    cache = ModelCache()
    model.enable_caching(cache)
    leader = asyncio.ensure_future(model.generate_response("same"))
    await asyncio.sleep(0.01)
    waiters = [asyncio.ensure_future(model.generate_response("same")) for _ in range(5)]
    await asyncio.sleep(0.01)
    leader.cancel()
    answers = await asyncio.gather(*waiters)
    assert leader.cancelled()
    assert len(set(answers)) == 1 and model.calls == 2


# ----- streaming -------------------------------------------------------------------------------


async def collect(stream: Any) -> list[str]:
    return [chunk async for chunk in stream]


@pytest.mark.parametrize("kind", ["memory", "redis", "disk"])
async def test_stream_is_stored_then_replayed(
    kind: str, tmp_path: Path, redis_server: Any, model: Any
) -> None:
    cache = make_cache(kind, tmp_path, redis_server.url)
    model.enable_caching(cache)
    live = await collect(model.stream_response("tell me"))
    assert len(live) == 4 and model.stream_calls == 1
    replay = await collect(model.stream_response("tell me"))
    assert "".join(replay) == "".join(live) and model.stream_calls == 1
    assert len(replay) >= 1
    # A streamed answer serves the same non-streaming request, and back.
    assert await model.generate_response("tell me") == "".join(live)
    assert model.calls == 0
    long_answer = await model.generate_response("long " * 100)
    chunks = await collect(model.stream_response("long " * 100))
    assert "".join(chunks) == long_answer and 2 <= len(chunks) <= 8
    stats = cache.get_statistics()
    assert (stats.hits, stats.misses) == (3, 2)
    await cache.aclose()


async def test_failed_or_cut_off_stream_is_not_stored(model: Any) -> None:
    cache = ModelCache()
    model.enable_caching(cache)
    model.stream_fail_after = 2
    got: list[str] = []
    with pytest.raises(ServerError):
        async for chunk in model.stream_response("q"):
            got.append(chunk)
    assert len(got) == 2
    model.stream_fail_after = None
    # The consumer stops after one chunk: the stream is cut off.
    stream = model.stream_response("q")
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert cache.get_statistics().stores == 0 and cache.get_statistics().entries == 0
    full = await collect(model.stream_response("q"))
    assert model.stream_calls == 3 and cache.get_statistics().stores == 1
    assert await collect(model.stream_response("q")) != [] and model.stream_calls == 3
    assert "".join(await collect(model.stream_response("q"))) == "".join(full)


async def test_stream_cache_false_and_refresh(model: Any) -> None:
    cache = ModelCache()
    model.enable_caching(cache)
    first = "".join(await collect(model.stream_response("q")))
    assert "".join(await collect(model.stream_response("q", cache=False))) != first
    refreshed = "".join(await collect(model.stream_response("q", refresh_cache=True)))
    assert refreshed != first and model.stream_calls == 3
    assert "".join(await collect(model.stream_response("q"))) == refreshed


# ----- embeddings ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "redis", "disk", "tiered-redis"])
async def test_embeddings_compute_only_missing_texts(
    kind: str, tmp_path: Path, redis_server: Any, model: Any
) -> None:
    cache = make_cache(kind, tmp_path, redis_server.url)
    model.enable_caching(cache)
    first = await model.embed(["alpha", "beta"])
    assert model.embedded == [["alpha", "beta"]]
    mixed = await model.embed(["beta", "gamma", "alpha", "gamma"])
    assert model.embedded[-1] == ["gamma"]  # only the missing text, once
    assert mixed[0] == first[1] and mixed[2] == first[0] and mixed[1] == mixed[3]
    assert await model.embed(["gamma", "alpha"]) == [mixed[1], first[0]]
    assert len(model.embedded) == 2
    stats = cache.get_statistics()
    assert stats.misses == 3 and stats.hits == 4
    # Opting out and refreshing work per call.
    await model.embed(["alpha"], cache=False)
    await model.embed(["alpha"], refresh_cache=True)
    assert model.embedded[-2:] == [["alpha"], ["alpha"]]
    await cache.aclose()


async def test_embeddings_of_models_without_the_capability_are_not_cached(
    make_model: Any,
) -> None:
    model = make_model(embeddings=False)
    model.enable_caching(ModelCache())
    await model.embed(["a"])
    await model.embed(["a"])
    assert model.embedded == [["a"], ["a"]]


async def test_embedding_count_mismatch_is_an_error(make_model: Any) -> None:
    class Short(make_model):  # type: ignore[misc,valid-type]
        async def embed(self, texts: Any) -> list[list[float]]:
            return [[1.0]]

    model = Short()
    model.enable_caching(ModelCache())
    with pytest.raises(MalformedResponseError, match="1 vectors for 2 texts"):
        await model.embed(["a", "b"])


async def test_unserialisable_embedding_returned_and_counted(make_model: Any) -> None:
    class NaNs(make_model):  # type: ignore[misc,valid-type]
        async def embed(self, texts: Any) -> list[list[float]]:
            self.embedded.append(list(texts))
            return [[math.nan] for _ in texts]

    model = NaNs()
    cache = ModelCache()
    model.enable_caching(cache)
    out = await model.embed(["a"])
    assert math.isnan(out[0][0])
    await model.embed(["a"])
    assert len(model.embedded) == 2 and cache.get_statistics().errors == 2


# ----- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKEND_KINDS)
async def test_metadata(kind: str, tmp_path: Path, redis_server: Any) -> None:
    cache = make_cache(kind, tmp_path, redis_server.url)
    show = {"capabilities": ["completion", "tools"], "context_length": 131072}
    key = "ollama:http://127.0.0.1:11434:llama3.1:show"
    assert await cache.get_metadata(key) is None
    assert await cache.set_metadata(key, show, ttl=60)
    assert await cache.get_metadata(key) == show
    assert await cache.get_metadata("other", default="none") == "none"
    assert not await cache.set_metadata("bad", {"x": math.inf})
    stats = cache.get_statistics()
    assert (stats.metadata_hits, stats.metadata_misses) == (1, 2)
    assert stats.hits == stats.misses == 0 and stats.errors == 1
    with pytest.raises(ValueError, match="ttl"):
        await cache.set_metadata(key, show, ttl=0)
    await cache.set_metadata(key, show, ttl=0.1)
    await asyncio.sleep(0.25)
    assert await cache.get_metadata(key) is None
    await cache.aclose()


# ----- clear and namespaces --------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKEND_KINDS)
async def test_clear_only_touches_its_namespace(
    kind: str, tmp_path: Path, redis_server: Any, make_model: Any
) -> None:
    mine = make_cache(kind, tmp_path, redis_server.url, namespace="a")
    theirs = make_cache(kind, tmp_path, redis_server.url, namespace="b")
    m1, m2 = make_model(), make_model()
    m1.enable_caching(mine)
    m2.enable_caching(theirs)
    await m1.generate_response("q")
    await m2.generate_response("q")
    await mine.clear()
    await m1.generate_response("q")
    await m2.generate_response("q")
    assert (m1.calls, m2.calls) == (2, 1)
    await mine.aclose()
    await theirs.aclose()


# ----- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"backend": "memcached"}, ValueError, "backend: 'memcached'"),
        ({"ttl": 0}, ValueError, "ttl: 0"),
        ({"ttl": -5}, ValueError, "ttl: -5"),
        ({"ttl": math.inf}, ValueError, "ttl: inf"),
        ({"ttl": "1h"}, TypeError, "ttl"),
        ({"max_size": -1}, ValueError, "max_size: -1"),
        ({"max_size": 0}, ValueError, "max_size: 0"),
        ({"max_size": 1.5}, TypeError, "max_size"),
        ({"max_bytes": -10}, ValueError, "max_bytes: -10"),
        ({"compression": "lz4"}, ValueError, "compression: 'lz4'"),
        ({"namespace": ""}, ValueError, "namespace"),
        ({"namespace": "a b*"}, ValueError, "namespace"),
        ({"backend": "disk"}, ValueError, "path: None"),
        ({"backend": "disk", "path": 3}, TypeError, "path"),
        ({"backend": "redis", "redis_url": "http://x"}, ValueError, "redis_url: 'http://x'"),
        ({"backend": "redis", "redis_timeout": 0}, ValueError, "redis_timeout: 0"),
        ({"backend": "redis", "path": "/tmp/x"}, ValueError, "path"),
        ({"redis_url": "redis://localhost"}, ValueError, "redis_url"),
        ({"second_tier": "disk"}, ValueError, "second_tier"),
        ({"backend": "tiered", "second_tier": "s3"}, ValueError, "second_tier: 's3'"),
        (
            {"backend": "tiered", "path": "/tmp/x", "redis_url": "redis://h"},
            ValueError,
            "second_tier",
        ),
        ({"retry_interval": -1}, ValueError, "retry_interval: -1"),
    ],
)
def test_bad_settings_fail_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match.replace("*", r"\*").replace("(", r"\(")):
        ModelCache(**kwargs)


def test_enable_caching_requires_a_model_cache(model: Any) -> None:
    with pytest.raises(TypeError, match="ModelCache"):
        model.enable_caching({"backend": "memory"})


def test_keys_come_from_the_core() -> None:
    key = _core.cache_key("m", "p", "hi", {"b": 1, "a": 2}, "ns")
    assert key == _core.cache_key("m", "p", "hi", {"a": 2, "b": 1}, "ns")
    assert len(key) == 32 and int(key, 16) >= 0
