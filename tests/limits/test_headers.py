"""Limits learned from provider headers: OpenAI's ``x-ratelimit-*`` and
Anthropic's ``anthropic-ratelimit-*`` are read from every response (errors and
streams included) and tighten the model's window until the reset, which is
bounded by the window, whatever the header says."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import _core
from orchestrator.errors import NoEligibleModelsError, RateLimitError
from orchestrator.integrations._http import rate_limits_of
from orchestrator.integrations._http._ratelimit import MAX_REMAINING, parse_count, parse_reset
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import ANTHROPIC_KEY, OPENAI_KEY, fast
from tests.servers import AnthropicServer, OpenAIServer
from tests.servers._base import LoopbackServer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("", None),
        ("soon", None),
        ("1x", None),
        ("nan", None),
        ("inf", None),
        ("1e400", None),
    ],
)
def test_reset_values_are_read_or_ignored(value: str, seconds: float | None) -> None:
    assert parse_reset(value) == (None if seconds is None else pytest.approx(seconds))


def test_an_rfc3339_reset_is_seconds_from_now() -> None:
    assert parse_reset("2026-12-01T00:01:00Z", now=1_796_083_200.0) == 60.0
    assert parse_reset("2026-12-01T00:01:00+00:00", now=1_796_083_260.0) == 0.0


@pytest.mark.parametrize(
    ("value", "count"),
    [("59", 59), ("0", 0), ("-1", None), ("1.5", None), ("x", None), ("9" * 40, MAX_REMAINING)],
)
def test_counts_are_read_clamped_or_ignored(value: str, count: int | None) -> None:
    assert parse_count(value) == count


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ]
        ),
        st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30),
    )
)
def test_any_header_values_give_counts_and_finite_resets_or_nothing(
    headers: dict[str, str],
) -> None:
    reported = rate_limits_of(httpx.Headers(headers))
    for count in (reported.remaining_requests, reported.remaining_tokens):
        assert count is None or 0 <= count <= MAX_REMAINING
    for reset in (reported.requests_reset, reported.tokens_reset):
        assert reset is None or 0.0 <= reset < float("inf")
    # What the core accepts: an outcome carrying any of it is valid.
    _core.Outcome(
        True,
        0.1,
        remaining_requests=reported.remaining_requests,
        requests_reset=reported.requests_reset,
        remaining_tokens=reported.remaining_tokens,
        tokens_reset=reported.tokens_reset,
    )


def test_anthropic_splits_are_folded_conservatively() -> None:
    reported = rate_limits_of(
        httpx.Headers(
            {
                "anthropic-ratelimit-tokens-remaining": "900",
                "anthropic-ratelimit-tokens-reset": "2099-01-01T00:00:00Z",
                "anthropic-ratelimit-input-tokens-remaining": "400",
                "anthropic-ratelimit-output-tokens-remaining": "700",
            }
        )
    )
    assert reported.remaining_tokens == 400
    assert reported.remaining_requests is None


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
async def test_headers_tighten_the_window_until_the_reset(provider: str, stream: bool) -> None:
    server: LoopbackServer = (
        OpenAIServer(api_key=OPENAI_KEY)
        if provider == "openai"
        else AnthropicServer(api_key=ANTHROPIC_KEY)
    )
    with server:
        model = (
            OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url)
            if provider == "openai"
            else AnthropicModel("claude-3-5-haiku", api_key=ANTHROPIC_KEY, base_url=server.url)
        )
        registry = ModelRegistry()
        registry.register_model(fast(model))
        server.extra_headers = server.rate_limit_headers(
            remaining_requests=0, requests_reset=30, remaining_tokens=5000, tokens_reset=99999
        )
        chosen = registry.select_model()
        if stream:
            async for _ in chosen.stream_response("Hello"):
                pass
        else:
            await chosen.generate_response("Hello")
        limits = registry.rate_limits(model.name)
        remaining, resets_in = limits["provider_requests"]
        assert remaining == 0 and 25 < resets_in <= 30
        tokens, tokens_reset = limits["provider_tokens"]
        assert tokens == 5000 and tokens_reset <= 60.0, "a reset beyond the window is capped"
        with pytest.raises(NoEligibleModelsError) as info:
            registry.select_model()
        assert info.value.reasons[model.name].startswith(
            "rate_limit: the provider reports 0 requests left"
        )
        assert 25 < (info.value.retry_in or 0) <= 30


async def test_a_429_reports_its_headers_too() -> None:
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url), max_retries=0)
        registry = ModelRegistry()
        registry.register_model(model)
        server.add_fault(
            status=429, headers=server.rate_limit_headers(remaining_tokens=0, tokens_reset=5)
        )
        chosen = registry.select_model()
        with pytest.raises(RateLimitError):
            await chosen.generate_response("Hello")
        assert registry.rate_limits("gpt-4")["provider_tokens"][0] == 0


async def test_requests_in_flight_are_taken_from_the_reported_remaining() -> None:
    """The provider's count does not know about requests already selected
    and not yet answered, so they are subtracted: the learned cap never lets
    more through than the provider allows."""
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        model = fast(OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=server.url))
        registry = ModelRegistry()
        registry.register_model(model)
        server.extra_headers = server.rate_limit_headers(remaining_requests=3)
        in_flight = [registry.select(), registry.select()]
        await registry.select_model().generate_response("Hello")
        assert registry.rate_limits("gpt-4")["provider_requests"][0] == 1
        registry.select()
        with pytest.raises(NoEligibleModelsError):
            registry.select()
        for selection in in_flight:
            registry.cancel(selection)
