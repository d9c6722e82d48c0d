"""Tags: ``Model(tags=...)`` labels a model, ``select_model(tags=...)`` requires
every listed tag, and the core keeps them as one bit per tag per slot."""

from __future__ import annotations

import pytest

from orchestrator import _core
from orchestrator.core.model import ModelConstraints
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel


def tagged(name: str, *tags: str) -> ScriptedModel:
    return ScriptedModel(name, tags=tags)


@pytest.fixture
def registry() -> ModelRegistry:
    registry = ModelRegistry()
    registry.register_model(tagged("eu-strict", "eu", "zero-retention"))
    registry.register_model(tagged("eu-plain", "eu"))
    registry.register_model(tagged("us", "us"))
    return registry


def test_a_request_gets_only_models_with_every_tag(registry: ModelRegistry) -> None:
    for _ in range(20):
        assert registry.select_model(tags=["eu"]).name in {"eu-strict", "eu-plain"}
        assert registry.select_model(tags=["eu", "zero-retention"]).name == "eu-strict"
        assert registry.select(tags=["us"]).model.name == "us"
    picked = {s.model.name for s in registry.select_many(30, tags=["eu"])}
    assert picked == {"eu-strict", "eu-plain"}
    names, scores = registry.scores(tags=["us"])
    assert [n for n, s in zip(names, scores) if s != float("-inf")] == ["us"]


def test_the_reasons_name_the_missing_tags(registry: ModelRegistry) -> None:
    with pytest.raises(NoEligibleModelsError) as caught:
        registry.select_model(tags=["us", "zero-retention"])
    assert caught.value.reasons == {
        "eu-strict": "tags: missing us",
        "eu-plain": "tags: missing zero-retention, us",
        "us": "tags: missing zero-retention",
    }
    explanation = registry.explain_selection(tags=["asia"])
    assert explanation.chosen is None
    assert {c.reason for c in explanation.candidates} == {"missing asia"}
    assert explanation.constraints.tags == ["asia"]


def test_tags_go_through_constraints_and_failover(registry: ModelRegistry) -> None:
    constraints = ModelConstraints(tags=["zero-retention"])
    assert registry.select_model(constraints=constraints).name == "eu-strict"
    with pytest.raises(TypeError, match="either constraints or"):
        registry.select_model(constraints=constraints, tags=["eu"])


async def test_generate_requires_the_tags(registry: ModelRegistry) -> None:
    for _ in range(5):
        result = await registry.generate("hi", tags=["us"])
        assert result.model == "us"


def test_a_model_keeps_its_checked_tags_without_repeats() -> None:
    assert ScriptedModel("m").tags == ()
    assert ScriptedModel("m", tags=("eu", "us", "eu")).tags == ("eu", "us")


class LyingStr(str):
    """A str subclass that hashes and compares as another value."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ("eu", TypeError, "not a string"),
        (b"eu", TypeError, "list is required"),
        ([b"eu"], TypeError, "a str is required"),
        ([LyingStr("eu")], TypeError, "got LyingStr"),
        ([True], TypeError, "a str is required"),
        ([1], TypeError, "a str is required"),
        ([""], ValueError, "1 to 256 bytes"),
        (["eu\x00"], ValueError, "control characters"),
        (["a" * 300], ValueError, "1 to 256 bytes"),
        (["EU"], ValueError, "a tag is 1 to 64"),
        (["-eu"], ValueError, "a tag is 1 to 64"),
        (["x" * 65], ValueError, "a tag is 1 to 64"),
        ([f"t{i}" for i in range(65)], ValueError, "at most 64"),
        (True, TypeError, "list is required"),
        (7, TypeError, "list is required"),
    ],
)
def test_bad_tags_name_the_field(
    registry: ModelRegistry, value: object, error: type[Exception], text: str
) -> None:
    entry_points = [
        lambda: registry.select_model(tags=value),
        lambda: registry.select(tags=value),
        lambda: registry.select_many(2, tags=value),
        lambda: registry.explain_selection(tags=value),
        lambda: registry.scores(tags=value),
        lambda: _core.Request(tags=value),
        lambda: _core.check_tags(value),
        lambda: ScriptedModel("x", tags=value),  # type: ignore[arg-type]
    ]
    for call in entry_points:
        with pytest.raises(error, match="invalid tags") as caught:
            call()
        assert text in str(caught.value)
    assert registry.core.outstanding_tickets() == 0


def test_the_65th_distinct_tag_of_a_registry_is_refused_and_bits_are_freed() -> None:
    registry = ModelRegistry()
    for i in range(_core.MAX_TAGS):
        registry.register_model(tagged(f"m{i}", f"t{i}"))
    with pytest.raises(ValueError, match="at most 64 distinct tags"):
        registry.register_model(tagged("one-too-many", "t-new"))
    assert "one-too-many" not in registry
    registry.register_model(tagged("shares-a-tag", "t3"))  # no new bit needed
    registry.unregister_model("m0")
    registry.register_model(tagged("new", "t-new"))  # m0's bit was freed
    assert registry.select_model(tags=["t-new"]).name == "new"
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(tags=["t0"])


def test_declarations_changed_moves_the_tags(registry: ModelRegistry) -> None:
    model = registry.get_model("us")
    model.tags = ("us", "zero-retention")
    model.declarations_changed()
    assert registry.select_model(tags=["us", "zero-retention"]).name == "us"
    model.tags = ("asia",)
    model.declarations_changed()
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(tags=["us"])
    assert registry.select_model(tags=["asia"]).name == "us"
