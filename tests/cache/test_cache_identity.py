"""Finding 4: a cache entry belongs to one full configuration. Models that
differ in any setting that can change an answer (credential, base URL with
path and query, userinfo, organization, default generation settings,
embedding model) never share an entry; the identity never holds a credential
(only an HMAC under the cache's own secret, shared by the processes sharing a
store); a query string in the base URL keeps the request path; and forged
entries with a valid checksum are misses, counted and deleted."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cache.conftest import CountingModel
from tests.redis_server import RedisServer
from tests.servers import AnthropicServer, GeminiServer, OpenAIServer

from orchestrator.core.cache import ModelCache
from orchestrator.core.cache_backends.codec import _HEADER, FORMAT, MAGIC
from orchestrator.core.model import Model, last_call
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.openai_model import OpenAIModel

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


def with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("http://", f"http://{userinfo}@")


#: Pairs of OpenAI models that differ in one setting: (setting, make(url, variant)).
OPENAI_PAIRS: dict[str, Callable[[str, int], Model]] = {
    "api_key": lambda url, i: OpenAIModel(
        "gpt-4", api_key=f"sk-tenant-{i}-0123456789", base_url=url
    ),
    "userinfo": lambda url, i: OpenAIModel(
        "gpt-4", base_url=with_userinfo(url, f"u{i}:pw-{i}-xyz")
    ),
    "organization": lambda url, i: OpenAIModel("gpt-4", base_url=url, organization=f"org-{i}"),
    "query": lambda url, i: OpenAIModel("gpt-4", base_url=f"{url}?tenant={i}"),
    "model_id": lambda url, i: OpenAIModel("gpt-4", base_url=url, model_id=("gpt-4", "gpt-4o")[i]),
}


@pytest.mark.parametrize("setting", list(OPENAI_PAIRS))
async def test_bob_never_gets_alices_answer(openai_server: OpenAIServer, setting: str) -> None:
    cache = ModelCache()
    alice, bob = (OPENAI_PAIRS[setting](openai_server.url, i) for i in (0, 1))
    for model in (alice, bob):
        model.enable_caching(cache)
    assert alice.cache_identity() != bob.cache_identity() or setting in ("api_key", "userinfo")
    await alice.generate_response("What is my balance?")
    await bob.generate_response("What is my balance?")
    bobs = last_call()
    assert bobs is not None and not bobs.cached  # bob's answer came from the provider
    assert len(openai_server.requests) == 2
    await alice.generate_response("What is my balance?")
    alices = last_call()
    assert alices is not None and alices.cached  # alice's own entry hits
    assert len(openai_server.requests) == 2
    stats = cache.get_statistics()
    assert (stats.hits, stats.misses) == (1, 2)


async def test_default_max_tokens_is_part_of_the_identity() -> None:
    cache = ModelCache()
    with AnthropicServer() as server:
        short, long = (
            AnthropicModel(
                "claude-3-opus", api_key="k" * 8, base_url=server.url, default_max_tokens=n
            )
            for n in (16, 4096)
        )
        for model in (short, long):
            model.enable_caching(cache)
            await model.generate_response("Write an essay")
        assert len(server.requests) == 2
        assert [r.json()["max_tokens"] for r in server.requests] == [16, 4096]


async def test_the_embedding_model_is_part_of_the_identity(openai_server: OpenAIServer) -> None:
    cache = ModelCache()
    small, large = (
        OpenAIModel("text-embedding-3-small", base_url=openai_server.url, embedding_model=m)
        for m in ("text-embedding-3-small", "text-embedding-3-large")
    )
    for model in (small, large):
        model.enable_caching(cache)
        await model.embed(["the same text"])
    assert [r.json()["model"] for r in openai_server.requests] == [
        "text-embedding-3-small",
        "text-embedding-3-large",
    ]


def test_the_identity_holds_no_credential() -> None:
    key, password, query_key = "sk-identity-0123456789", "pw-identity-0123", "qk-identity-0123"
    model = OpenAIModel(
        "gpt-4",
        api_key=key,
        base_url=f"http://alice:{password}@127.0.0.1:1/v1?tenant=A&key={query_key}",
    )
    identity = model.cache_identity()
    for secret in (key, password, query_key, "alice"):
        assert secret not in identity
    settings = json.loads(identity)["settings"]
    assert settings["base_url"] == "http://127.0.0.1:1/v1?tenant=A"


async def test_fingerprints_are_keyed_per_cache_and_shared_through_the_store(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    path = tmp_path / "shared.sqlite3"
    first, second = ModelCache(backend="disk", path=path), ModelCache(backend="disk", path=path)
    model = OpenAIModel("gpt-4", api_key="sk-shared-0123456789", base_url=openai_server.url)
    try:
        model.enable_caching(first)
        await model.generate_response("Hello")
        model.enable_caching(second)  # another process would open the file the same way
        await model.generate_response("Hello")
        assert len(openai_server.requests) == 1
        assert second.get_statistics().hits == 1
    finally:
        await first.aclose()
        await second.aclose()
    # Two in-process caches have their own secrets: the same credential, two fingerprints.
    a, b = ModelCache(), ModelCache()
    key_a = await a._key("r", model, "Hello", {})
    key_b = await b._key("r", model, "Hello", {})
    assert key_a is not None and key_b is not None
    assert key_a.split(":")[-1] != key_b.split(":")[-1]


async def test_redis_caches_share_one_secret(
    redis_server: RedisServer, openai_server: OpenAIServer
) -> None:
    model = OpenAIModel("gpt-4", api_key="sk-redis-shared-0123456789", base_url=openai_server.url)
    caches = [ModelCache(backend="redis", redis_url=redis_server.url) for _ in range(2)]
    try:
        for cache in caches:
            model.enable_caching(cache)
            await model.generate_response("Hello")
        assert len(openai_server.requests) == 1
    finally:
        for cache in caches:
            await cache.aclose()


async def test_a_query_string_in_the_base_url_keeps_the_request_path(
    openai_server: OpenAIServer,
) -> None:
    model = OpenAIModel("gpt-4", base_url=f"{openai_server.url}/?tenant=A")
    await model.generate_response("Hello")
    chunks = [c async for c in model.stream_response("Hello")]
    assert chunks
    for request in openai_server.requests:
        assert request.path == "/v1/chat/completions"
        assert request.query == {"tenant": "A"}


async def test_query_parameters_of_the_url_and_of_the_call_are_merged() -> None:
    with GeminiServer() as server:
        model = GoogleModel("gemini-1.5-flash", api_key="g" * 12, base_url=f"{server.url}?tenant=A")
        assert [c async for c in model.stream_response("Hello")]
        request = server.requests[-1]
        assert request.path.endswith(":streamGenerateContent")
        assert request.query == {"tenant": "A", "alt": "sse"}


# ----- entries are checked on read ---------------------------------------------------------


def forge(entry: dict[str, Any]) -> bytes:
    """``entry`` encoded as the codec would, NaN and all, with a valid CRC."""
    body = json.dumps(entry, separators=(",", ":")).encode()
    return _HEADER.pack(MAGIC, FORMAT, b"n", zlib.crc32(body)) + body


FORGERIES: dict[str, dict[str, Any]] = {
    "cost-nan": {"cost": math.nan},
    "latency-infinity": {"latency": math.inf},
    "negative-cost": {"cost": -1.0},
    "other-model": {"model": "OTHER"},
    "fractional-tokens": {"input_tokens": 1.5},
    "negative-tokens": {"output_tokens": -3},
    "text-not-a-string": {"text": 123},
    "cost-as-string": {"cost": "0.1"},
    "cost-as-bool": {"cost": True},
    "wrong-kind": {"kind": "metadata"},
    "expires-nan": {"expires": math.nan},
}


@pytest.mark.parametrize("backend", ["memory", "disk", "redis"])
@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_entries_with_a_valid_checksum_are_misses_counted_and_deleted(
    backend: str, forgery: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        cache = ModelCache(backend="redis", redis_url=server.url)
    elif backend == "disk":
        cache = ModelCache(backend="disk", path=tmp_path)
    else:
        cache = ModelCache()
    model = CountingModel()
    model.enable_caching(cache)
    try:
        first = await model.generate_response("Hello")
        key = await cache._key("r", model, "Hello", {})
        assert key is not None
        tier = cache._tiers[-1]
        stored = await tier.get(key)
        assert stored is not None
        entry = {**cache._codec.decode(stored), **FORGERIES[forgery]}
        await tier.set(key, forge(entry), 60)

        second = await model.generate_response("Hello")
        assert model.calls == 2 and second != first  # a miss: the provider answered
        stats = cache.get_statistics()
        assert stats.corrupted == 1 and stats.hits == 0
        assert math.isfinite(stats.cost_saved) and math.isfinite(stats.latency_saved)
        replaced = await tier.get(key)
        assert replaced is not None and replaced != forge(entry)  # deleted, then stored anew
        assert await model.generate_response("Hello") == second  # the fresh entry is served
    finally:
        await cache.aclose()


def test_a_setting_changed_after_construction_changes_the_identity() -> None:
    model = HuggingFaceModel("tgi", endpoint_url="http://127.0.0.1:1")
    before = model.cache_identity()
    assert model.cache_identity() == before  # stable while nothing changes
    model.model_kwargs["temperature"] = 0.1  # changed in place, one level down
    changed = model.cache_identity()
    assert changed != before and "temperature" in changed
    model.max_new_tokens = 16
    assert model.cache_identity() not in (before, changed)


async def test_credentialed_requests_go_uncached_while_the_secret_store_is_down(
    redis_server: RedisServer, openai_server: OpenAIServer
) -> None:
    url = redis_server.url
    redis_server.kill()
    cache = ModelCache(backend="redis", redis_url=url, retry_interval=0)
    model = OpenAIModel("gpt-4", api_key="sk-while-down-0123456789", base_url=openai_server.url)
    model.enable_caching(cache)
    try:
        for _ in range(2):
            assert await model.generate_response("Hello")
        assert len(openai_server.requests) == 2  # answered, never from a guessed secret
        assert cache.get_statistics().errors >= 2
        redis_server.start()
        await model.generate_response("Hello")
        await model.generate_response("Hello")
        assert len(openai_server.requests) == 3  # back: the secret is stored and entries hit
    finally:
        await cache.aclose()
