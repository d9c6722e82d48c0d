"""Issue 12 item 5: the OpenAI-compatible (and Anthropic-compatible) adapters
work against llama.cpp, vLLM, LM Studio and Ollama's OpenAI endpoint by
default. Those label answers with their own model name or a GGUF path; the
label is checked only at the official endpoints, a mismatch elsewhere is a
debug log, and it never opens a circuit."""

from __future__ import annotations

import logging

import pytest

from orchestrator.errors import MalformedResponseError
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.ollama_model import OllamaModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.servers import AnthropicServer, OpenAIServer

pytestmark = pytest.mark.timeout(60)

GGUF = "/models/qwen2.5-7b-instruct-q4_k_m.gguf"


def test_labels_are_checked_only_where_the_server_echoes_them() -> None:
    assert OpenAIModel("gpt-4", api_key="sk-x" * 4).validate_model is True
    assert AnthropicModel("claude-3-opus", api_key="k" * 8).validate_model is True
    assert GoogleModel("gemini-1.5-flash", api_key="k" * 8).validate_model is True
    assert OllamaModel("llama3.2", base_url="http://127.0.0.1:11434").validate_model is True
    for url in ("http://localhost:8000/v1", "http://127.0.0.1:11434/v1", "https://gw.corp/v1"):
        assert OpenAIModel("qwen2.5-7b", base_url=url).validate_model is False
    assert AnthropicModel("claude-3-opus", base_url="http://127.0.0.1:8080").validate_model is False


async def test_a_llama_cpp_style_server_labelling_answers_with_a_gguf_path_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    with OpenAIServer(served_as={"qwen2.5-7b": GGUF}, models=(GGUF,)) as server:
        model = OpenAIModel("qwen2.5-7b", base_url=server.url)  # the README's example
        registry = ModelRegistry()
        registry.register_model(model)
        for _ in range(10):
            assert await model.generate_response("What is the capital of France?")
            assert "".join([c async for c in model.stream_response("And of Italy?")])
        assert model.metrics.successes == 20 and model.metrics.failures == 0
        assert "circuit opened" not in caplog.text
        assert any(r.levelno == logging.DEBUG and GGUF in r.getMessage() for r in caplog.records)
        assert (await registry.get_model_health("qwen2.5-7b")).state == "closed"


async def test_an_anthropic_compatible_local_server_works_by_default() -> None:
    with AnthropicServer() as server:
        model = AnthropicModel("claude-3-opus", api_key="local-key", base_url=server.url)
        server.add_fault(wrong_model=True, times=-1)
        assert await model.generate_response("Hello")


async def test_checking_labels_stays_available_on_request() -> None:
    with OpenAIServer(served_as={"qwen2.5-7b": GGUF}) as server:
        model = OpenAIModel("qwen2.5-7b", base_url=server.url, validate_model=True, max_retries=0)
        with pytest.raises(MalformedResponseError, match=r"qwen2\.5-7b-instruct"):
            await model.generate_response("Hello")


def test_validate_model_refuses_a_non_bool() -> None:
    with pytest.raises(TypeError, match="invalid validate_model: 'yes'"):
        OpenAIModel("gpt-4", base_url="http://localhost:8000/v1", validate_model="yes")  # type: ignore[arg-type]
