"""Attacks on the Rust-Python binding: callbacks that sleep or re-enter the
registry from several threads, wrong types and extreme values at every
public entry point, and resource bounds. Each test names the promise it
protects; its docstring is the reproduction."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import _core
from orchestrator.errors import (
    ModelNotFoundError,
    NoEligibleModelsError,
    StaleTicketError,
    UnknownSlotError,
)
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.selectors import RewardWeights
from tests.conftest import ScriptedModel
from tests.contract.test_entry_points import REQUEST_KEYS

pytestmark = pytest.mark.timeout(60)


def registry_of(*names: str, **kwargs: Any) -> ModelRegistry:
    """A registry holding scripted models of these names."""
    registry = ModelRegistry(**kwargs)
    for name in names:
        registry.register_model(ScriptedModel(name))
    return registry


class Index:
    """An integer-like whose ``__index__`` runs ``callback`` first."""

    def __init__(self, value: int, callback: Callable[[], object]) -> None:
        self.value = value
        self.callback = callback

    def __index__(self) -> int:
        self.callback()
        return self.value


class Real:
    """A float-like whose ``__float__`` runs ``callback`` first."""

    def __init__(self, value: float, callback: Callable[[], object]) -> None:
        self.value = value
        self.callback = callback

    def __float__(self) -> float:
        self.callback()
        return self.value


def hammer(registry: ModelRegistry, stop: threading.Event, counts: list[int]) -> None:
    """Select and report until told to stop, counting the round trips."""
    n = 0
    while not stop.is_set():
        registry.report_outcome(registry.select(), True, 0.01)
        n += 1
    counts.append(n)


def test_a_sleeping_generator_argument_never_blocks_other_threads() -> None:
    """A generator passed as ``capabilities`` sleeps 0.3 s before yielding,
    while two threads select and report: the other threads keep selecting
    (the binding converts the generator before it takes the core's lock)."""
    registry = registry_of("a", "b", "c")
    stop = threading.Event()
    counts: list[int] = []
    workers = [threading.Thread(target=hammer, args=(registry, stop, counts)) for _ in range(2)]
    for w in workers:
        w.start()

    def slow() -> Iterator[str]:
        time.sleep(0.3)
        yield "chat"

    before = registry.statistics()["trials"].sum()
    chosen = registry.select_model(capabilities=slow())  # type: ignore[arg-type]
    during = registry.statistics()["trials"].sum() - before
    stop.set()
    for w in workers:
        w.join(10)
    assert chosen.name in {"a", "b", "c"}
    assert during > 0, "no other thread made progress while the generator slept"


def test_callbacks_that_reenter_the_registry_neither_deadlock_nor_corrupt() -> None:
    """``__index__`` (context_length), ``__float__`` (max_cost) and a
    generator (capabilities) each call back into the registry (select,
    register, unregister) from 4 threads at once; every call returns or
    raises a clear error, and the counts add up."""
    registry = registry_of("a", "b")
    errors: list[BaseException] = []

    def reentrant_caps(tag: int) -> Iterator[str]:
        registry.select_model()
        yield "chat"
        registry.register_model(ScriptedModel(f"gen-{tag}"))
        yield "text_generation"

    def work(tag: int) -> None:
        try:
            for i in range(50):
                selection = registry.select(
                    capabilities=reentrant_caps(tag * 1000 + i),  # type: ignore[arg-type]
                    context_length=Index(8, lambda: registry.scores()),  # type: ignore[arg-type]
                    max_cost=Real(1.0, lambda: registry.explain_selection()),  # type: ignore[arg-type]
                )
                registry.report_outcome(selection, True, 0.01)
                registry.unregister_model(f"gen-{tag * 1000 + i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a re-entrant callback deadlocked"
    assert errors == []
    assert [m.name for m in registry.list_models()] == ["a", "b"]


def test_a_callback_that_raises_propagates_its_own_error_and_changes_nothing() -> None:
    """``context_length`` whose ``__index__`` raises ZeroDivisionError: the
    caller sees that error and no ticket is left behind."""
    registry = registry_of("a")

    def boom() -> None:
        raise ZeroDivisionError("from __index__")

    with pytest.raises(ZeroDivisionError, match="from __index__"):
        registry.select(context_length=Index(8, boom))  # type: ignore[arg-type]
    assert registry.core.outstanding_tickets() == 0


def test_one_long_call_is_not_expired_by_a_million_quick_ones() -> None:
    """Reproduction: ``long = registry.select()``, then about 1.05 M
    selections that are each reported at once (``select_many(10000)`` +
    ``report_many``, ~2 s), then ``report_outcome(long, True, 1.0)`` raises
    ``StaleTicketError``, although only ONE ticket was ever outstanding and
    ``pending_timeout`` is 600 s. ``TicketStore::issue`` (tickets.rs) bounds
    the ring's length, holes of reported tickets included, so it expires the
    oldest live ticket early."""
    registry = registry_of("a", "b")
    long = registry.select()
    for _ in range(_core.MAX_OUTSTANDING_TICKETS // _core.MAX_SELECT_MANY + 2):
        quick = registry.select_many(_core.MAX_SELECT_MANY)
        registry.report_many(quick, [True] * len(quick), [0.01] * len(quick))
    assert registry.core.outstanding_tickets() == 1
    registry.report_outcome(long, True, 1.0)


@pytest.mark.parametrize("count", [10**10, 2**62, 2**64, _core.MAX_SELECT_MANY + 1])
def test_select_many_refuses_huge_counts_with_a_value_error_naming_n(count: int) -> None:
    """``select_many(10**10)`` used to abort the process; now a ValueError."""
    registry = registry_of("a")
    with pytest.raises(ValueError, match="n"):
        registry.select_many(count)
    assert registry.core.outstanding_tickets() == 0


def test_select_many_on_an_unsatisfiable_request_raises_no_eligible() -> None:
    """``select_many(3, capabilities=["vision"])`` with no vision model."""
    registry = registry_of("a")
    with pytest.raises(NoEligibleModelsError):
        registry.select_many(3, capabilities=["vision"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"capabilities": "chat"}, "capabilities"),
        ({"exclude_models": "a"}, "exclude_models"),
        ({"exclude_models": b"a"}, "exclude_models"),
        ({"context_length": "8"}, "context_length"),
        ({"context_length": 8.0}, "context_length"),
        ({"context_length": 2**70}, "context_length"),
        ({"max_cost": "1"}, "max_cost"),
        ({"max_cost": True}, "max_cost"),
        ({"max_cost": 10**400}, "max_cost"),
        ({"max_cost": math.nan}, "max_cost"),
        ({"min_speed": math.inf}, "min_speed"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 2**64}, "output_tokens"),
    ],
)
@pytest.mark.parametrize("entry", ["select_model", "select", "explain_selection", "scores"])
def test_every_selection_entry_point_refuses_the_same_bad_argument(
    entry: str, kwargs: dict[str, Any], field: str
) -> None:
    """The same bad argument is refused the same way by every entry point,
    with a TypeError/ValueError naming the field."""
    registry = registry_of("a", "b")
    with pytest.raises((TypeError, ValueError), match=field):
        getattr(registry, entry)(**kwargs)
    assert registry.core.outstanding_tickets() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"success": "false"}, "success"),
        ({"success": None}, "success"),
        ({"success": 1}, "success"),
        ({"latency": math.nan}, "latency"),
        ({"latency": -1.0}, "latency"),
        ({"latency": "0.1"}, "latency"),
        ({"quality": math.nan}, "quality"),
        ({"quality": 1.5}, "quality"),
        ({"input_tokens": 1.9}, "input_tokens"),
        ({"input_tokens": "7"}, "input_tokens"),
        ({"cost": -1.0}, "cost"),
        ({"retry_after": math.inf}, "retry_after"),
        ({"error_class": "bogus"}, "error_class"),
    ],
)
def test_report_outcome_refuses_wrong_types_and_keeps_the_ticket(
    kwargs: dict[str, Any], field: str
) -> None:
    """A bad outcome is refused naming the field; the selection's ticket is
    still outstanding and can be reported correctly afterwards."""
    registry = registry_of("a")
    selection = registry.select()
    args: dict[str, Any] = {"success": True, "latency": 0.1, **kwargs}
    success, latency = args.pop("success"), args.pop("latency")
    with pytest.raises((TypeError, ValueError), match=field):
        registry.report_outcome(selection, success, latency, **args)
    assert registry.get_metrics("a").requests == 0
    registry.report_outcome(selection, True, 0.1)
    assert registry.get_metrics("a").requests == 1


def test_a_huge_finite_latency_is_refused_or_kept_finite() -> None:
    """Reproduction: ``report_outcome(selection, True, 1e300)`` is accepted,
    and ``get_metrics(name).latency_p50`` becomes ``inf`` (the recent
    latencies are stored as f32 in stats.rs, ``value as f32``), so one report
    poisons the percentiles. A latency is either refused (ValueError naming
    ``latency``) or shown as the finite number it was."""
    registry = registry_of("a")
    selection = registry.select()
    try:
        registry.report_outcome(selection, True, 1e300)
    except ValueError as exc:
        assert "latency" in str(exc)
        return
    metrics = registry.get_metrics("a")
    assert metrics.latency_p50 is not None and math.isfinite(metrics.latency_p50)


def test_huge_reward_weights_never_make_a_score_nan() -> None:
    """Reproduction: ``ModelRegistry(reward_weights=RewardWeights(success=1e308,
    latency=1e308, cost=1e308, quality=1e308))`` is accepted; after a few
    outcomes ``registry.scores()`` is ``[nan, nan, nan]`` and ``mean_reward``
    is NaN (the weights' sum overflows to inf, inf/inf). Weights must be
    bounded, or normalised without overflow."""
    weights = RewardWeights(success=1e308, latency=1e308, cost=1e308, quality=1e308)
    try:
        registry = registry_of("a", "b", "c", reward_weights=weights)
    except ValueError as exc:
        assert "reward_weights" in str(exc)
        return
    for i in range(6):
        registry.report_outcome(registry.select(), i % 2 == 0, 0.1, quality=0.5)
    for candidate in registry.explain_selection().candidates:
        assert candidate.forced or math.isfinite(candidate.score or 0.0)
    assert math.isfinite(registry.get_metrics("a").mean_reward or 0.0)


def test_reporting_a_selection_of_an_unregistered_model_is_a_stale_ticket() -> None:
    """Reproduction: ``s = registry.select()``; ``registry.unregister_model(
    s.model.name)``; ``registry.report_outcome(s, True, 0.1)`` raises
    ``ModelNotFoundError`` (from ``ModelRegistry._selected`` via
    ``_binding``), not the documented ``StaleTicketError`` ("the selection
    was already reported, released, expired ..."). The same in
    ``report_many``, where one such selection sinks the whole batch with a
    ModelNotFoundError."""
    registry = registry_of("a", "b")
    selection = registry.select(exclude_models=["b"])
    registry.unregister_model("a")
    with pytest.raises(StaleTicketError):
        registry.report_outcome(selection, True, 0.1)


def test_a_model_re_registered_under_its_name_does_not_take_an_old_selection() -> None:
    """``s`` selects model ``a``; ``a`` is unregistered and a NEW ``a`` is
    registered; reporting ``s`` must be a StaleTicketError, and its message
    must not claim that no model named 'a' is registered (it is)."""
    registry = registry_of("a", "b")
    selection = registry.select(exclude_models=["b"])
    registry.unregister_model("a")
    registry.register_model(ScriptedModel("a"))
    with pytest.raises(StaleTicketError):
        registry.report_outcome(selection, True, 0.1)
    assert registry.get_metrics("a").requests == 0


def test_a_ticket_held_across_its_models_unregistration_is_stale_in_the_core() -> None:
    """The registry's own check of a selection and the core call after it are
    two steps: a thread that unregisters the model between them must leave
    the holder a StaleTicketError (found as ``UnknownSlotError: no model is
    registered in slot 0`` by threads racing ``cancel``), and a measured call
    that was running then counts nowhere rather than raising."""
    registry = registry_of("a", "b")
    first = registry.select(exclude_models=["b"])
    second = registry.select(exclude_models=["b"])
    registry.unregister_model("a")
    core = registry.core
    with pytest.raises(StaleTicketError, match="unregistered"):
        core.cancel(first.slot, first.ticket)
    with pytest.raises(StaleTicketError):
        core.report(second.model, second.slot, second.ticket, True, 0.1)
    assert core.record(first.slot, first.ticket, _core.Outcome(True, 0.1)) is None
    assert registry.get_metrics("b").requests == 0
    # A new model takes the freed slot: the old call's outcome is not its.
    registry.register_model(ScriptedModel("c"))
    assert registry.core.slot_of("c") == first.slot
    assert core.record(first.slot, first.ticket, _core.Outcome(True, 0.1)) is None
    assert registry.get_metrics("c").requests == 0
    with pytest.raises(UnknownSlotError, match="slot 9"):
        core.cancel(9, first.ticket)


def test_get_metrics_racing_unregister_raises_model_not_found() -> None:
    """Reproduction: one thread registers/unregisters ``c0..c9`` while
    another calls ``get_metrics(name)`` for every listed model: the losing
    race surfaces the core's internal ``UnknownSlotError: no model is
    registered in slot N`` instead of ``ModelNotFoundError`` (get_model then
    ``_core.snapshot(slot)`` are two steps in ``ModelRegistry.get_metrics``)."""
    registry = registry_of("base")
    stop = threading.Event()
    unexpected: list[str] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            registry.register_model(ScriptedModel(f"c{i % 10}"))
            registry.unregister_model(f"c{i % 10}")
            i += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not unexpected:
            for model in registry.list_models():
                try:
                    registry.get_metrics(model.name)
                except ModelNotFoundError:
                    pass
                except Exception as exc:  # anything else is the finding
                    unexpected.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        thread.join(10)
    assert unexpected == []


def test_explanations_are_pure_and_a_seeded_run_is_reproducible() -> None:
    """Two seeded Thompson runs of 100 select+report, one calling
    ``explain_selection`` and ``scores`` before every selection: same picks."""

    def run(explain: bool) -> list[str]:
        registry = registry_of("m0", "m1", "m2", "m3", selection_strategy="thompson")
        registry.seed(7)
        picks = []
        for k in range(100):
            if explain:
                registry.explain_selection()
                registry.scores()
            selection = registry.select()
            picks.append(selection.model.name)
            registry.report_outcome(selection, True, 0.1, quality=(k * 37 % 10) / 10)
        return picks

    assert run(False) == run(True)


def test_a_thompson_explanation_names_the_model_the_next_selection_picks() -> None:
    """For 200 rounds: ``explain_selection().chosen`` has the top eligible
    score and is the model ``select()`` then returns. Reproduction of the
    break: with 4 models and ``seed(3)``, round 0 explains ``chose m0`` while
    m2 shows the top score (1.83 vs 1.67): during forced trials (fewer than
    ``min_trials`` outcomes) the pick is round-robin but the score column
    showed a Thompson draw. A forced trial now scores ``+inf`` (it outranks
    every scored model) and, among forced trials, the one with the fewest
    outcomes is chosen."""
    registry = registry_of("m0", "m1", "m2", "m3", selection_strategy="thompson")
    registry.seed(3)
    forced_rounds = 0
    for k in range(200):
        explanation = registry.explain_selection()
        eligible = {c.name: c for c in explanation.candidates if c.eligible}
        assert explanation.chosen is not None
        chosen = eligible[explanation.chosen]
        assert chosen.score == max(c.score or 0.0 for c in eligible.values())
        if chosen.forced:
            forced_rounds += 1
            assert chosen.score == math.inf
            assert chosen.trials == min(c.trials for c in eligible.values() if c.forced)
        selection = registry.select()
        assert selection.model.name == explanation.chosen
        registry.report_outcome(selection, True, 0.1, quality=(k * 13 % 10) / 10)
    assert forced_rounds == 4 * 5  # min_trials of each of the four models


BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=3),
    st.just(np.float64("nan")),
    st.just(np.int64(-1)),
    st.just(object()),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entry=st.sampled_from(["select_model", "select", "explain_selection", "scores", "select_many"]),
    field=st.sampled_from(REQUEST_KEYS),
    value=BAD_VALUES,
)
def test_any_value_at_any_selection_entry_point_is_a_clear_error_or_a_correct_result(
    entry: str, field: str, value: object
) -> None:
    """Hypothesis throws wrong types and extreme values at every field of
    every selection entry point: the result is a model (or explanation) or a
    TypeError/ValueError/NoEligibleModelsError; no panic; no ticket left
    behind by a refused call; statistics unchanged."""
    registry = registry_of("a", "b")
    before = registry.statistics()["trials"].tolist()
    args: tuple[Any, ...] = (2,) if entry == "select_many" else ()
    try:
        result = getattr(registry, entry)(*args, **{field: value})
    except (TypeError, ValueError, NoEligibleModelsError) as exc:
        assert str(exc)
        assert registry.core.outstanding_tickets() == 0
    else:
        assert result is not None
    assert registry.statistics()["trials"].tolist() == before


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["latency", "quality", "cost", "input_tokens", "output_tokens"]),
    value=BAD_VALUES,
)
def test_any_value_in_report_many_is_a_clear_error_or_counted_exactly(
    field: str, value: object
) -> None:
    """``report_many`` with one hypothesis value in one column: either the
    whole batch is refused (nothing counted, tickets still outstanding) or
    every outcome is counted with finite statistics."""
    registry = registry_of("a")
    selections = registry.select_many(2)
    columns: dict[str, Any] = {
        "latencies": [0.1, 0.1],
        "successes": [True, True],
    }
    plural = {
        "latency": "latencies",
        "quality": "qualities",
        "cost": "costs",
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
    }
    columns[plural[field]] = [value, value]
    try:
        registry.report_many(selections, **columns)
    except (TypeError, ValueError) as exc:
        assert str(exc)
        assert registry.get_metrics("a").requests == 0
        assert registry.core.outstanding_tickets() == 2
        return
    metrics = registry.get_metrics("a")
    assert metrics.requests == 2
    for name in ("mean_reward", "latency_p50", "total_cost"):
        shown = getattr(metrics, name)
        assert shown is None or math.isfinite(shown), (name, shown)
