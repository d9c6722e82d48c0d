"""A model's own tokenizer checks the prompt before it is sent: a local
Hugging Face model (a tiny GPT-2 with a 64-token window, built here) whose
exact count says the prompt cannot fit is not run, and the request falls
back to a larger window over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.model import ModelCapabilities
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.lazy_huggingface_model import LazyHuggingFaceModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import OPENAI_KEY, fast
from tests.providers.test_huggingface import build_tiny_model
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(120)

#: 100 one-letter words: the up-front estimate (four characters a token) is
#: 50 tokens, within the tiny model's 64; its tokenizer counts over 100.
OVERSIZE = [{"role": "user", "content": "a " * 100}]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


async def test_a_local_tokenizer_count_sends_an_oversize_prompt_elsewhere(tiny_path: Path) -> None:
    tiny = HuggingFaceModel("tiny", model_path=str(tiny_path))
    assert tiny.capabilities.context_length == 64
    counted = await tiny.count_tokens(OVERSIZE)
    assert counted is not None and counted > 100  # the words and the chat template's
    assert await tiny.count_tokens([{"role": "user", "content": "say hi"}]) == 6
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        large = OpenAIModel(
            "large",
            api_key=OPENAI_KEY,
            base_url=server.url,
            capabilities=ModelCapabilities(chat=True, context_length=128_000),
        )
        registry = ModelRegistry()
        registry.register_model(tiny)
        registry.register_model(fast(large, max_retries=0))
        result = await registry.generate(OVERSIZE)
        assert [(a.model, a.outcome, a.sent) for a in result.attempts] == [
            ("tiny", "context_length", False),
            ("large", "ok", True),
        ]
        assert registry.get_metrics("tiny").requests == 0
        assert registry.get_metrics("tiny").pending == 0
        await registry.aclose()


async def test_no_tokenizer_no_count(tiny_path: Path) -> None:
    lazy = LazyHuggingFaceModel("lazy", model_path=str(tiny_path))
    assert await lazy.count_tokens(OVERSIZE) is None  # its weights are not loaded yet
    endpoint = HuggingFaceModel("tgi", endpoint_url="http://127.0.0.1:9")
    assert await endpoint.count_tokens(OVERSIZE) is None
    await endpoint.aclose()
