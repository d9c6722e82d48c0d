"""Routing aliases: a name for a group of models (``"cheap"``), checked in the
core's eligibility pass as a slot set; aliases and models share one namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import _core
from orchestrator.core.model import Model, ModelConstraints
from orchestrator.errors import DuplicateModelError, ModelNotFoundError, NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry, ModelSelector
from tests.conftest import ScriptedModel


@pytest.fixture
def registry() -> ModelRegistry:
    registry = ModelRegistry()
    for name in ("m1", "m2", "big"):
        registry.register_model(ScriptedModel(name))
    registry.register_model(ScriptedModel("gpt-4o", deployment="azure-eu", tags=["eu"]))
    registry.register_model(ScriptedModel("gpt-4o", deployment="openai"))
    registry.add_alias("cheap", ["m1", "m2", "gpt-4o@azure-eu"])
    return registry


def test_an_alias_restricts_every_entry_point_to_its_members(registry: ModelRegistry) -> None:
    members = {"m1", "m2", "gpt-4o@azure-eu"}
    for _ in range(30):
        assert registry.select_model(alias="cheap").name in members
    assert {s.model.name for s in registry.select_many(30, alias="cheap")} == members
    assert registry.select(alias="cheap", tags=["eu"]).model.name == "gpt-4o@azure-eu"
    names, scores = registry.scores(alias="cheap")
    assert {n for n, s in zip(names, scores) if s != float("-inf")} == members
    explanation = registry.explain_selection(alias="cheap")
    assert explanation.constraints.alias == "cheap"
    assert {c.name: c.reason for c in explanation.candidates if not c.eligible} == {
        "big": "not in cheap",
        "gpt-4o@openai": "not in cheap",
    }


async def test_generate_routes_through_the_alias(registry: ModelRegistry) -> None:
    for _ in range(5):
        assert (await registry.generate("hi", alias="cheap", exclude_models=["m1"])).model in {
            "m2",
            "gpt-4o@azure-eu",
        }


def test_a_logical_member_takes_in_later_deployments_and_members_drop_out(
    registry: ModelRegistry,
) -> None:
    registry.add_alias("four", ["gpt-4o", "big"])
    registry.register_model(ScriptedModel("gpt-4o", deployment="later"))
    assert registry.alias_members("four") == [
        "big",
        "gpt-4o@azure-eu",
        "gpt-4o@openai",
        "gpt-4o@later",
    ]
    registry.unregister_model("gpt-4o@azure-eu")
    registry.unregister_model("m1")
    assert registry.aliases() == {"cheap": ["m2"], "four": ["gpt-4o", "big"]}
    registry.unregister_model("gpt-4o@openai")
    registry.unregister_model("gpt-4o@later")
    assert registry.aliases()["four"] == ["big"]
    registry.register_model(ScriptedModel("m1"))  # dropped out for good
    assert registry.alias_members("cheap") == ["m2"]
    registry.unregister_model("m2")
    with pytest.raises(NoEligibleModelsError) as caught:
        registry.select_model(alias="cheap")
    assert set(caught.value.reasons.values()) == {"alias: not in cheap"}


def test_aliases_and_models_share_one_namespace(registry: ModelRegistry) -> None:
    for taken in ("m1", "gpt-4o", "gpt-4o@openai", "cheap"):
        with pytest.raises(DuplicateModelError, match="already"):
            registry.add_alias(taken, ["m2"])
    with pytest.raises(DuplicateModelError, match="routing alias"):
        registry.register_model(ScriptedModel("cheap"))
    with pytest.raises(DuplicateModelError, match="routing alias"):
        registry.register_model(ScriptedModel("cheap", deployment="x"))
    assert "cheap" not in registry and "cheap@x" not in registry
    assert registry.remove_alias("cheap") == ["m1", "m2", "gpt-4o@azure-eu"]
    registry.register_model(ScriptedModel("cheap"))
    with pytest.raises(KeyError, match="no routing alias"):
        registry.remove_alias("cheap")


def test_members_may_come_from_a_generator_that_calls_back(registry: ModelRegistry) -> None:
    def members() -> Iterator[str]:
        yield "m1"
        registry.register_model(ScriptedModel("late"))  # re-enters the registry
        yield "late"

    registry.add_alias("gen", members())
    assert registry.alias_members("gen") == ["m1", "late"]


def test_members_must_exist_and_be_models(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="'m3'"):
        registry.add_alias("x", ["m1", "m3"])
    with pytest.raises(ValueError, match="is an alias"):
        registry.add_alias("x", ["cheap"])
    with pytest.raises(ValueError, match="1 to 10000"):
        registry.add_alias("x", [])
    with pytest.raises(TypeError, match="not a string"):
        registry.add_alias("x", "m1")
    with pytest.raises(TypeError, match="invalid members"):
        registry.add_alias("x", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invalid members: 5"):
        registry.add_alias("x", ["m1", 5])  # type: ignore[list-item]
    assert "x" not in registry.aliases()
    with pytest.raises(ValueError, match='invalid alias: no routing alias or model named "nope"'):
        registry.select_model(alias="nope")
    with pytest.raises(ValueError, match="invalid alias"):
        registry.select_model(alias="gpt-4o@openai")  # one deployment is not a group


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (b"cheap", TypeError, "a str is required"),
        (["cheap"], TypeError, "a str is required"),
        (True, TypeError, "a str is required"),
        (3, TypeError, "a str is required"),
        ("", ValueError, "1 to 256 bytes"),
        ("ch\x07eap", ValueError, "control characters"),
        ("c" * 300, ValueError, "1 to 256 bytes"),
        ("\ud800", ValueError, "not valid Unicode"),
    ],
)
def test_bad_aliases_name_the_field(
    registry: ModelRegistry, value: object, error: type[Exception], text: str
) -> None:
    calls = [
        lambda: registry.select_model(alias=value),  # type: ignore[arg-type]
        lambda: registry.select(alias=value),  # type: ignore[arg-type]
        lambda: registry.select_many(2, alias=value),  # type: ignore[arg-type]
        lambda: registry.explain_selection(alias=value),  # type: ignore[arg-type]
        lambda: registry.scores(alias=value),  # type: ignore[arg-type]
        lambda: _core.Request(alias=value),
        lambda: registry.add_alias(value, ["m1"]),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(error, match="invalid alias") as caught:
            call()
        assert text in str(caught.value)
    assert registry.core.outstanding_tickets() == 0
    assert list(registry.aliases()) == ["cheap"]


class LastCandidate(ModelSelector):
    """A user-written selector: the last eligible model."""

    def choose(
        self, candidates: list[Model], constraints: ModelConstraints, registry: ModelRegistry
    ) -> Model:
        return candidates[-1]


@pytest.mark.parametrize("selector", ["contextual", "thompson", "cost", "user-written"])
def test_every_strategy_honours_alias_and_tags(selector: str) -> None:
    registry = (
        ModelRegistry(model_selector=LastCandidate())
        if selector == "user-written"
        else ModelRegistry(selection_strategy=selector)
    )
    for name in ("m1", "m2", "m3"):
        registry.register_model(ScriptedModel(name, tags=["eu"] if name != "m3" else []))
    registry.add_alias("pair", ["m2", "m3"])
    for _ in range(10):
        assert registry.select_model(alias="pair").name in {"m2", "m3"}
        assert registry.select_model(alias="pair", tags=["eu"]).name == "m2"
        assert registry.select(tags=["eu"], exclude_models=["m2"]).model.name == "m1"
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(alias="pair", tags=["eu"], exclude_models=["m2"])
