"""Session affinity in one registry: a ``session_id`` stays on its model
while that model is healthy, within its rate limits and allowed by the
request; otherwise it moves and is re-bound. Sessions expire, are bounded,
never outlive their model, and every bad value is refused by name."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from orchestrator import _core
from orchestrator.core.model import Model, ModelConstraints
from orchestrator.errors import NoEligibleModelsError, StaleTicketError
from orchestrator.models.model_registry import ModelRegistry, ModelSelector
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)


def registry_of(*names: str, **kwargs: Any) -> ModelRegistry:
    """A registry of scripted models on the core's virtual clock."""
    registry = ModelRegistry(**kwargs)
    registry.core.use_virtual_clock()
    for name in names:
        registry.register_model(ScriptedModel(name))
    return registry


def turn(registry: ModelRegistry, session_id: str, **constraints: Any) -> str:
    """One selection in the session, reported as a success; the model's name."""
    selection = registry.select(session_id=session_id, **constraints)
    registry.report_outcome(selection, True, 0.1)
    return selection.model.name


def open_breaker(registry: ModelRegistry, name: str) -> None:
    for _ in range(3):
        registry.report_outcome(name, False, 0.1, error_class="server_error")


def test_a_session_stays_on_its_model_while_it_is_healthy() -> None:
    registry = registry_of("a", "b", "c")
    first = turn(registry, "chat-1")
    # Without the session, forced trials would spread these over b and c.
    assert [turn(registry, "chat-1") for _ in range(20)] == [first] * 20
    registry.core.advance_clock(12.0)
    explanation = registry.explain_selection(session_id="chat-1")
    assert explanation.chosen == first
    assert explanation.session == f"session: kept on {first} (bound 12 s ago)"
    assert f"; session: kept on {first}" in str(explanation)
    assert registry.select_model(session_id="chat-1").name == first
    assert registry.explain_selection().session is None


def test_every_entry_point_takes_a_session() -> None:
    registry = registry_of("a", "b")
    name = registry.select_model(session_id="s").name
    assert registry.select(session_id="s").model.name == name
    many = registry.select_many(3, session_id="s")
    assert [s.model.name for s in many] == [name] * 3
    registry.report_many(many, [True] * 3, [0.1] * 3)
    constraints = ModelConstraints(session_id="s")
    assert registry.select_model(constraints=constraints).name == name
    names, scores = registry.scores(session_id="s")
    assert sorted(names) == ["a", "b"] and len(scores) == 2
    with pytest.raises(TypeError, match="either constraints or"):
        registry.select_model(constraints=constraints, session_id="s")


def test_a_session_moves_when_its_breaker_opens() -> None:
    registry = registry_of("a", "b")
    first = turn(registry, "s")
    open_breaker(registry, first)
    explanation = registry.explain_selection(session_id="s")
    assert explanation.session is not None
    assert explanation.session.startswith(f"session: moved from {first} (circuit open")
    moved = turn(registry, "s")
    assert moved != first
    slot = registry.core.slot_of(first)
    assert slot is not None
    registry.core.record_health_check(slot, True)
    assert turn(registry, "s") == moved, "re-bound to the new model"


def test_a_session_moves_when_its_rate_limit_fills() -> None:
    registry = ModelRegistry()
    registry.core.use_virtual_clock()
    registry.register_model(ScriptedModel("limited", rpm=2))
    registry.register_model(ScriptedModel("spare"))
    assert turn(registry, "s", exclude_models=["spare"]) == "limited"
    assert turn(registry, "s") == "limited"
    explanation = registry.explain_selection(session_id="s")
    assert explanation.session == (
        "session: moved from limited (2/2 requests in the last minute (rpm), next slot in 60.0 s)"
    )
    assert turn(registry, "s") == "spare"


def test_a_session_moves_when_the_request_excludes_its_model() -> None:
    registry = registry_of("a", "b")
    first = turn(registry, "s")
    other = "b" if first == "a" else "a"
    assert turn(registry, "s", exclude_models=[first]) == other
    assert turn(registry, "s") == other
    with pytest.raises(NoEligibleModelsError):
        registry.select(session_id="s", exclude_models=["a", "b"])
    assert turn(registry, "s") == other, "a failed selection binds nothing"


def test_unregistering_drops_the_session_and_a_recycled_slot_inherits_none() -> None:
    registry = registry_of("a", "b")
    first = turn(registry, "s")
    slot = registry.core.slot_of(first)
    registry.unregister_model(first)
    assert registry.core.session_counts()[0] == 0
    registry.register_model(ScriptedModel("newcomer"))
    assert registry.core.slot_of("newcomer") == slot
    explanation = registry.explain_selection(session_id="s")
    assert explanation.session == "session: new, bound to the pick"


def test_a_session_expires_after_its_idle_ttl() -> None:
    registry = registry_of("a", "b", session_ttl=30.0)
    first = turn(registry, "s")
    registry.core.advance_clock(29.0)
    assert turn(registry, "s") == first, "a selection restarts the TTL"
    # Not at exactly 30 s: the virtual clock starts at a real time, so an
    # idle time of 30 s sums to 30 give or take its rounding.
    registry.core.advance_clock(29.9)
    assert registry.explain_selection(session_id="s").session is not None
    assert "kept" in str(registry.explain_selection(session_id="s").session)
    registry.core.advance_clock(0.2)
    assert registry.explain_selection(session_id="s").session == "session: new, bound to the pick"


def test_a_hundred_thousand_random_ids_hold_at_most_max_sessions() -> None:
    registry = registry_of("a", "b", max_sessions=1000)
    for i in range(100_000):
        registry.cancel(registry.select(session_id=f"attacker-{i * 7919:x}"))
    held, evicted, allocated = registry.core.session_counts()
    assert held == 1000
    assert allocated <= 1000
    assert evicted == 99_000


def test_the_contextual_strategy_keeps_a_session() -> None:
    registry = registry_of("a", "b", "c", selection_strategy="contextual")
    first = registry.select(session_id="s", prompt="hello")
    for prompt in ["write code", "a poem", "sql please"] * 5:
        selection = registry.select(session_id="s", prompt=prompt)
        assert selection.model.name == first.model.name
        assert selection.request_id is not None
        registry.report_outcome(selection, True, 0.1, quality=0.0)
    assert registry.explain_selection(session_id="s", prompt="x").chosen == first.model.name
    open_breaker(registry, first.model.name)
    assert registry.select(session_id="s").model.name != first.model.name


class _Last(ModelSelector):
    """A user-written selector: always the last eligible candidate."""

    strategy = None

    def choose(self, eligible: Sequence[Model], constraints: Any, registry: Any) -> Model:
        return eligible[-1]


def test_a_user_written_selector_keeps_a_session_too() -> None:
    registry = ModelRegistry(model_selector=_Last())
    registry.core.use_virtual_clock()
    for name in ("a", "b", "c"):
        registry.register_model(ScriptedModel(name))
    assert registry.select_model(session_id="s", exclude_models=["c"]).name == "b"
    assert registry.select_model(session_id="s").name == "b", "kept, not the selector's c"
    open_breaker(registry, "b")
    assert registry.select_model(session_id="s").name == "c"


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (b"s", TypeError, "invalid session_id: b's' (a str is required, got bytes)"),
        (7, TypeError, "invalid session_id: 7 (a str is required, got int)"),
        (True, TypeError, "invalid session_id: True (a str is required, got bool)"),
        (["s"], TypeError, "invalid session_id: ['s'] (a str is required, got list)"),
        ("", ValueError, 'invalid session_id: "" (empty)'),
        ("x" * 257, ValueError, "longer than 256 bytes of UTF-8"),
        ("é" * 129, ValueError, "longer than 256 bytes of UTF-8"),
        ("a\x00b", ValueError, 'invalid session_id: "a\\0b" (has a control character)'),
        ("\ud800", ValueError, "invalid session_id: not valid Unicode"),
    ],
)
def test_a_bad_session_id_is_refused_by_name_at_every_entry_point(
    value: Any, error: type[Exception], text: str
) -> None:
    registry = registry_of("a")
    calls: list[Callable[[], object]] = [
        lambda: registry.select_model(session_id=value),
        lambda: registry.select(session_id=value),
        lambda: registry.select_many(2, session_id=value),
        lambda: registry.explain_selection(session_id=value),
        lambda: registry.scores(session_id=value),
        lambda: _core.Request(session_id=value),
    ]
    for call in calls:
        with pytest.raises(error) as info:
            call()
        assert text in str(info.value)
    with pytest.raises(ValueError, match="session_id"):
        ModelConstraints(session_id=value)
    assert registry.core.session_counts()[0] == 0
    assert registry.core.pending(0) == 0, "a refused request selects nothing"


def test_a_str_subclass_is_not_a_session_id() -> None:
    class Lying(str):
        def __str__(self) -> str:
            return "other"

    with pytest.raises(TypeError, match="got Lying"):
        registry_of("a").select_model(session_id=Lying("s"))


@pytest.mark.parametrize(
    ("keyword", "value", "error"),
    [
        ("session_ttl", 0, ValueError),
        ("session_ttl", -1.0, ValueError),
        ("session_ttl", float("nan"), ValueError),
        ("session_ttl", float("inf"), ValueError),
        ("session_ttl", 31 * 86400.0, ValueError),
        ("session_ttl", True, TypeError),
        ("session_ttl", "60", TypeError),
        ("max_sessions", 0, ValueError),
        ("max_sessions", 10**7 + 1, ValueError),
        ("max_sessions", 10**30, ValueError),
        ("max_sessions", 2.0, TypeError),
        ("max_sessions", True, TypeError),
    ],
)
def test_bad_session_settings_name_the_field(keyword: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=f"invalid {keyword}"):
        ModelRegistry(**{keyword: value})


def test_a_smaller_bound_evicts_the_least_recently_used_now() -> None:
    registry = registry_of("a", "b")
    for i in range(10):
        registry.cancel(registry.select(session_id=f"s{i}"))
    registry.core.configure_sessions(3600.0, 4)
    assert registry.core.session_counts()[0] == 4


def test_threads_racing_selections_with_registration_never_return_a_stale_binding() -> None:
    registry = registry_of("m0", "m1", "m2", "m3")
    stop = threading.Event()
    errors: list[BaseException] = []

    def select_in_sessions(worker: int) -> None:
        try:
            for round_ in range(3000):
                session = f"w{worker}-{round_ % 16}"
                try:
                    selection = registry.select(session_id=session)
                except NoEligibleModelsError:
                    continue
                # Unregistered since (the churn): the ticket went with it.
                with contextlib.suppress(StaleTicketError):
                    registry.cancel(selection)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def churn() -> None:
        generation = 0
        try:
            while not stop.is_set():
                name = f"m{generation % 4}"
                registry.unregister_model(name)
                registry.register_model(ScriptedModel(name))
                generation += 1
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=select_in_sessions, args=(i,)) for i in range(3)]
    churner = threading.Thread(target=churn)
    churner.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    churner.join()
    assert errors == []
    for index in range(3):
        for session in range(16):
            note = registry.explain_selection(session_id=f"w{index}-{session}").session
            assert note is not None
            if note.startswith("session: kept on "):
                kept = note.split()[3]
                assert kept in registry
                # The binding is of the model registered now, not of one
                # that held the slot before: selecting goes there.
                assert registry.select_model(session_id=f"w{index}-{session}").name == kept
