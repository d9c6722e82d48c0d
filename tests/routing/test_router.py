"""The Python router API over the real core: decisions, online and delayed
learning, calibration on a planted rule, explanations, state, and strict
validation of every input."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import _core
from orchestrator.routing import (
    DEFAULT_WILLINGNESS_TO_PAY,
    FEATURIZER_VERSION,
    ContextualRouter,
    ContextualSelector,
)
from orchestrator.routing.synthetic import prompt_mix

pytestmark = pytest.mark.timeout(60)

COSTS = {"small": 0.0002, "coder": 0.002, "large": 0.02}


@pytest.fixture(scope="module")
def calibrated() -> ContextualRouter:
    """A greedy router calibrated on 2,000 rows of the synthetic prompt mix."""
    mix = prompt_mix(2000, seed=3)
    router = ContextualRouter(
        list(COSTS), selector=ContextualSelector(exploration="greedy", hash_bits=14)
    )
    router.calibrate(mix.prompts, mix.qualities, costs=mix.costs)
    return router


def test_constants_are_exported() -> None:
    assert FEATURIZER_VERSION == _core.FEATURIZER_VERSION == 1
    assert DEFAULT_WILLINGNESS_TO_PAY == 1.0
    assert _core.STRUCTURE_FEATURES[0] == "bias"


def test_calibration_finds_the_planted_rule(calibrated: ContextualRouter) -> None:
    wtp = 0.2  # +0.1 quality is worth $0.02: large pays only where it is much better
    math = "Ana has 12 coins and buys 3 more, then shares them among 5 friends. How many?"
    chat = "Hey! What do you think about music? Just chatting."
    code = "Write a Go function to parse a CSV file.\n```\n```"
    assert calibrated.decide(math, willingness_to_pay=wtp).model == "large"
    assert calibrated.decide(chat, willingness_to_pay=wtp).model == "small"
    assert calibrated.decide(code, willingness_to_pay=wtp).model == "coder"
    # Restricting the eligible models is honoured.
    assert calibrated.decide(math, willingness_to_pay=wtp, eligible=["small", "coder"]).model in {
        "small",
        "coder",
    }
    predictions = {p.model: p for p in calibrated.predict(math)}
    assert predictions["large"].quality > 0.75 > 0.35 > predictions["small"].quality
    assert all(0.0 <= p.uncertainty < 0.5 for p in predictions.values())


def test_explanation_names_the_features_that_moved_it(calibrated: ContextualRouter) -> None:
    explanation = {e.model: e for e in calibrated.explain("Write a Rust function to retry", top=4)}
    coder = explanation["coder"]
    assert coder.expected_cost == COSTS["coder"]
    assert coder.observations == 2000
    assert len(coder.top_features) == 4
    magnitudes = [abs(f.logit) for f in coder.top_features]
    assert magnitudes == sorted(magnitudes, reverse=True)
    small = explanation["small"]
    assert any("function" in f.feature or "write" in f.feature.lower() for f in small.top_features)


def test_chat_messages_and_text_route_the_same(calibrated: ContextualRouter) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert calibrated.featurize(messages) == calibrated.featurize("Be brief.\nHi")
    with pytest.raises(TypeError, match="content"):
        calibrated.featurize([{"role": "user"}])
    with pytest.raises(TypeError, match="prompt"):
        calibrated.featurize(42)  # type: ignore[arg-type]


def test_delayed_feedback_learns_and_ids_are_single_use() -> None:
    router = ContextualRouter(
        ["a", "b"], costs={"a": 0.0, "b": 0.0}, selector=ContextualSelector(max_pending=2)
    )
    before = router.predict("is this good")[0].quality
    decision = router.decide("is this good", eligible=["a"])
    assert decision.model == "a" and decision.request_id is not None
    assert router.pending == 1
    assert router.report_quality(decision.request_id, 1.0) == "a"
    assert router.predict("is this good")[0].quality > before
    assert router.pending == 0
    with pytest.raises(ValueError, match="request_id"):
        router.report_quality(decision.request_id, 1.0)
    with pytest.raises(ValueError, match="request_id"):
        router.report_quality(123456, 1.0)
    ids = [router.decide("x").request_id for _ in range(3)]
    # Capacity 2: the oldest decision was dropped to make room.
    with pytest.raises(ValueError, match="dropped"):
        router.report_quality(ids[0], 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quality"):
        router.report_quality(ids[2], float("nan"))  # type: ignore[arg-type]
    unrecorded = router.decide("x", record=False)
    assert unrecorded.request_id is None


def test_learning_from_reported_outcomes_moves_predictions() -> None:
    router = ContextualRouter(["a", "b"], costs={"a": 0.001, "b": 0.01})
    for _ in range(30):
        router.learn("prove the theorem", "a", 0.0)
        router.learn("prove the theorem", "b", 1.0)
    a, b = router.predict("prove the theorem")
    assert a.quality < 0.2 and b.quality > 0.8
    assert router.decide("prove the theorem", willingness_to_pay=1.0).model == "b"
    assert router.decide("prove the theorem", willingness_to_pay=1e-6).model == "a"


def test_state_round_trips_and_foreign_state_is_refused(
    calibrated: ContextualRouter, tmp_path: Path
) -> None:
    path = tmp_path / "router.bin"
    calibrated.save(path)
    loaded = ContextualRouter.load(path, ContextualSelector(exploration="greedy"))
    assert loaded.models == calibrated.models
    prompt = "Translate into Deutsch: Where is the station?"
    assert loaded.predict(prompt) == calibrated.predict(prompt)
    state = bytearray(path.read_bytes())
    state[12] = 7  # the featurizer version
    with pytest.raises(ValueError, match="featurizer version 7"):
        ContextualRouter.from_bytes(bytes(state))
    with pytest.raises(ValueError, match="truncated"):
        ContextualRouter.from_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="magic"):
        ContextualRouter.from_bytes(b"pickle? no")


def test_caller_embedding_is_used_and_validated() -> None:
    router = ContextualRouter(
        ["a", "b"], costs={"a": 0.0, "b": 0.0}, selector=ContextualSelector(embedding_dim=4)
    )
    signal = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    for _ in range(20):
        router.learn("same text", "a", 1.0, embedding=signal)
        router.learn("same text", "a", 0.0, embedding=-signal)
    high = router.predict("same text", embedding=signal)[0].quality
    low = router.predict("same text", embedding=-signal)[0].quality
    assert high > 0.8 > 0.2 > low
    with pytest.raises(TypeError, match="float32"):
        router.predict("x", embedding=np.zeros(4, dtype=np.float64))
    with pytest.raises(ValueError, match="embedding"):
        router.predict("x", embedding=np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="embedding"):
        router.predict("x", embedding=np.full(4, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="embedding"):
        router.predict("x", embedding=np.zeros((2, 2), dtype=np.float32))


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda r: r.decide("x", willingness_to_pay=0.0), ValueError, "willingness_to_pay"),
        (lambda r: r.decide("x", willingness_to_pay=float("nan")), ValueError, "willingness"),
        (lambda r: r.decide("x", eligible=["nope"]), KeyError, "nope"),
        (lambda r: r.decide("x", eligible="a"), TypeError, "eligible"),
        (lambda r: r.decide("x", eligible=[]), ValueError, "eligible"),
        (lambda r: r.decide("x", costs={"a": 1.0}), ValueError, "costs"),
        (lambda r: r.decide("x", costs={"a": -1.0, "b": 0.0}), ValueError, "costs"),
        (lambda r: r.learn("x", "a", 1.5), ValueError, "quality"),
        (lambda r: r.learn("x", "zzz", 1.0), KeyError, "zzz"),
        (lambda r: r.calibrate(["p"], {"a": [0.5, 0.5]}), ValueError, "qualities"),
        (lambda r: r.calibrate(["p"], {"a": [float("inf")]}), ValueError, "row 0"),
        (lambda r: r.calibrate(["p"], {"q": [1.0]}), KeyError, "q"),
        (lambda r: r.calibrate([], {"a": []}), ValueError, "prompts"),
        (lambda r: r.calibrate("p", {"a": [1.0]}), TypeError, "prompts"),
        (lambda r: r.add_model("a"), ValueError, "already registered"),
        (lambda r: r.set_cost("a", float("nan")), ValueError, "cost"),
    ],
)
def test_bad_inputs_name_the_field(call: object, error: type[Exception], field: str) -> None:
    router = ContextualRouter(["a", "b"], costs={"a": 0.001, "b": 0.01})
    with pytest.raises(error, match=field):
        call(router)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"hash_bits": 40}, "hash_bits"),
        ({"hash_bits": -1}, "hash_bits"),
        ({"word_ngrams": 0}, "word_ngrams"),
        ({"char_ngrams": 1}, "char_ngrams"),
        ({"prior_precision": 0.0}, "prior_precision"),
        ({"exploration": "random"}, "exploration"),
        ({"exploration": "ucb", "exploration_weight": -1.0}, "exploration_weight"),
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"feedback_ttl_s": 0.0}, "feedback_ttl_s"),
        ({"max_pending": 0}, "max_pending"),
        ({"willingness_to_pay": -1.0}, "willingness_to_pay"),
    ],
)
def test_bad_settings_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ContextualRouter(["a", "b"], selector=ContextualSelector(**options))  # type: ignore[arg-type]


def test_models_are_validated_and_can_change() -> None:
    with pytest.raises(TypeError, match="list of model names"):
        ContextualRouter("ab")
    with pytest.raises(ValueError, match="already registered"):
        ContextualRouter(["a", "a"])
    with pytest.raises(KeyError, match="zzz"):
        ContextualRouter(["a"], costs={"zzz": 1.0})
    router = ContextualRouter(["a"], costs={"a": 0.1})
    router.add_model("b", 0.2)
    router.remove_model("a")
    assert router.models == ["b"]
    assert router.decide("x").model == "b"
    with pytest.raises(ValueError, match="no cost is known"):
        ContextualRouter(["a", "b"]).decide("x")


def test_threads_share_one_router_safely() -> None:
    router = ContextualRouter(["a", "b"], costs={"a": 0.001, "b": 0.002})
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(300):
                decision = router.decide(f"prompt {seed} {i % 7}")
                assert decision.request_id is not None
                router.report_quality(decision.request_id, (i % 2) * 1.0)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert router.pending == 0
    assert sum(e.observations for e in router.explain("prompt 0 1")) == 4 * 300


@pytest.mark.timeout(10)
def test_arguments_that_call_back_into_the_router_do_not_deadlock() -> None:
    """Caller objects are read before the core's lock is taken, so an
    iterable that uses the router while it is read cannot deadlock."""
    router = ContextualRouter(["a", "b"], costs={"a": 0.001, "b": 0.002})

    def eligible() -> Iterator[str]:
        router.predict("re-entered")
        yield "b"

    class Message(dict[str, str]):
        def __getitem__(self, key: str) -> str:
            router.learn("re-entered", "a", 1.0)
            return super().__getitem__(key)

    assert router.decide("x", eligible=eligible()).model == "b"
    assert router.featurize([Message(role="user", content="hi")]) == router.featurize("hi")


@settings(max_examples=60, deadline=None)
@given(
    prompt=st.text(max_size=300),
    qualities=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5),
    wtp=st.floats(1e-9, 1e9),
    models=st.sets(st.sampled_from(["a", "b", "c"]), min_size=1),
)
def test_any_prompt_scores_finite_and_in_range(
    prompt: str, qualities: list[float], wtp: float, models: set[str]
) -> None:
    router = ContextualRouter(
        ["a", "b", "c"],
        costs={"a": 0.0, "b": 0.01, "c": 10.0},
        selector=ContextualSelector(hash_bits=10),
    )
    for quality in qualities:
        router.learn(prompt, "b", quality)
    for prediction in router.predict(prompt):
        assert 0.0 <= prediction.quality <= 1.0
        assert 0.0 <= prediction.uncertainty < 1.0
    decision = router.decide(prompt, willingness_to_pay=wtp, eligible=sorted(models))
    assert decision.model in models
    assert 0.0 <= decision.quality <= 1.0
    for explanation in router.explain(prompt):
        assert all(math.isfinite(effect.logit) for effect in explanation.top_features)


def test_predictions_stay_finite_at_the_extremes_of_the_f32_state() -> None:
    """A vague prior (variance 1e37) times the largest accepted embedding
    overflows the f32 sums of the score; the router sums again in f64, so
    predictions stay finite before and after learning, and the state reloads."""
    selector = ContextualSelector(prior_precision=1e-37, embedding_dim=4)
    router = ContextualRouter(["a", "b"], selector=selector)
    embedding = np.full(4, 1e6, np.float32)
    router.learn("x", "a", 1.0, embedding=embedding)
    for prediction in router.predict("x", embedding=embedding):
        assert math.isfinite(prediction.quality) and math.isfinite(prediction.uncertainty)
    assert router.predict("x", embedding=embedding)[0].quality > 0.5
    reloaded = ContextualRouter.from_bytes(router.to_bytes(), selector)
    assert reloaded.predict("x", embedding=embedding) == router.predict("x", embedding=embedding)
    with pytest.raises(ValueError, match="embedding"):
        router.predict("x", embedding=np.full(4, 1.5e6, np.float32))


@pytest.mark.parametrize(
    ("top", "error"), [(-1, ValueError), (2**64, ValueError), (True, TypeError)]
)
def test_a_bad_number_of_top_features_names_top(top: object, error: type[Exception]) -> None:
    router = ContextualRouter(["a", "b"])
    assert all(len(e.top_features) <= 5 for e in router.explain("x"))
    with pytest.raises(error, match="top"):
        router.explain("x", top=top)  # type: ignore[arg-type]
