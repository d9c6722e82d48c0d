"""Attacks on prompt-aware routing inside the registry
(``selection_strategy="contextual"``): hostile ``prompt``/``embedding``/
``willingness_to_pay`` at every entry point with nothing stored changing,
the delayed-feedback lifecycle of request ids, callbacks that re-enter the
registry while it routes, and threads racing register/unregister against
contextual selection, feedback and calibration."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from orchestrator.core.model import ModelCost
from orchestrator.errors import (
    DuplicateModelError,
    ModelNotFoundError,
    NoEligibleModelsError,
    ServerError,
    StaleTicketError,
    UnknownRequestError,
)
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)

#: USD per million tokens: a default request (100 + 100 tokens) costs $0.001 and $0.01.
PRICES = {"cheap": 5.0, "strong": 50.0}


def priced(name: str, usd_per_million: float) -> ScriptedModel:
    cost = ModelCost(input_per_million=usd_per_million, output_per_million=usd_per_million)
    return ScriptedModel(name, cost=cost)


def contextual(**options: Any) -> ModelRegistry:
    registry = ModelRegistry(model_selector=ContextualSelector(hash_bits=10, **options))
    for name, price in PRICES.items():
        registry.register_model(priced(name, price))
    return registry


def stored(registry: ModelRegistry) -> tuple[bytes, int, list[dict[str, Any]]]:
    """Everything a refused call must leave as it was: the router's state,
    the outstanding tickets and every model's rate-limit window."""
    windows = [registry.rate_limits(name) for name in PRICES]
    return registry.router_state(), registry.core.outstanding_tickets(), windows


async def drained(stream: Any) -> list[str]:
    return [chunk async for chunk in stream]


ENTRY_POINTS: dict[str, Callable[[ModelRegistry, dict[str, Any]], object]] = {
    "select_model": lambda r, kw: r.select_model(**kw),
    "select": lambda r, kw: r.select(**kw),
    "select_many": lambda r, kw: r.select_many(3, **kw),
    "explain_selection": lambda r, kw: r.explain_selection(**kw),
    "scores": lambda r, kw: r.scores(**kw),
    "generate": lambda r, kw: asyncio.run(r.generate(kw.pop("prompt", "hi"), **kw)),
    "stream": lambda r, kw: asyncio.run(drained(r.stream(kw.pop("prompt", "hi"), **kw))),
}

BAD_ARGUMENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"willingness_to_pay": 0}, ValueError, "invalid willingness_to_pay: 0"),
    ({"willingness_to_pay": -1}, ValueError, "invalid willingness_to_pay: -1"),
    ({"willingness_to_pay": float("inf")}, ValueError, "invalid willingness_to_pay: inf"),
    ({"willingness_to_pay": float("nan")}, ValueError, "invalid willingness_to_pay: NaN"),
    ({"willingness_to_pay": True}, TypeError, "invalid willingness_to_pay: True"),
    ({"willingness_to_pay": "1"}, TypeError, "invalid willingness_to_pay: '1'"),
    ({"willingness_to_pay": 10**400}, ValueError, "invalid willingness_to_pay"),
    ({"prompt": b"hi"}, TypeError, "invalid prompt: b'hi'"),
    ({"prompt": bytearray(b"hi")}, TypeError, r"invalid prompt: bytearray\(b'hi'\)"),
    ({"prompt": memoryview(b"hi")}, TypeError, "invalid prompt: <memory"),
    ({"prompt": "\ud800"}, ValueError, "invalid prompt.*not valid Unicode"),
    ({"prompt": [{"content": "ok"}, {"content": "\udfff"}]}, ValueError, "invalid prompt"),
    ({"prompt": 123}, TypeError, "invalid prompt: 123"),
    ({"prompt": [{"role": "user"}]}, TypeError, "invalid prompt"),
    ({"prompt": [{"content": 5}]}, TypeError, "invalid prompt: 5"),
    ({"embedding": np.zeros(4, np.float64)}, TypeError, "invalid embedding"),
    ({"embedding": np.zeros(4, np.float16)}, TypeError, "invalid embedding"),
    ({"embedding": [0.0, 1.0]}, TypeError, "invalid embedding"),
    ({"embedding": np.zeros((2, 2), np.float32)}, ValueError, "invalid embedding: 2 dimensions"),
    ({"embedding": np.full(3, np.nan, np.float32)}, ValueError, "component 0 is NaN"),
    ({"embedding": np.array([1.0, np.inf], np.float32)}, ValueError, "component 1 is inf"),
    ({"embedding": np.zeros(10**7, np.float32)}, ValueError, "length 10000000"),
]


def _argument_id(arguments: dict[str, Any]) -> str:
    """``name=value`` without memory addresses, so every run (and each
    pytest-xdist worker) names the cases alike."""
    (name, value), *_ = arguments.items()
    return f"{name}={re.sub(r' at 0x[0-9a-f]+', '', repr(value)):.20}"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    BAD_ARGUMENTS,
    ids=[_argument_id(a) for a, _, _ in BAD_ARGUMENTS],
)
def test_every_bad_routing_argument_is_named_and_changes_nothing(
    entry: str, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    registry = contextual(embedding_dim=3)
    before = stored(registry)
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](registry, dict(arguments))
    assert stored(registry) == before


@pytest.mark.parametrize("strategy", ["ucb", "thompson"])
@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    BAD_ARGUMENTS[:12],
    ids=[_argument_id(a) for a, _, _ in BAD_ARGUMENTS[:12]],
)
def test_other_strategies_refuse_the_same_values(
    strategy: str, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    registry = ModelRegistry(selection_strategy=strategy)
    registry.register_model(priced("cheap", 5.0))
    with pytest.raises(error, match=message):
        registry.select(**arguments)
    assert registry.core.outstanding_tickets() == 0


@pytest.mark.parametrize("messages", [{"content": ""}, {"content": None}])
def test_an_endless_run_of_empty_messages_ends_like_a_long_text(messages: object) -> None:
    """Reproduction (fixed): ``select_model(prompt=itertools.repeat({"content":
    ""}))`` never returned: empty messages added nothing to the joined text,
    so the 64 KiB bound was never reached (the loop holds the GIL: not even
    Ctrl-C stops it)."""
    registry = contextual()
    assert registry.select_model(prompt=itertools.repeat(messages)).name in PRICES  # type: ignore[arg-type]


def test_a_huge_prompt_is_read_up_to_its_bound() -> None:
    registry = contextual()
    huge = "word " * 4_000_000
    assert registry.select_model(prompt=huge).name in PRICES
    assert registry.select_model(prompt=[{"content": huge}] * 1_000).name in PRICES


@pytest.mark.parametrize("willingness_to_pay", [5e-324, 1e-320, 1e-13])
def test_a_tiny_willingness_to_pay_is_refused_naming_it(willingness_to_pay: float) -> None:
    """Reproduction (fixed): ``willingness_to_pay=5e-324`` was accepted
    (finite, > 0), but expected cost / willingness_to_pay overflowed: every
    eligible model scored ``-inf`` (the mark of *not* eligible) and the pick
    among them was arbitrary. Below ``MIN_WILLINGNESS_TO_PAY`` (1e-12 USD)
    it is now a ValueError naming the field, at selection and in the
    selector's settings, and the smallest accepted value picks the cheapest."""
    registry = contextual(exploration="greedy")
    with pytest.raises(ValueError, match="invalid willingness_to_pay"):
        registry.scores(willingness_to_pay=willingness_to_pay)
    with pytest.raises(ValueError, match="invalid willingness_to_pay"):
        registry.select_model(willingness_to_pay=willingness_to_pay)
    with pytest.raises(ValueError, match="willingness_to_pay"):
        ContextualSelector(willingness_to_pay=willingness_to_pay)
    names, scores = registry.scores(willingness_to_pay=1e-12)
    assert np.isfinite(scores).all(), dict(zip(names, scores))
    assert registry.explain_selection(willingness_to_pay=1e-12).chosen == "cheap"


@pytest.mark.parametrize("exploration", ["thompson", "greedy", "ucb"])
@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -1.0])
def test_exploration_weight_is_checked_under_every_rule(exploration: str, weight: float) -> None:
    """Reproduction (fixed): ``ContextualSelector(exploration_weight=nan)``
    was accepted under Thompson and greedy (checked only for UCB)."""
    with pytest.raises(ValueError, match="invalid exploration_weight"):
        ContextualSelector(exploration=exploration, exploration_weight=weight)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("qualities", "error", "message"),
    [
        ({5: [1.0]}, TypeError, "invalid name: 5"),
        ({("cheap",): [1.0]}, TypeError, "invalid name"),
        ({"cheap": [True]}, TypeError, "invalid qualities: True"),
        ({"cheap": ["1"]}, TypeError, "invalid qualities: '1'"),
        ({"cheap": [float("nan")]}, ValueError, "invalid qualities: NaN"),
        ({"cheap": [1.5]}, ValueError, "invalid qualities: 1.5"),
        ({"cheap": [1.0, 1.0]}, ValueError, "2 values for model"),
        ({"nobody": [1.0]}, ModelNotFoundError, "nobody"),
        ({"cheap": "1"}, TypeError, "invalid qualities"),
    ],
)
def test_calibrate_names_every_bad_table_and_changes_nothing(
    qualities: dict[Any, Any], error: type[Exception], message: str
) -> None:
    """Reproduction (fixed, first row): ``calibrate(["x"], {5: [1.0]})`` raised
    ``TypeError: 'int' object is not iterable`` from difflib (the close-name
    search of ModelNotFoundError); so did ``registry.get_model(5)``."""
    registry = contextual()
    before = stored(registry)
    with pytest.raises(error, match=message):
        registry.calibrate(["what is 2+2"], qualities)
    assert stored(registry) == before


def test_get_model_names_a_non_string_name() -> None:
    with pytest.raises(TypeError, match="invalid name: 5"):
        contextual().get_model(5)  # type: ignore[arg-type]


# ----- request ids and delayed feedback -------------------------------------


def test_feedback_twice_is_unknown_the_second_time_and_changes_nothing() -> None:
    registry = contextual()
    selection = registry.select(prompt="hello")
    assert selection.request_id is not None
    assert registry.report_quality(selection.request_id, 1.0) == selection.model.name
    before = stored(registry)
    with pytest.raises(UnknownRequestError, match=str(selection.request_id)):
        registry.report_quality(selection.request_id, 0.0)
    assert stored(registry) == before


@pytest.mark.parametrize(
    ("quality", "error"),
    [
        (True, TypeError),
        (-0.1, ValueError),
        (1.1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("0.5", TypeError),
        (None, TypeError),
    ],
)
def test_bad_feedback_keeps_its_request_id_waiting(quality: object, error: type) -> None:
    registry = contextual()
    selection = registry.select(prompt="hello")
    assert selection.request_id is not None
    before = stored(registry)
    with pytest.raises(error, match="invalid quality"):
        registry.report_quality(selection.request_id, quality)  # type: ignore[arg-type]
    assert stored(registry) == before
    assert registry.report_quality(selection.request_id, 0.5) == selection.model.name


@pytest.mark.parametrize("request_id", [0, -1, 2**64, True, 1.0, "1", None])
def test_an_impossible_request_id_is_named(request_id: object) -> None:
    with pytest.raises((TypeError, ValueError), match="invalid request_id"):
        contextual().report_quality(request_id, 0.5)  # type: ignore[arg-type]


def test_feedback_after_expiry_is_unknown() -> None:
    registry = contextual(feedback_ttl_s=0.05)
    selection = registry.select(prompt="hello")
    assert selection.request_id is not None
    time.sleep(0.1)
    before = stored(registry)
    with pytest.raises(UnknownRequestError, match="expired"):
        registry.report_quality(selection.request_id, 1.0)
    assert stored(registry) == before


def test_feedback_for_an_unregistered_model_is_unknown_even_once_it_is_back() -> None:
    registry = contextual()
    selection = registry.select(prompt="hello", exclude_models=["strong"])
    assert selection.request_id is not None
    registry.unregister_model("cheap")
    with pytest.raises(UnknownRequestError):
        registry.report_quality(selection.request_id, 1.0)
    registry.register_model(priced("cheap", 5.0))
    with pytest.raises(UnknownRequestError):
        registry.report_quality(selection.request_id, 1.0)


def test_a_request_id_from_before_a_state_load_is_unknown_after_it() -> None:
    """Reproduction (fixed): ``load_router_state`` forgets pending decisions
    but restarted the id sequence at 1, so the next decision got the id of
    one made before the load, and feedback meant for the old decision
    taught the new one instead of raising UnknownRequestError (ids are now
    one sequence per process)."""
    registry = contextual()
    old = [registry.select(prompt="before the load") for _ in range(3)]
    registry.load_router_state(registry.router_state())
    new = registry.select(prompt="after the load")
    assert new.request_id not in {s.request_id for s in old}
    for selection in old:
        with pytest.raises(UnknownRequestError):
            registry.report_quality(selection.request_id, 1.0)  # type: ignore[arg-type]


def test_another_registrys_request_id_is_unknown_here() -> None:
    """Reproduction (fixed): every contextual registry numbered its decisions
    1, 2, 3...; ``registry_b.report_quality(registry_a.select(...).request_id,
    q)`` succeeded and taught registry_b's own decision of that number
    (another prompt, maybe another model). Request ids are now unique in the
    process, so the id is unknown to any other registry."""
    first, second = contextual(), contextual()
    second.select(prompt="the second registry's own decision")
    theirs = first.select(prompt="a decision of the first registry")
    assert theirs.request_id is not None
    with pytest.raises(UnknownRequestError):
        second.report_quality(theirs.request_id, 0.0)


# ----- callbacks that re-enter, and races -------------------------------------


class ReenteringMessage(Mapping[str, str]):
    """A chat message whose ``content`` lookup runs ``action`` first."""

    def __init__(self, action: Callable[[], object]) -> None:
        self.action = action

    def __getitem__(self, key: str) -> str:
        if key != "content":
            raise KeyError(key)
        self.action()
        return "hello"

    def __iter__(self) -> Iterator[str]:
        return iter(["content"])

    def __len__(self) -> int:
        return 1


def register_newcomer(registry: ModelRegistry) -> None:
    registry.register_model(priced(f"newcomer{len(registry)}", 1.0))


def unregister_any(registry: ModelRegistry) -> None:
    registry.unregister_model(max(m.name for m in registry))


def report_if_waiting(registry: ModelRegistry, request_id: int) -> None:
    with contextlib.suppress(UnknownRequestError):  # the second time: already reported
        registry.report_quality(request_id, 1.0)


REENTRIES: dict[str, Callable[[ModelRegistry, int], object]] = {
    "register": lambda r, _: register_newcomer(r),
    "unregister": lambda r, _: unregister_any(r),
    "report_quality": report_if_waiting,
    "calibrate": lambda r, _: r.calibrate(["what is 2+2"], {"cheap": [1.0]}),
    "load_router_state": lambda r, _: r.load_router_state(r.router_state()),
    "select": lambda r, _: r.select(prompt="nested"),
    "explain": lambda r, _: r.explain_selection(prompt="nested"),
}


@pytest.mark.parametrize("reentry", list(REENTRIES))
def test_a_prompt_that_reenters_the_registry_neither_deadlocks_nor_corrupts(reentry: str) -> None:
    registry = contextual()
    waiting = registry.select(prompt="earlier")
    assert waiting.request_id is not None
    message = ReenteringMessage(lambda: REENTRIES[reentry](registry, waiting.request_id))  # type: ignore[arg-type]
    selection = registry.select(prompt=[message])  # type: ignore[list-item]
    assert selection.model.name in {m.name for m in registry}
    assert selection.request_id is not None
    assert registry.report_quality(selection.request_id, 1.0) == selection.model.name
    # The same prompt while calibrating; "unregister" removes the calibrated model itself.
    if reentry == "unregister":
        with pytest.raises(ModelNotFoundError, match="cheap"):
            registry.calibrate([[message]], {"cheap": [1.0]})  # type: ignore[list-item]
    else:
        registry.calibrate([[message]], {"cheap": [1.0]})  # type: ignore[list-item]


def test_a_model_unregistered_while_calibrating_is_model_not_found() -> None:
    """Reproduction (fixed): a prompt whose message unregisters "cheap" while
    ``calibrate(..., {"cheap": [...]})`` reads it made the core raise a bare
    ``KeyError: 'no model named "cheap" is registered'``, not the documented
    ModelNotFoundError (the same window exists for a concurrent thread)."""
    registry = contextual()
    message = ReenteringMessage(lambda: registry.unregister_model("cheap"))
    with pytest.raises(ModelNotFoundError, match="cheap"):
        registry.calibrate([[message]], {"cheap": [1.0]})  # type: ignore[list-item]


def test_an_exception_raised_by_a_message_itself_is_not_masked() -> None:
    """Reproduction (fixed): a message whose ``content`` lookup raised
    ``RuntimeError("backend down")`` surfaced as ``TypeError: invalid prompt:
    ... (chat messages must be mappings ...)``: the binding replaced every
    exception of the lookup, hiding the real cause (here a reentrant call's
    DuplicateModelError became a type error)."""

    def fail() -> None:
        raise RuntimeError("backend down")

    registry = contextual()
    with pytest.raises(RuntimeError, match="backend down"):
        registry.select(prompt=[ReenteringMessage(fail)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="chat messages must be mappings"):
        registry.select(prompt=[{"role": "user"}])
    assert registry.core.outstanding_tickets() == 0


def test_register_unregister_race_contextual_select_feedback_and_calibrate() -> None:
    """Five threads for a few seconds: selection with prompts, feedback for
    their ids, register/unregister churn, calibrate and state reloads. Every
    exception is one the API documents; afterwards every registered model
    is scored and feedback still works."""
    registry = ModelRegistry(model_selector=ContextualSelector(hash_bits=10, seed=3))
    for i in range(4):
        registry.register_model(priced(f"base{i}", 1.0 + i))
    expected = (NoEligibleModelsError, UnknownRequestError, ModelNotFoundError, DuplicateModelError)
    unexpected: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def guarded(body: Callable[[int], None]) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(id(body))
            while time.monotonic() < stop:
                try:
                    body(rng.randrange(1_000))
                except expected:
                    pass
                except BaseException as exc:  # collected and asserted below
                    unexpected.append(exc)

        return run

    def select(i: int) -> None:
        selection = registry.select(prompt=f"prompt {i}", willingness_to_pay=0.01 + i / 100)
        with lock:
            ids.append(selection.request_id)  # type: ignore[arg-type]

    def report(i: int) -> None:
        with lock:
            request_id = ids.pop() if ids else None
        if request_id is not None:
            registry.report_quality(request_id, i / 1_000)

    def churn(i: int) -> None:
        registry.register_model(priced(f"churn{i % 3}", 2.0))
        registry.unregister_model(f"churn{(i + 1) % 3}")

    def calibrate(i: int) -> None:
        registry.calibrate(["a", "b"], {"base0": [1.0, 0.0], "base1": [i / 1_000, 0.5]})
        registry.load_router_state(registry.router_state())

    bodies = (select, select, report, churn, calibrate)
    threads = [threading.Thread(target=guarded(body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert unexpected == []
    names, scores = registry.scores(prompt="hi")
    assert sorted(names) == sorted(m.name for m in registry)
    assert np.isfinite(scores).all()
    selection = registry.select(prompt="after the race")
    assert registry.report_quality(selection.request_id, 1.0) == selection.model.name  # type: ignore[arg-type]


def test_a_prompt_that_blocks_holds_up_no_other_selection() -> None:
    """A message whose ``content`` lookup blocks (a lazy loader waiting on
    I/O) in one thread: other threads still select, report and explain,
    since the prompt is read before the core's lock is taken."""
    registry = contextual()
    entered, release = threading.Event(), threading.Event()

    def block() -> None:
        entered.set()
        release.wait()

    blocked: list[object] = []
    thread = threading.Thread(
        target=lambda: blocked.append(registry.select(prompt=[ReenteringMessage(block)]))  # type: ignore[list-item]
    )
    thread.start()
    try:
        assert entered.wait(30)
        selection = registry.select(prompt="meanwhile")
        assert registry.report_quality(selection.request_id, 1.0) == selection.model.name  # type: ignore[arg-type]
        registry.calibrate(["meanwhile"], {"cheap": [1.0]})
        assert registry.explain_selection(prompt="meanwhile").chosen in PRICES
    finally:
        release.set()
        thread.join()
    assert len(blocked) == 1


async def test_a_half_open_probe_selected_and_never_called_is_released() -> None:
    """Contextual strategy, one model whose breaker is half-open: a task
    that selects it with a prompt and never calls it blocks no probe; a
    ``select()`` (the caller's own probe) never reported blocks it only until
    ``pending_timeout``, and then every reading says it is eligible again."""
    monitor = ModelHealthMonitor(failure_threshold=1, recovery_threshold=1, base_cooldown=30)
    registry = ModelRegistry(
        model_selector=ContextualSelector(hash_bits=10), health_monitor=monitor
    )
    registry.core.use_virtual_clock()
    model = priced("only", 5.0)
    registry.register_model(model)
    model.fail = ServerError("down")
    with pytest.raises(ServerError):
        await model.generate_response("hi")
    model.fail = None
    registry.core.advance_clock(31.0)
    abandoned = contextvars.Context()
    assert abandoned.run(registry.select_model, prompt="never called") is model
    assert registry.explain_selection(prompt="x").chosen == "only"
    probe = registry.select(prompt="the caller's own probe")
    with pytest.raises(NoEligibleModelsError, match="probe is in flight"):
        registry.select(prompt="while the probe is out")
    registry.core.advance_clock(601.0)  # past pending_timeout: the probe's ticket expired
    assert registry.explain_selection(prompt="x").chosen == "only"
    assert registry.get_metrics("only").pending == 0
    # The ticket expired, the decision did not (feedback_ttl_s is an hour).
    assert registry.report_quality(probe.request_id or 0, 1.0) == "only"


def test_report_many_with_qualities_teaches_the_router_like_report_outcome() -> None:
    """Reproduction: ``report_outcome(selection, ..., quality=q)`` teaches the
    router and closes the request id ("outcome and quality, one step"), but
    its batch form ``report_many(select_many(3, prompt=...), ...,
    qualities=[...])`` leaves the router unchanged and every id open: the
    qualities are dropped for routing without a word, and a later
    ``report_quality`` for the same decision is accepted as if none came."""
    registry = contextual()
    registry.core.use_virtual_clock()
    picked = registry.select_many(3, prompt="batch")
    before = registry.router_state()
    registry.report_many(picked, [True] * 3, [0.1] * 3, qualities=[1.0, 0.0, 0.5])
    assert registry.router_state() != before
    for selection in picked:
        with pytest.raises(UnknownRequestError):
            registry.report_quality(selection.request_id, 1.0)  # type: ignore[arg-type]


def test_a_refused_second_report_changes_nothing() -> None:
    registry = contextual()
    registry.core.use_virtual_clock()
    selection = registry.select(prompt="once")
    registry.report_outcome(selection, True, 0.1)
    metrics, state = registry.get_metrics(selection.model.name), registry.router_state()
    with pytest.raises(StaleTicketError):
        registry.report_outcome(selection, True, 0.1, quality=1.0)
    assert registry.get_metrics(selection.model.name) == metrics
    assert registry.router_state() == state
