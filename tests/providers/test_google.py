"""Gemini: the loopback server checked with google-genai, then our adapter."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from orchestrator.errors import AuthenticationError, ContentFilteredError
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import GOOGLE_KEY
from tests.servers import GeminiServer
from tests.servers.openai_server import embedding_of


def _client(server: GeminiServer, version: str = "v1beta") -> genai.Client:
    return genai.Client(
        api_key=GOOGLE_KEY,
        http_options=types.HttpOptions(base_url=server.root_url, api_version=version),
    )


async def test_sdk_speaks_to_the_server(gemini_server: GeminiServer) -> None:
    client = _client(gemini_server)
    done = await client.aio.models.generate_content(
        model="gemini-1.5-flash",
        contents="Say hello",
        config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=32),
    )
    assert done.text == gemini_server.reply
    assert done.model_version == "gemini-1.5-flash-002"
    assert done.usage_metadata is not None and done.usage_metadata.prompt_token_count == 4
    sent = gemini_server.requests[-1]
    assert sent.headers["x-goog-api-key"] == GOOGLE_KEY
    assert sent.json()["generationConfig"]["maxOutputTokens"] == 32

    pieces = []
    async for chunk in await client.aio.models.generate_content_stream(
        model="gemini-2.0-flash", contents="Say hello"
    ):
        pieces.append(chunk.text or "")
    assert "".join(pieces) == gemini_server.reply
    assert gemini_server.requests[-1].query == {"alt": "sse"}

    # The synchronous client and another API version work too.
    sync = _client(gemini_server, "v1")
    assert sync.models.generate_content(model="gemini-2.0-flash", contents="hi").text == (
        gemini_server.reply
    )
    emb = sync.models.embed_content(model="text-embedding-004", contents=["a b", "c"])
    assert emb.embeddings is not None
    assert [e.values for e in emb.embeddings] == [embedding_of("a b"), embedding_of("c")]

    gemini_server.add_fault(status=429)
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.0-flash", contents="x")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"


async def test_adapter(gemini_server: GeminiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", GOOGLE_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini_server.root_url)
    model = GoogleModel("gemini-1.5-flash")
    assert model.base_url == gemini_server.root_url
    registry = ModelRegistry()
    registry.register_model(model)
    text = await model.generate_response(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=50,
        top_p=0.9,
    )
    assert text == gemini_server.reply
    body = gemini_server.requests[-1].json()
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"maxOutputTokens": 50, "topP": 0.9}
    assert gemini_server.requests[-1].path == "/v1beta/models/gemini-1.5-flash:generateContent"

    chunks = [c async for c in model.stream_response("Say hello")]
    assert "".join(chunks) == gemini_server.reply and len(chunks) > 1
    metrics = registry.get_metrics("gemini-1.5-flash")
    assert metrics.successes == 2
    assert metrics.input_tokens == 2 + 4 + 2 and metrics.output_tokens == 12
    assert metrics.total_cost == pytest.approx(8 * 0.075e-6 + 12 * 0.3e-6)

    assert await model.health_check() is True
    embedder = GoogleModel("text-embedding-004", api_version="v1")
    assert await embedder.embed(["x", "y z"]) == [embedding_of("x"), embedding_of("y z")]
    assert embedder.cost is None  # the catalogue has no price for it: unpriced


async def test_blocked_prompt_is_content_filtered(gemini_server: GeminiServer) -> None:
    from tests.servers import JSONResponse

    async def blocked(request: object, fault: object) -> JSONResponse:
        return JSONResponse(
            200, {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-2.0-flash"}
        )

    gemini_server.route = blocked  # type: ignore[method-assign]
    model = GoogleModel("gemini-2.0-flash", api_key=GOOGLE_KEY, base_url=gemini_server.root_url)
    with pytest.raises(ContentFilteredError):
        await model.generate_response("something")


async def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(AuthenticationError, match="GOOGLE_API_KEY or GEMINI_API_KEY"):
        await GoogleModel("gemini-2.5-pro").generate_response("hi")
