"""Prompt-aware routing inside the registry (``selection_strategy="contextual"``):
the pick depends on the prompt, learning goes through request ids, the
explanation agrees with the next selection, and the constraint filtering,
tickets and failover of the other strategies still hold."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator import _core
from orchestrator.core.model import ModelCost
from orchestrator.errors import (
    ModelNotFoundError,
    NoEligibleModelsError,
    ServerError,
    UnknownRequestError,
)
from orchestrator.models.model_registry import ContextualSelector, ModelRegistry, Selection
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)

#: USD per million tokens: a default request (100 + 100 tokens) costs $0.001 and $0.01.
PRICES = {"cheap": 5.0, "strong": 50.0}


def priced(name: str, usd_per_million: float, **options: Any) -> ScriptedModel:
    """A scripted model at one price per million input and output tokens."""
    cost = ModelCost(input_per_million=usd_per_million, output_per_million=usd_per_million)
    return ScriptedModel(name, cost=cost, **options)


def registry(selector: ContextualSelector | None = None, **models: float) -> ModelRegistry:
    r = ModelRegistry(model_selector=selector or ContextualSelector(hash_bits=12))
    for name, price in (models or PRICES).items():
        r.register_model(priced(name, price))
    return r


def planted(i: int) -> tuple[str, dict[str, float]]:
    """Integral prompts need the strong model; greetings do not."""
    if i % 2 == 0:
        return f"compute the integral of x^{i} dx", {"cheap": 0.0, "strong": 1.0}
    return f"say hello to my friend number {i}", {"cheap": 1.0, "strong": 1.0}


def right_model(i: int) -> str:
    return "strong" if i % 2 == 0 else "cheap"


def test_the_strategy_is_a_built_in_selector_by_name_and_by_instance() -> None:
    by_name = ModelRegistry(selection_strategy="contextual")
    assert isinstance(by_name.model_selector, ContextualSelector)
    assert by_name.core.contextual
    assert by_name.core.willingness_to_pay == _core.DEFAULT_WILLINGNESS_TO_PAY
    by_instance = ModelRegistry(model_selector=ContextualSelector(willingness_to_pay=0.05))
    assert by_instance.strategy == "contextual"
    assert by_instance.core.willingness_to_pay == 0.05
    with pytest.raises(ValueError, match="hash_bits"):
        ContextualSelector(hash_bits=99)
    with pytest.raises(TypeError, match="epochs"):
        ContextualSelector(epochs=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="willingness_to_pay"):
        ContextualSelector(willingness_to_pay=float("inf"))


def test_calibration_then_selection_follows_the_prompt() -> None:
    r = registry(ContextualSelector(hash_bits=12, exploration="greedy", willingness_to_pay=0.1))
    rows = [planted(i) for i in range(400)]
    r.calibrate([p for p, _ in rows], {m: [q[m] for _, q in rows] for m in PRICES})
    for i in range(1000, 1040):
        prompt, _ = planted(i)
        assert r.select_model(prompt=prompt).name == right_model(i)
        chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]
        assert r.select(prompt=chat).model.name == right_model(i)
    with pytest.raises(ModelNotFoundError):
        r.calibrate(["x"], {"nobody": [1.0]})
    with pytest.raises(ValueError, match="qualities"):
        r.calibrate(["x", "y"], {"cheap": [1.0]})


def test_delayed_feedback_teaches_the_registry_online() -> None:
    r = registry(ContextualSelector(hash_bits=12, seed=3, willingness_to_pay=0.1))
    for i in range(2000):
        prompt, quality = planted(i)
        selection = r.select(prompt=prompt)
        assert selection.request_id is not None
        r.report_outcome(selection, True, 0.1)
        assert r.report_quality(selection.request_id, quality[selection.model.name]) == (
            selection.model.name
        )
    right = sum(
        r.select_model(prompt=planted(i)[0]).name == right_model(i) for i in range(3000, 3200)
    )
    assert right > 180, f"{right} of 200 routed right"
    assert r.core.outstanding_tickets() == 2  # one held per model; earlier unused ones released


def test_report_outcome_with_a_quality_teaches_in_the_same_step() -> None:
    r = registry()
    selection = r.select(prompt="hello")
    r.report_outcome(selection, True, 0.2, quality=1.0)
    with pytest.raises(UnknownRequestError, match="request_id"):
        r.report_quality(selection.request_id or 0, 1.0)
    # An id that no longer accepts feedback changes nothing, not even the outcome count.
    second = r.select(prompt="hello")
    r.report_quality(second.request_id or 0, 0.0)
    before = r.get_metrics(second.model.name).requests
    with pytest.raises(UnknownRequestError):
        r.report_outcome(second, True, 0.2, quality=1.0)
    assert r.get_metrics(second.model.name).requests == before
    assert r.core.pending(second.slot) == 1  # its ticket is still live


@pytest.mark.parametrize("request_id", [0, 10**6, 2**63])
def test_unknown_request_ids_are_their_own_error(request_id: int) -> None:
    r = registry()
    with pytest.raises((UnknownRequestError, ValueError), match="request_id"):
        r.report_quality(request_id, 0.5)


def test_request_ids_expire_after_the_feedback_window() -> None:
    r = registry(ContextualSelector(hash_bits=12, feedback_ttl_s=5.0))
    selection = r.select(prompt="hello")
    r.core.advance_clock(6.0)
    with pytest.raises(UnknownRequestError, match="expired"):
        r.report_quality(selection.request_id or 0, 1.0)


@pytest.mark.parametrize("quality", [-0.1, 1.5, float("nan")])
def test_quality_is_checked_and_a_refused_one_keeps_the_id(quality: float) -> None:
    r = registry()
    selection = r.select(prompt="hello")
    with pytest.raises(ValueError, match="quality"):
        r.report_quality(selection.request_id or 0, quality)
    with pytest.raises(TypeError, match="quality"):
        r.report_quality(selection.request_id or 0, True)
    r.report_quality(selection.request_id or 0, 1.0)


def test_the_explanation_names_the_next_pick_and_changes_nothing() -> None:
    r = registry()
    for i in range(200):
        prompt, quality = planted(i)
        state = r.router_state()
        explained = r.explain_selection(prompt=prompt)
        names, scores = r.scores(prompt=prompt)
        assert r.router_state() == state
        eligible = [c for c in explained.candidates if c.eligible]
        top = max(eligible, key=lambda c: c.score or -np.inf)
        assert explained.chosen == top.name
        assert scores[names.index(top.name)] == top.score
        assert all(c.uncertainty is not None and c.expected_cost for c in eligible)
        selection = r.select(prompt=prompt)
        assert selection.model.name == explained.chosen
        r.report_quality(selection.request_id or 0, quality[selection.model.name])
    features = r.explain_selection(prompt="compute the integral of x dx").candidates[0]
    assert features.top_features and all(isinstance(f, str) for f, _ in features.top_features)
    assert "predicted quality" in str(r.explain_selection(prompt="hi"))


def test_constraints_still_filter_and_no_eligible_model_is_explained() -> None:
    r = registry(cheap=5.0, strong=5000.0)
    for _ in range(20):
        assert r.select_model(prompt="hard proof", max_cost=0.002).name == "cheap"
        assert r.select_model(prompt="x", exclude_models=["cheap"]).name == "strong"
    with pytest.raises(NoEligibleModelsError) as caught:
        r.select_model(prompt="x", max_cost=1e-9)
    assert caught.value.explanation.strategy == "contextual"
    with pytest.raises(NoEligibleModelsError):
        r.select_many(3, prompt="x", max_cost=1e-9)


def test_willingness_to_pay_moves_the_pick_to_the_stronger_model() -> None:
    r = registry(ContextualSelector(hash_bits=12, exploration="greedy"))
    r.calibrate(["q"] * 50, {"cheap": [0.5] * 50, "strong": [0.9] * 50})
    assert r.select_model(prompt="q", willingness_to_pay=1e-3).name == "cheap"
    assert r.select_model(prompt="q", willingness_to_pay=10.0).name == "strong"
    assert r.select_model(prompt="q", willingness_to_pay=10.0, max_cost=0.002).name == "cheap"


def test_select_many_makes_one_decision_per_request() -> None:
    r = registry()
    selections = r.select_many(5, prompt="hello")
    ids = [s.request_id for s in selections]
    assert len(set(ids)) == 5 and None not in ids
    r.report_many(selections, [True] * 5, [0.1] * 5)
    for s in selections:
        r.report_quality(s.request_id or 0, 1.0)
    assert r.core.outstanding_tickets() == 0


def test_existing_unpacking_of_a_selection_keeps_working() -> None:
    r = registry()
    model, ticket, slot, request_id = r.select(prompt="hi")
    assert (model.name, ticket > 0, slot >= 0, request_id is not None) == (
        model.name,
        True,
        True,
        True,
    )
    assert isinstance(r.select(), Selection)
    plain = ModelRegistry()
    plain.register_model(ScriptedModel("only"))
    assert plain.select().request_id is None


def test_without_a_prompt_the_mean_quality_decides() -> None:
    r = registry(ContextualSelector(hash_bits=12, exploration="greedy", willingness_to_pay=1.0))
    for _ in range(60):
        selection = r.select()  # no prompt: the empty prompt's bias feature only
        quality = 1.0 if selection.model.name == "strong" else 0.0
        r.report_quality(selection.request_id or 0, quality)
    assert r.select_model().name == "strong"


def test_a_non_contextual_strategy_accepts_a_prompt_and_ignores_it() -> None:
    for strategy in ("ucb", "thompson", "cost"):
        with_prompt = ModelRegistry(selection_strategy=strategy)
        without = ModelRegistry(selection_strategy=strategy)
        for r in (with_prompt, without):
            r.seed(7)
            for name, price in PRICES.items():
                r.register_model(priced(name, price))
        for i in range(30):
            a = with_prompt.select(prompt=planted(i)[0], willingness_to_pay=0.5)
            b = without.select()
            assert a.model.name == b.model.name and a.request_id is None
            with_prompt.report_outcome(a, True, 0.1)
            without.report_outcome(b, True, 0.1)
    with pytest.raises(ValueError, match="contextual"):
        without.report_quality(1, 1.0)


def test_models_registered_after_calibration_start_at_the_prior() -> None:
    r = registry(ContextualSelector(hash_bits=12, exploration="greedy"))
    r.calibrate(["q"] * 20, {"cheap": [1.0] * 20, "strong": [1.0] * 20})
    r.register_model(priced("late", 0.1))
    late = next(c for c in r.explain_selection(prompt="q").candidates if c.name == "late")
    assert late.observations == 0 and late.estimate == pytest.approx(0.5)
    r.unregister_model("cheap")
    assert {c.name for c in r.explain_selection(prompt="q").candidates} == {"strong", "late"}
    assert r.select_model(prompt="q").name in {"strong", "late"}


def test_router_state_round_trips_through_a_file(tmp_path: Path) -> None:
    r = registry(ContextualSelector(hash_bits=12, exploration="greedy", willingness_to_pay=0.1))
    rows = [planted(i) for i in range(200)]
    r.calibrate([p for p, _ in rows], {m: [q[m] for _, q in rows] for m in PRICES})
    path = tmp_path / "router.bin"
    r.save_router(path)
    fresh = registry(ContextualSelector(hash_bits=12, exploration="greedy", willingness_to_pay=0.1))
    fresh.load_router(path)
    assert fresh.router_state() == r.router_state()
    assert fresh.select_model(prompt=planted(0)[0]).name == "strong"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(ValueError, match="state"):
        fresh.load_router_state(bytes(damaged))
    assert fresh.router_state() == r.router_state()
    with pytest.raises(ValueError, match="contextual"):
        ModelRegistry().router_state()


def test_a_huge_prompt_is_read_up_to_the_documented_cap() -> None:
    r = registry()
    head = "integral " * 100
    huge = head + "x" * (4 * _core.MAX_ROUTED_PROMPT_BYTES)
    assert r.select_model(prompt=huge).name in PRICES
    many = [{"role": "user", "content": "word " * 1000}] * 10_000
    assert r.select_model(prompt=many).name in PRICES


def test_embeddings_are_validated_and_used() -> None:
    r = registry(ContextualSelector(hash_bits=12, embedding_dim=4))
    good = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    assert r.select_model(prompt="x", embedding=good).name in PRICES
    before = r.core.outstanding_tickets()
    bad_embeddings: list[tuple[Any, type[Exception]]] = [
        (np.zeros(3, np.float32), ValueError),
        (np.array([0.0, np.nan, 0.0, 0.0], np.float32), ValueError),
        (good.astype(np.float64), TypeError),
    ]
    for bad, error in bad_embeddings:
        with pytest.raises(error, match="embedding"):
            r.select_model(prompt="x", embedding=bad)
    assert r.core.outstanding_tickets() == before


def test_generate_returns_the_request_id_and_fails_over_by_prompt() -> None:
    async def run() -> None:
        r = ModelRegistry(model_selector=ContextualSelector(hash_bits=12))
        r.register_model(priced("down", 0.0, fail=ServerError("boom")))
        r.register_model(priced("up", 0.0))
        for _ in range(5):
            result = await r.generate("hello there", willingness_to_pay=0.5)
            assert result.model == "up" and result.request_id is not None
            r.report_quality(result.request_id, 1.0)
        stream = r.stream("hello there")
        chunks = [chunk async for chunk in stream]
        assert chunks and stream.request_id is not None
        with pytest.raises(ValueError, match="willingness_to_pay"):
            await r.generate("x", willingness_to_pay=-1.0)

    asyncio.run(run())


def test_threads_racing_registration_selection_and_feedback() -> None:
    r = registry()
    stop = threading.Event()
    errors: list[BaseException] = []

    def guard(work: object) -> None:
        try:
            while not stop.is_set():
                work()  # type: ignore[operator]
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    def churn() -> None:
        model = r.register_model(ScriptedModel(f"churn-{threading.get_ident()}"))
        r.unregister_model(model.name)

    def select_and_learn() -> None:
        try:
            selection = r.select(prompt="integral of x")
        except NoEligibleModelsError:
            return
        # Its model may have been unregistered meanwhile: its decisions are dropped.
        with contextlib.suppress(UnknownRequestError):
            r.report_quality(selection.request_id or 0, 0.5)
        r.explain_selection(prompt="hello")

    threads = [threading.Thread(target=guard, args=(w,)) for w in (churn, select_and_learn) * 2]
    for t in threads:
        t.start()
    stop.wait(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    names = sorted(c.name for c in r.explain_selection(prompt="x").candidates)
    assert names == ["cheap", "strong"]
    assert r.select_model(prompt="x").name in PRICES


def test_a_feedback_storm_from_callbacks_is_absorbed() -> None:
    r = registry()
    selections = [r.select(prompt=f"prompt {i}") for i in range(2000)]

    def report(index: int) -> None:
        for s in selections[index::8]:
            r.report_quality(s.request_id or 0, 1.0)

    threads = [threading.Thread(target=report, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in selections[:10]:
        with pytest.raises(UnknownRequestError):
            r.report_quality(s.request_id or 0, 1.0)


def test_a_seeded_contextual_run_is_reproducible_whatever_is_explained() -> None:
    runs = []
    for explain in (False, True):
        r = registry()
        r.seed(11)
        picks = []
        for i in range(60):
            prompt, quality = planted(i)
            if explain:
                r.explain_selection(prompt=prompt)
                r.scores(prompt=prompt)
            selection = r.select(prompt=prompt)
            picks.append(selection.model.name)
            r.report_quality(selection.request_id or 0, quality[selection.model.name])
        runs.append(picks)
    assert runs[0] == runs[1]


def test_open_breakers_are_skipped_and_the_soonest_is_probed_when_all_are_open() -> None:
    r = registry()
    for _ in range(3):
        r.report_outcome("cheap", False, 0.1, error_class="server_error")
    assert r.explain_selection(prompt="x").chosen == "strong"
    for _ in range(20):
        selection = r.select(prompt="x")
        assert selection.model.name == "strong"
        r.report_outcome(selection, True, 0.1, quality=1.0)
    for _ in range(3):
        r.report_outcome("strong", False, 0.1, error_class="server_error")
    explained = r.explain_selection(prompt="x")
    assert explained.all_breakers_open and explained.chosen == "cheap"
    probe = r.select(prompt="x")
    assert probe.model.name == "cheap" and probe.request_id is not None
    # Cheap's probe is in flight, so strong, the other open circuit, is probed next
    # (as under every strategy), and then nothing is left.
    assert r.select(prompt="x").model.name == "strong"
    with pytest.raises(NoEligibleModelsError):
        r.select(prompt="x")
