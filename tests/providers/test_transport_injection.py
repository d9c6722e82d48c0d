"""The transport is injectable: an ``httpx.AsyncClient`` of the caller's
(``http_client=``, never closed by the adapter) or a :class:`ClientPool`
(``client_pool=``, e.g. one per registry) instead of the module's default
pool, whose ``set_pool_limits`` keeps working."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.integrations import ClientPool, set_pool_limits
from orchestrator.integrations._http import DEFAULT_POOL
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.lazy_ollama_model import LazyOllamaModel
from orchestrator.integrations.openai_model import OpenAIModel
from tests.servers import OllamaServer, OpenAIServer, TGIServer

pytestmark = pytest.mark.timeout(60)


async def test_requests_go_through_the_callers_client_which_stays_open() -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(str(request.url))

    with OpenAIServer() as server:
        async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
            model = OpenAIModel("gpt-4", base_url=f"{server.url}?tenant=A", http_client=client)
            await model.generate_response("Hello")
            assert [c async for c in model.stream_response("Hello")]
            await model.aclose()
            assert not client.is_closed
        assert seen == [f"{server.url}/chat/completions?tenant=A"] * 2
    assert DEFAULT_POOL.open_clients() == 0


async def test_a_pool_of_ones_own_serves_every_adapter_given_it() -> None:
    pool = ClientPool(max_connections=4, max_keepalive_connections=2)
    with OpenAIServer() as server:
        models = [
            OpenAIModel(name, base_url=server.url, client_pool=pool)
            for name in ("gpt-4", "gpt-4o-mini")
        ]
        for model in models:
            await model.generate_response("Hello")
        assert pool.open_clients() == 1  # one base URL, one client
        assert server.connections == 1  # and its keep-alive connection is shared
        assert DEFAULT_POOL.open_clients() == 0
        transport = pool.direct(models[0].endpoint.url)
        assert transport is not None and transport.limits.max_connections == 4
        await pool.aclose()
        assert pool.open_clients() == 0


async def test_a_lazy_ollama_model_pulls_through_the_same_pool() -> None:
    pool = ClientPool()
    with OllamaServer() as server:
        model = LazyOllamaModel("qwen2.5:0.5b", base_url=server.url, client_pool=pool)
        assert await model.generate_response("Hello")
        assert DEFAULT_POOL.open_clients() == 0 and pool.open_clients() == 1
        await pool.aclose()


def test_set_pool_limits_still_sets_the_default_pool() -> None:
    before = DEFAULT_POOL.limits
    try:
        set_pool_limits(max_connections=7, max_keepalive_connections=3)
        assert DEFAULT_POOL.limits.max_connections == 7
    finally:
        DEFAULT_POOL.limits = before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"http_client": "http://x"}, "invalid http_client: expected httpx.AsyncClient, got str"),
        ({"client_pool": object()}, "invalid client_pool: expected ClientPool, got object"),
        ({"timeout": float("nan")}, "invalid timeout: nan"),
        ({"deadline": -1}, "invalid deadline: -1"),
        ({"max_retries": True}, "invalid max_retries: True"),
    ],
)
def test_bad_transport_options_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        AnthropicModel("claude-3-opus", api_key="k" * 8, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h/v1", "invalid base_url 'ftp://h/v1': need http"),
        ("http://u:pw-secret-123@:99999/v1", "invalid base_url 'http://u:\\*\\*\\*@"),
    ],
)
def test_a_bad_base_url_is_refused_with_its_credentials_redacted(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpenAIModel("gpt-4", base_url=url)


async def test_a_tgi_endpoint_uses_the_pool_it_is_given() -> None:
    pool = ClientPool()
    with TGIServer() as server:
        model = HuggingFaceModel("tgi", endpoint_url=server.url, client_pool=pool)
        assert await model.generate_response("Hello")
        assert pool.open_clients() == 1 and DEFAULT_POOL.open_clients() == 0
        await pool.aclose()


def test_a_local_hugging_face_model_refuses_transport_options() -> None:
    with pytest.raises(ValueError, match="endpoint_url model only"):
        HuggingFaceModel(
            "local", model_path="/nonexistent", client_pool=ClientPool(), _load_now=False
        )
