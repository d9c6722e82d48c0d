"""Every fault of the issue, against every HTTP adapter: each ends as the
documented exception (or a retry that succeeds), is recorded by the registry
with its error class, and leaves the pooled connection usable."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from orchestrator.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    MalformedResponseError,
    ModelError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamCutError,
)
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import Harness, fast


@dataclass
class Case:
    fault: dict[str, Any]
    error: Optional[type[ModelError]]  # None: a retry succeeds
    stream: bool = False
    attempts: Optional[int] = None  # requests the server should see
    same_connection: bool = True  # keep-alive survives the fault
    timeout: float = 5.0
    needs_model_name: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "401": Case({"status": 401}, AuthenticationError, attempts=1),
    "403": Case({"status": 403}, AuthenticationError, attempts=1),
    "404": Case({"status": 404}, NotFoundError, attempts=1),
    "400-context-length": Case(
        {"status": 400, "kind": "context_length"}, ContextLengthExceededError, attempts=1
    ),
    "429-then-ok": Case({"status": 429, "retry_after": "0.05"}, None, attempts=2),
    "429-http-date": Case(
        {"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, attempts=2
    ),
    "429-always": Case(
        {"status": 429, "retry_after": "0.01", "times": -1}, RateLimitError, attempts=3
    ),
    "500-then-ok": Case({"status": 500}, None, attempts=2),
    "500-always": Case({"status": 500, "times": -1}, ServerError, attempts=3),
    "503-then-ok": Case({"status": 503}, None, attempts=2),
    "503-always": Case({"status": 503, "times": -1}, ServerError, attempts=3),
    "invalid-json-then-ok": Case({"invalid_json": True}, None, attempts=2),
    "invalid-json-always": Case(
        {"invalid_json": True, "times": -1}, MalformedResponseError, attempts=3
    ),
    "empty-completion": Case({"empty": True, "times": -1}, MalformedResponseError, attempts=3),
    "empty-completion-stream": Case({"empty": True}, MalformedResponseError, stream=True),
    "wrong-model": Case(
        {"wrong_model": True, "times": -1},
        MalformedResponseError,
        attempts=3,
        needs_model_name=True,
    ),
    "wrong-model-stream": Case(
        {"wrong_model": True},
        MalformedResponseError,
        stream=True,
        needs_model_name=True,
        same_connection=False,  # abandoned mid-stream: the connection is closed
    ),
    "timeout-then-ok": Case({"delay": 0.6}, None, attempts=2, same_connection=False, timeout=0.2),
    "timeout-always": Case(
        {"delay": 0.6, "times": -1},
        ProviderTimeoutError,
        attempts=3,
        same_connection=False,
        timeout=0.2,
    ),
    "dropped-then-ok": Case({"drop": True}, None, attempts=2, same_connection=False),
    "dropped-always": Case(
        {"drop": True, "times": -1}, ProviderConnectionError, attempts=3, same_connection=False
    ),
    "stream-cut-off": Case({"cut": True}, StreamCutError, stream=True, same_connection=False),
    "stream-without-end": Case({"truncate": True}, StreamCutError, stream=True),
    "stream-malformed-event": Case(
        {"malformed": True}, MalformedResponseError, stream=True, same_connection=False
    ),
    "stream-error-event": Case(
        {"stream_error": True}, ServerError, stream=True, same_connection=False
    ),
    "stream-429-then-ok": Case({"status": 429, "retry_after": "0.02"}, None, stream=True),
    "stream-503-always": Case({"status": 503, "times": -1}, ServerError, stream=True, attempts=3),
}


async def call(h: Harness, stream: bool) -> str:
    if stream:
        return "".join([c async for c in h.model.stream_response("Say hello")])
    return await h.model.generate_response("Say hello")


@pytest.mark.parametrize("case_id", list(CASES))
async def test_fault(harness: Harness, case_id: str) -> None:
    case = CASES[case_id]
    h = harness
    if case.needs_model_name and not h.has_model_name:
        # TGI answers carry no model name: the check cannot apply, so the
        # answer is accepted; this is what must happen there.
        case = Case(case.fault, None, stream=case.stream, attempts=None)
    fast(h.model, timeout=case.timeout)
    registry = ModelRegistry()
    registry.register_model(h.model)

    # One good call first, so the pool holds a live keep-alive connection.
    assert "Hello" in await call(h, False)
    h.server.requests.clear()
    h.server.add_fault(**case.fault)

    if case.error is None:
        text = await call(h, case.stream)
        assert text.startswith("Hello")
    else:
        with pytest.raises(case.error) as info:
            await call(h, case.stream)
        exc = info.value
        assert exc.model == h.model.name
        if isinstance(exc, RateLimitError):
            assert exc.retry_after == pytest.approx(0.01)
        if case.fault.get("status"):
            assert exc.status_code == case.fault["status"]
    if case.attempts is not None:
        assert len(h.server.requests) == case.attempts
    h.server.faults.clear()

    # The pool is still usable, and on the same connection where it should be.
    assert "Hello" in await call(h, False)
    if case.same_connection:
        assert h.server.connections == 1

    metrics = registry.get_metrics(h.model.name)
    assert metrics.requests == 3
    if case.error is None:
        assert metrics.successes == 3
        assert metrics.failures_by_class == {} or sum(metrics.failures_by_class.values()) == 0
    else:
        assert metrics.successes == 2
        assert metrics.failures_by_class.get(case.error.error_class) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_every_provider() -> None:
    from orchestrator.integrations.anthropic_model import AnthropicModel
    from orchestrator.integrations.google_model import GoogleModel
    from orchestrator.integrations.huggingface_model import HuggingFaceModel
    from orchestrator.integrations.ollama_model import OllamaModel
    from orchestrator.integrations.openai_model import OpenAIModel

    url = f"http://127.0.0.1:{_free_port()}"
    models = [
        OpenAIModel("gpt-4", api_key="k", base_url=url + "/v1"),
        AnthropicModel("claude-3-opus", api_key="k", base_url=url),
        GoogleModel("gemini-2.0-flash", api_key="k", base_url=url),
        OllamaModel("llama3.2", base_url=url),
        HuggingFaceModel("tgi", endpoint_url=url),
    ]
    registry = ModelRegistry()
    for model in models:
        fast(model, max_retries=1)
        registry.register_model(model)
        with pytest.raises(ProviderConnectionError):
            await model.generate_response("hi")
        with pytest.raises(ProviderConnectionError):
            async for _ in model.stream_response("hi"):
                pass
        assert await model.health_check() is False
        metrics = registry.get_metrics(model.name)
        assert metrics.requests == 2
        assert metrics.failures_by_class.get("connection") == 2


async def test_retry_after_longer_than_deadline_fails_fast(harness: Harness) -> None:
    h = harness
    fast(h.model, deadline=1.0)
    h.server.add_fault(status=429, retry_after="30", times=-1)
    with pytest.raises(RateLimitError) as info:
        await h.model.generate_response("hi")
    assert info.value.retry_after == 30.0
    assert len(h.server.requests) == 1  # no pointless wait past the deadline


async def test_early_stop_of_a_stream_is_not_an_outcome(harness: Harness) -> None:
    h = harness
    registry = ModelRegistry()
    registry.register_model(h.model)
    stream = h.model.stream_response("hi")
    first = await stream.__anext__()
    assert first
    await stream.aclose()  # type: ignore[attr-defined]
    assert "Hello" in await h.model.generate_response("hi")
    assert registry.get_metrics(h.model.name).requests == 1
