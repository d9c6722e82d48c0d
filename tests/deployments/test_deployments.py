"""Deployments: one logical model served by several deployments, each its own
slot (limits, health, breaker, statistics), known as ``"model@deployment"``."""

from __future__ import annotations

import pytest

from orchestrator import _core
from orchestrator.errors import (
    AmbiguousModelError,
    DuplicateModelError,
    ModelNotFoundError,
    NoEligibleModelsError,
    ServerError,
)
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel


def gpt4o(deployment: str, **kwargs: object) -> ScriptedModel:
    return ScriptedModel("gpt-4o", deployment=deployment, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def registry() -> ModelRegistry:
    registry = ModelRegistry()
    registry.register_model(gpt4o("openai"))
    registry.register_model(gpt4o("azure-eu"))
    registry.register_model(ScriptedModel("small"))
    return registry


def test_a_deployment_is_known_by_its_qualified_name(registry: ModelRegistry) -> None:
    model = registry.get_model("gpt-4o@azure-eu")
    assert (model.name, model.model_name, model.deployment) == (
        "gpt-4o@azure-eu",
        "gpt-4o",
        "azure-eu",
    )
    assert [m.name for m in registry] == ["gpt-4o@openai", "gpt-4o@azure-eu", "small"]
    assert registry.statistics()["name"] == ["gpt-4o@openai", "gpt-4o@azure-eu", "small"]
    assert registry.get_model("small").model_name == "small"
    assert registry.get_model("small").deployment is None


def test_a_logical_name_finds_its_only_deployment_and_names_several(
    registry: ModelRegistry,
) -> None:
    with pytest.raises(AmbiguousModelError) as caught:
        registry.get_model("gpt-4o")
    assert caught.value.deployments == ["gpt-4o@openai", "gpt-4o@azure-eu"]
    assert "gpt-4o@openai" in str(caught.value)
    with pytest.raises(AmbiguousModelError):
        registry.unregister_model("gpt-4o")
    registry.unregister_model("gpt-4o@openai")
    assert registry.get_model("gpt-4o").name == "gpt-4o@azure-eu"
    assert [m.name for m in registry.deployments("gpt-4o")] == ["gpt-4o@azure-eu"]
    with pytest.raises(ModelNotFoundError):
        registry.get_model("gpt-5")


def test_the_same_qualified_name_twice_is_the_duplicate_error(registry: ModelRegistry) -> None:
    with pytest.raises(DuplicateModelError, match="gpt-4o@openai"):
        registry.register_model(gpt4o("openai"))
    registry.register_model(ScriptedModel("gpt-4o"))  # the logical name itself: a third deployment
    assert len(registry.deployments("gpt-4o")) == 3


def test_excluding_a_logical_name_excludes_every_deployment(registry: ModelRegistry) -> None:
    for _ in range(10):
        assert registry.select_model(exclude_models=["gpt-4o"]).name == "small"
        assert registry.select_model(exclude_models=["gpt-4o@openai", "small"]).name == (
            "gpt-4o@azure-eu"
        )
    with pytest.raises(NoEligibleModelsError) as caught:
        registry.select_model(exclude_models=["gpt-4o", "small"])
    assert set(caught.value.reasons.values()) == {"exclude_models: excluded by exclude_models"}


def test_a_logical_name_works_as_an_alias_of_its_deployments(registry: ModelRegistry) -> None:
    picked = {registry.select_model(alias="gpt-4o").name for _ in range(20)}
    assert picked == {"gpt-4o@openai", "gpt-4o@azure-eu"}
    with pytest.raises(NoEligibleModelsError) as caught:
        registry.select_model(alias="gpt-4o", exclude_models=["gpt-4o"])
    assert caught.value.reasons["small"] == "alias: not a deployment of gpt-4o"


def test_each_deployment_has_its_own_breaker_and_statistics(registry: ModelRegistry) -> None:
    for _ in range(5):
        registry.report_outcome("gpt-4o@openai", False, 0.1, error_class="server_error")
    registry.report_outcome("gpt-4o@azure-eu", True, 0.1)
    assert registry.get_metrics("gpt-4o@openai").failures == 5
    assert registry.get_metrics("gpt-4o@azure-eu").successes == 1
    for _ in range(10):
        assert registry.select_model(alias="gpt-4o").name == "gpt-4o@azure-eu"


async def test_failover_tries_the_other_deployment_before_other_models() -> None:
    # Cost-based with equal prices: a tie goes to the lowest slot, so without
    # the sibling rule "small" (slot 1) would be tried before slot 2.
    registry = ModelRegistry(selection_strategy="cost")
    registry.register_model(gpt4o("openai", fail=ServerError("down", status_code=500)))
    registry.register_model(ScriptedModel("small"))
    registry.register_model(gpt4o("azure-eu"))
    result = await registry.generate("hi")
    assert [a.model for a in result.attempts] == ["gpt-4o@openai", "gpt-4o@azure-eu"]
    assert result.model == "gpt-4o@azure-eu"


async def test_failover_moves_to_other_models_when_no_deployment_is_left() -> None:
    registry = ModelRegistry(selection_strategy="cost")
    for deployment in ("a", "b"):
        registry.register_model(gpt4o(deployment, fail=ServerError("down", status_code=500)))
    registry.register_model(ScriptedModel("small"))
    result = await registry.generate("hi")
    assert [a.model for a in result.attempts] == ["gpt-4o@a", "gpt-4o@b", "small"]
    assert result.model == "small"


async def test_after_a_deployment_fails_its_sibling_comes_first_within_the_alias() -> None:
    registry = ModelRegistry(selection_strategy="cost")
    failing = gpt4o("a", fail=ServerError("down", status_code=500))
    registry.register_model(failing)
    registry.register_model(ScriptedModel("other"))
    registry.register_model(gpt4o("b"))
    registry.register_model(gpt4o("c"))
    registry.add_alias("pool", ["gpt-4o@a", "gpt-4o@c", "other"])
    result = await registry.generate("hi", alias="pool")
    assert [a.model for a in result.attempts] == ["gpt-4o@a", "gpt-4o@c"]
    assert result.model == "gpt-4o@c"  # the sibling in the alias, before "other"


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (b"eu", TypeError, "a str is required"),
        (7, TypeError, "a str is required"),
        (True, TypeError, "a str is required"),
        ("", ValueError, "1 to 256 bytes"),
        ("a\nb", ValueError, "control characters"),
        ("x" * 257, ValueError, "1 to 256 bytes"),
        ("a@b", ValueError, "without '@'"),
    ],
)
def test_bad_deployment_ids_name_the_field(
    value: object, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match="invalid deployment") as caught:
        ScriptedModel("m", deployment=value)  # type: ignore[arg-type]
    assert text in str(caught.value)
    with pytest.raises(error, match="invalid deployment"):
        _core.check_deployment(value)
    with pytest.raises(error, match="invalid deployment"):
        _core.SelectionCore().register(object(), "m", "p", [], deployment=value)
