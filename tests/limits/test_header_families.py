"""Each header family that issue 14 names tightens selection, through a real
loopback provider server: the token allowance of ``x-ratelimit-remaining-tokens``
(OpenAI) and of ``anthropic-ratelimit-tokens-*`` and its input/output split
(Anthropic) refuses a request larger than what is left, and a 429's
``Retry-After`` keeps the model out of selection until it has passed.
(The request-count headers are covered in ``test_headers.py``.)"""

from __future__ import annotations

import pytest

from orchestrator.errors import NoEligibleModelsError, RateLimitError
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import ANTHROPIC_KEY, OPENAI_KEY, fast
from tests.servers import AnthropicServer, OpenAIServer

pytestmark = pytest.mark.timeout(60)

#: Tokens the provider reports left; a request of 200 does not fit, one of 100 does.
TOKENS_LEFT = 150


async def assert_token_cap_holds(registry: ModelRegistry, name: str) -> None:
    """After one call reported ``TOKENS_LEFT`` tokens left, a 200-token request
    is refused naming the allowance, and a 100-token one is admitted."""
    await registry.select_model(input_tokens=10, output_tokens=10).generate_response("Hello")
    assert registry.rate_limits(name)["provider_tokens"][0] == TOKENS_LEFT
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model(input_tokens=100, output_tokens=100)
    assert info.value.reasons[name].startswith(
        f"rate_limit: the provider reports {TOKENS_LEFT} tokens left (the request needs 200)"
    )
    assert info.value.retry_in is not None and 0 < info.value.retry_in <= 30
    assert registry.select_model(input_tokens=50, output_tokens=50).name == name


async def test_openai_remaining_tokens_refuse_a_request_that_does_not_fit() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = ModelRegistry()
        registry.register_model(fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url)))
        server.extra_headers = server.rate_limit_headers(
            remaining_tokens=TOKENS_LEFT, tokens_reset=30
        )
        await assert_token_cap_holds(registry, "gpt-4")


@pytest.mark.parametrize(
    "family", ["anthropic-ratelimit-tokens", "anthropic-ratelimit-input-tokens"]
)
async def test_anthropic_token_allowances_refuse_a_request_that_does_not_fit(family: str) -> None:
    with AnthropicServer(api_key=ANTHROPIC_KEY) as server:
        model = AnthropicModel("claude-3-5-haiku", api_key=ANTHROPIC_KEY, base_url=server.url)
        registry = ModelRegistry()
        registry.register_model(fast(model))
        reset = server.rate_limit_reset(30)
        server.extra_headers = {
            f"{family}-remaining": str(TOKENS_LEFT),
            f"{family}-reset": reset,
            "anthropic-ratelimit-output-tokens-remaining": "90000",
            "anthropic-ratelimit-output-tokens-reset": reset,
        }
        await assert_token_cap_holds(registry, model.name)


async def test_a_429_retry_after_keeps_the_model_out_until_it_passes() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        registry = ModelRegistry()
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=0)
        registry.register_model(model)
        server.add_fault(status=429, retry_after="30")
        with pytest.raises(RateLimitError):
            await registry.select_model().generate_response("Hello")
        with pytest.raises(NoEligibleModelsError) as info:
            registry.select_model()
        assert "Retry-After" in info.value.reasons["gpt-4"]
        assert info.value.retry_in is not None and 25 < info.value.retry_in <= 30
        assert len(server.requests) == 1, "nothing else was sent"
