"""Attacks on a contextual registry's saved router state
(``router_state``/``load_router_state``): states of other settings, damaged
bytes, and forged states whose checksum is valid (XXH3-64 is no signature:
anyone can recompute it), each refused with a ``state`` error that changes
nothing, or loaded with every prediction still a probability."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import xxhash

from orchestrator.core.model import ModelCost
from orchestrator.errors import DuplicateModelError
from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)

#: magic, format version, featurizer version, 4 featurizer bytes, embedding_dim.
HEADER_BYTES = 24


def contextual(**options: object) -> ModelRegistry:
    selector = ContextualSelector(**{"hash_bits": 10, **options})  # type: ignore[arg-type]
    registry = ModelRegistry(model_selector=selector)
    for name, price in {"cheap": 5.0, "strong": 50.0}.items():
        cost = ModelCost(input_per_million=price, output_per_million=price)
        registry.register_model(ScriptedModel(name, cost=cost))
    return registry


@dataclass
class ModelEntry:
    name: bytes
    has_cost: int
    cost: float
    observations: int


@dataclass
class ForgedState:
    """A router state taken apart (the layout of ``contextual/persist.rs``),
    to be changed and put together with a valid checksum."""

    header: bytes
    models: list[ModelEntry]
    weights: np.ndarray

    @classmethod
    def parse(cls, state: bytes) -> ForgedState:
        offset = HEADER_BYTES
        (count,) = struct.unpack_from("<I", state, offset)
        offset += 4
        models = []
        for _ in range(count):
            (length,) = struct.unpack_from("<I", state, offset)
            name = state[offset + 4 : offset + 4 + length]
            offset += 4 + length
            has_cost = state[offset]
            cost, observations = struct.unpack_from("<dQ", state, offset + 1)
            offset += 17
            models.append(ModelEntry(name, has_cost, cost, observations))
        weights = np.frombuffer(state[offset:-8], dtype="<f4").copy()
        return cls(state[:HEADER_BYTES], models, weights)

    def build(self) -> bytes:
        out = bytearray(self.header)
        out += struct.pack("<I", len(self.models))
        for m in self.models:
            out += struct.pack("<I", len(m.name)) + m.name + bytes([m.has_cost])
            out += struct.pack("<dQ", m.cost, m.observations)
        out += self.weights.astype("<f4").tobytes()
        out += struct.pack("<Q", xxhash.xxh3_64_intdigest(bytes(out)))
        return bytes(out)

    @property
    def means(self) -> np.ndarray:
        return self.weights[: len(self.weights) // 2]

    @property
    def variances(self) -> np.ndarray:
        return self.weights[len(self.weights) // 2 :]


Change = Callable[[ForgedState], None]


def forged() -> ForgedState:
    state = contextual().router_state()
    parsed = ForgedState.parse(state)
    assert parsed.build() == state  # the forger's layout is the real one
    return parsed


def test_a_tiny_state_of_wider_settings_cannot_replace_the_registrys_featurizer() -> None:
    """Reproduction (fixed): the 36-byte state of a registry made with
    ``ContextualSelector(hash_bits=24, ...)`` and no models loaded into a
    ``hash_bits=10`` registry of 3 models: its featurizer silently became
    2^24 buckets (``model_selector`` still said 10), RSS went 82 MB -> 600 MB,
    1.2 GB after one more register, and router_state() grew to 400 MB. Under
    shared learning, workers would then add sums of different features."""
    wide = ModelRegistry(model_selector=ContextualSelector(hash_bits=24, char_ngrams=6))
    registry = contextual()
    before = registry.router_state()
    with pytest.raises(ValueError, match="invalid state: its featurizer settings"):
        registry.load_router_state(wide.router_state())
    assert registry.router_state() == before


@pytest.mark.parametrize(
    "selector",
    [{"hash_bits": 12}, {"word_ngrams": 1}, {"char_ngrams": 3}, {"embedding_dim": 4}],
)
def test_a_state_of_other_featurizer_settings_is_refused(selector: dict[str, int]) -> None:
    registry = contextual()
    before = registry.router_state()
    with pytest.raises(ValueError, match="featurizer settings"):
        registry.load_router_state(contextual(**selector).router_state())
    assert registry.router_state() == before


@pytest.mark.parametrize("value", ["state", None, 0, bytearray(b"ORCROUTE"), memoryview(b"x")])
def test_a_state_that_is_not_bytes_is_named(value: object) -> None:
    """Reproduction (fixed): ``load_router_state("abc")`` raised ``TypeError:
    'str' object is not an instance of 'bytes'``, naming no field."""
    with pytest.raises(TypeError, match="invalid state"):
        contextual().load_router_state(value)  # type: ignore[arg-type]


def test_every_truncation_is_refused_and_changes_nothing() -> None:
    state = contextual().router_state()
    registry = contextual()
    before = registry.router_state()
    for length in [0, 7, 8, 12, 23, 24, 27, 40, len(state) // 2, len(state) - 1]:
        with pytest.raises(ValueError, match="invalid state"):
            registry.load_router_state(state[:length])
    with pytest.raises(ValueError, match="invalid state"):
        registry.load_router_state(state + b"\0")
    assert registry.router_state() == before


def priced_at(cost: float) -> Change:
    """A change giving the first model of the state a price of ``cost``."""

    def change(state: ForgedState) -> None:
        state.models[0].has_cost, state.models[0].cost = 1, cost

    return change


def renamed(model: int, name: bytes) -> Change:
    def change(state: ForgedState) -> None:
        state.models[model].name = name

    return change


def weight(which: str, index: int, value: float) -> Change:
    def change(state: ForgedState) -> None:
        getattr(state, which)[index] = value

    return change


IMPOSSIBLE: dict[str, tuple[Change, type[Exception], str]] = {
    "cost-nan": (priced_at(float("nan")), ValueError, "invalid cost: NaN"),
    "cost-negative": (priced_at(-5.0), ValueError, "invalid cost"),
    "cost-inf": (priced_at(float("inf")), ValueError, "invalid cost"),
    "duplicate-name": (renamed(1, b"cheap"), DuplicateModelError, "cheap"),
    "empty-name": (renamed(0, b""), ValueError, "invalid name"),
    "bad-utf8": (renamed(0, b"\xff"), ValueError, "not UTF-8"),
    "mean-nan": (weight("means", 0, float("nan")), ValueError, "non-finite"),
    "variance-inf": (weight("variances", 3, float("inf")), ValueError, "non-finite"),
    "variance-zero": (weight("variances", 3, 0.0), ValueError, "≤ 0"),
    "variance-negative": (weight("variances", 3, -1.0), ValueError, "≤ 0"),
}


@pytest.mark.parametrize(("change", "error", "message"), IMPOSSIBLE.values(), ids=IMPOSSIBLE)
def test_a_forged_state_with_a_valid_checksum_is_refused_when_impossible(
    change: Change, error: type[Exception], message: str
) -> None:
    state = forged()
    change(state)
    registry = contextual()
    before = registry.router_state()
    with pytest.raises(error, match=message):
        registry.load_router_state(state.build())
    assert registry.router_state() == before


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.means.__setitem__(slice(None), 3e38),
        lambda f: f.means.__setitem__(slice(None, None, 2), -3e38),
        lambda f: f.variances.__setitem__(slice(None), 1e-45),
        lambda f: setattr(f.models[0], "observations", 2**64 - 1),
    ],
    ids=["means-huge", "means-alternating", "variances-subnormal", "observations-max"],
)
def test_a_forged_but_finite_state_keeps_every_prediction_a_probability(change: Change) -> None:
    state = forged()
    change(state)
    registry = contextual(exploration="greedy")
    registry.load_router_state(state.build())
    explanation = registry.explain_selection(prompt="what is 2+2")
    for candidate in explanation.candidates:
        assert candidate.estimate is not None and 0.0 <= candidate.estimate <= 1.0
        assert candidate.uncertainty is not None and 0.0 <= candidate.uncertainty <= 0.5
    assert np.isfinite(registry.scores(prompt="what is 2+2")[1]).all()
    assert registry.select_model(prompt="what is 2+2").name == explanation.chosen


def test_forged_variances_above_the_prior_are_refused() -> None:
    """Reproduction (fixed): a state whose checksum is valid and whose
    variances are all 3e38 (finite, > 0) loaded, and the explanation then
    reported ``uncertainty`` 8.6e18 for a quality in [0, 1]. Learning only
    shrinks a variance from the prior's, so the loader refuses anything
    above it and the registry keeps its state."""
    state = forged()
    state.variances[:] = 3e38
    registry = contextual(exploration="greedy")
    before = registry.router_state()
    with pytest.raises(ValueError, match="above the prior"):
        registry.load_router_state(state.build())
    assert registry.router_state() == before


def test_an_uncertainty_is_never_above_one_half() -> None:
    """The delta method's standard deviation grows with the prompt's features;
    a quality in [0, 1] has none above 0.5, and the explanation says so."""
    registry = contextual(exploration="greedy")
    prompt = " ".join(f"word{i}" for i in range(2_000))
    for candidate in registry.explain_selection(prompt=prompt).candidates:
        assert candidate.uncertainty is not None and candidate.uncertainty <= 0.5
