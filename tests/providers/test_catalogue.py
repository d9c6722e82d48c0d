"""The built-in catalogue: known names filled in, unknown names unpriced."""

from __future__ import annotations

import json

import pytest

from orchestrator.core.model import CAPABILITY_NAMES, ModelCost
from orchestrator.integrations import catalogue
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.openai_model import OpenAIModel


def test_file_is_well_formed() -> None:
    raw = json.loads(catalogue.CATALOGUE_PATH.read_text())
    assert raw["prices_as_of"] == catalogue.prices_as_of() and raw["currency"] == "USD"
    for models in raw["providers"].values():
        for spec in models.values():
            assert set(spec["capabilities"]) <= set(CAPABILITY_NAMES)
            assert spec["context_length"] > 0
            for key in ("input_per_million", "output_per_million"):
                assert spec[key] is None or spec[key] >= 0


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("openai", n)
        for n in [
            "gpt-4",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-3.5-turbo",
        ]
    ]
    + [
        ("anthropic", n)
        for n in ["claude-3-opus", "claude-3-5-sonnet", "claude-3-5-haiku", "claude-sonnet-4"]
    ]
    + [
        ("google", n)
        for n in [
            "gemini-1.5-pro",
            "gemini-1.5-flash",
            "gemini-2.0-flash",
            "gemini-2.5-pro",
            "gemini-2.5-flash",
        ]
    ],
)
def test_required_models_are_priced(provider: str, name: str) -> None:
    entry = catalogue.lookup(provider, name)
    assert entry is not None
    cost = entry.model_cost()
    assert cost is not None and cost.input_per_million > 0 and cost.output_per_million > 0
    assert entry.tokens_per_second and entry.context_length >= 8192
    assert entry.model_capabilities().text_generation


def test_names_resolve_to_api_ids() -> None:
    assert catalogue.lookup("anthropic", "claude-3-opus").model_id == "claude-3-opus-20240229"  # type: ignore[union-attr]
    assert catalogue.lookup("anthropic", "Claude-Sonnet-4").model_id == "claude-sonnet-4-20250514"  # type: ignore[union-attr]
    assert catalogue.lookup("google", "models/gemini-2.0-flash") is not None
    assert catalogue.lookup("openai", "gpt-5-imaginary") is None


def test_adapters_use_it() -> None:
    claude = AnthropicModel("claude-3-opus", api_key="k")
    assert claude.cost == ModelCost(input_per_million=15, output_per_million=75)
    assert claude.capabilities.context_length == 200000 and claude.capabilities.max_tokens == 4096
    assert claude.default_max_tokens == 1024
    gemini = GoogleModel("gemini-2.5-pro", api_key="k")
    assert gemini.capabilities.reasoning and gemini.capabilities.context_length == 1048576
    unknown = OpenAIModel("some-finetune", api_key="k")
    assert unknown.cost is None and unknown.speed is None
    assert unknown.capabilities.context_length == 0
    own = OpenAIModel("some-finetune", api_key="k", cost=ModelCost(input_per_million=3))
    assert own.cost is not None and own.cost.input_per_million == 3
