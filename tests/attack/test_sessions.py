"""Attacks on session affinity and tags in one registry: wrong types and
extreme values at every entry point, the LRU bound under 100k random ids,
recycled slots, and threads racing selections with registration and breaker
trips (a kept session must never return an ineligible model)."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator import _core
from orchestrator.core.model import Model, ModelConstraints
from orchestrator.errors import ModelNotFoundError, NoEligibleModelsError, StaleTicketError
from orchestrator.models.model_registry import ModelRegistry
from tests.affinity.test_affinity import registry_of
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)


class LyingStr(str):
    """A str subclass whose text, hash and equality lie about its value."""

    def __str__(self) -> str:
        return "someone-else"

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return True


def bound_model(registry: ModelRegistry, session_id: str) -> str | None:
    """The model ``session_id`` is kept on now (``None``: not bound)."""
    note = registry.explain_selection(session_id=session_id).session
    assert note is not None
    if not note.startswith("session: kept on "):
        return None
    return note.removeprefix("session: kept on ").split(" ")[0]


BAD_SESSION_IDS: list[tuple[object, type[Exception]]] = [
    (LyingStr("chat"), TypeError),
    (b"chat", TypeError),
    (bytearray(b"chat"), TypeError),
    ("x" * 257, ValueError),
    ("é" * 129, ValueError),  # 258 bytes in 129 characters
    ("a\x00b", ValueError),
    ("a\x1bb", ValueError),
    ("\x7f", ValueError),
    ("\x9f", ValueError),
    ("\ud800", ValueError),
    ("", ValueError),
    (True, TypeError),
    (float("nan"), TypeError),
    (2**70, TypeError),
    (["chat"], TypeError),
]


@pytest.mark.parametrize(("value", "error"), BAD_SESSION_IDS)
def test_a_bad_session_id_is_refused_by_name_and_binds_nothing(
    value: Any, error: type[Exception]
) -> None:
    registry = registry_of("a", "b")
    registry.select(session_id="existing")
    before = registry.core.session_counts()
    calls: list[Callable[[], object]] = [
        lambda: registry.select_model(session_id=value),
        lambda: registry.select(session_id=value),
        lambda: registry.select_many(2, session_id=value),
        lambda: registry.explain_selection(session_id=value),
        lambda: registry.scores(session_id=value),
    ]
    for call in calls:
        with pytest.raises(error, match="session_id"):
            call()
    assert registry.core.session_counts() == before


def test_the_longest_session_ids_are_accepted() -> None:
    registry = registry_of("a", "b")
    for value in ("x" * 256, "é" * 128, "\U0001f600" * 64, "\u2028 line separator"):
        first = registry.select(session_id=value).model.name
        assert bound_model(registry, value) == first


@pytest.mark.parametrize("value", [LyingStr("chat"), "a\nb", "x" * 257])
def test_model_constraints_refuse_the_session_ids_the_keywords_refuse(value: str) -> None:
    """``ModelConstraints(session_id=...)`` is one of the entry points: the same
    values the keyword refuses are refused there, by name."""
    with pytest.raises((TypeError, ValueError), match="session_id"):
        ModelConstraints(session_id=value)


@pytest.mark.parametrize(
    ("keyword", "value", "error", "bound"),
    [
        ("session_ttl", float("nan"), ValueError, "2592000"),
        ("session_ttl", 2**70, ValueError, "2592000"),
        ("session_ttl", True, TypeError, None),
        ("session_ttl", 0, ValueError, "2592000"),
        ("max_sessions", 2**70, ValueError, "10000000"),
        ("max_sessions", -1, ValueError, "10000000"),
        ("max_sessions", 10**7 + 1, ValueError, "10000000"),
        ("max_sessions", True, TypeError, None),
        ("max_sessions", 1.0, TypeError, None),
    ],
)
def test_bad_session_settings_name_the_field_and_the_real_bound(
    keyword: str, value: Any, error: type[Exception], bound: str | None
) -> None:
    with pytest.raises(error, match=keyword) as raised:
        ModelRegistry(**{keyword: value})
    if bound is not None:
        assert bound in str(raised.value), f"the message states another range: {raised.value}"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("eu", TypeError),
        (b"eu", TypeError),
        ([LyingStr("eu")], TypeError),
        ([b"eu"], TypeError),
        (["EU"], ValueError),
        (["a" * 65], ValueError),
        ([""], ValueError),
        (["eu\n"], ValueError),
        ([True], TypeError),
    ],
)
def test_bad_tags_are_refused_by_name_on_models_and_requests(
    value: Any, error: type[Exception]
) -> None:
    registry = registry_of("a")
    with pytest.raises(error, match="tags"):
        Model.__init__(ScriptedModel("m"), name="m", provider="p", tags=value)
    with pytest.raises(error, match="tags"):
        registry.select_model(tags=value)
    with pytest.raises(error, match="tags"):
        _core.check_tags(value)


def test_the_sixty_fifth_distinct_tag_is_refused_and_changes_nothing() -> None:
    registry = ModelRegistry()
    for index in range(64):
        model = ScriptedModel(f"m{index}")
        model.tags = (f"t{index}",)
        registry.register_model(model)
    extra = ScriptedModel("extra")
    extra.tags = ("t64",)
    with pytest.raises(ValueError, match=r"invalid tags: \"t64\" would be tag number 65"):
        registry.register_model(extra)
    assert "extra" not in [m.name for m in registry.list_models()]
    assert registry.select_model(tags=["t63"]).name == "m63"
    # Unregistering frees a tag for a newcomer.
    registry.unregister_model("m0")
    registry.register_model(extra)
    assert registry.select_model(tags=["t64"]).name == "extra"
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(tags=["t0"])


def test_a_hundred_thousand_random_ids_keep_the_bound_and_the_lru_order() -> None:
    registry = registry_of("a", "b", "c", max_sessions=1000)
    rng = random.Random(14)
    registry.select(session_id="kept-warm")
    for index in range(100_000):
        session = f"{rng.getrandbits(64):016x}"
        registry.report_outcome(registry.select(session_id=session), True, 0.1)
        if index % 500 == 0:  # used more often than the bound turns over
            registry.report_outcome(registry.select(session_id="kept-warm"), True, 0.1)
        held, _evicted, allocated = registry.core.session_counts()
        assert held <= 1000 and allocated <= 1000
    held, evicted, _ = registry.core.session_counts()
    assert held == 1000
    assert evicted == 100_001 - 1000
    assert bound_model(registry, "kept-warm") is not None, "the recently used one was evicted"


def test_a_session_of_an_unregistered_model_does_not_follow_its_name_back() -> None:
    registry = registry_of("a", "b")
    first = registry.select(session_id="s").model.name
    other = "b" if first == "a" else "a"
    registry.unregister_model(first)
    assert registry.select(session_id="s").model.name == other
    registry.register_model(ScriptedModel(first))  # the same name, a recycled slot
    assert bound_model(registry, "s") == other
    registry.unregister_model(other)
    registry.register_model(ScriptedModel(other))
    note = registry.explain_selection(session_id="s").session
    assert note == "session: new, bound to the pick"


def test_threads_racing_sessions_with_breaker_trips_never_get_an_open_breaker() -> None:
    """Selections in kept sessions race threads that open breakers (never
    closed again on the virtual clock) and re-register models: a selection
    that began after a breaker opened never returns that model instance."""
    names = [f"m{i}" for i in range(6)]
    registry = registry_of(*names)
    opened: dict[int, int] = {}  # id(model) -> sequence number when its breaker opened
    tripped: list[Model] = []  # kept alive, so no later model reuses an id
    sequence = [0]
    lock = threading.Lock()
    violations: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def trip_breakers() -> None:
        try:
            for round_ in range(200):
                name = names[round_ % len(names)]
                try:
                    model = registry.get_model(name)
                except (ModelNotFoundError, StaleTicketError):
                    continue
                for _ in range(3):
                    registry.report_outcome(name, False, 0.1, error_class="server_error")
                with lock:
                    sequence[0] += 1
                    opened.setdefault(id(model), sequence[0])
                    tripped.append(model)
                if round_ % 3 == 0:
                    registry.unregister_model(name)
                    registry.register_model(ScriptedModel(name))
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def select_in_sessions(worker: int) -> None:
        try:
            turn = 0
            while not stop.is_set():
                turn += 1
                with lock:
                    started = sequence[0]
                try:
                    selection = registry.select(session_id=f"w{worker}-{turn % 8}")
                except NoEligibleModelsError:
                    continue
                model = selection.model
                with lock:
                    trip = opened.get(id(model))
                if trip is not None and trip <= started:
                    violations.append(
                        f"{model.name} (breaker opened at {trip}, select at {started})"
                    )
                with contextlib.suppress(ModelNotFoundError, StaleTicketError):
                    registry.cancel(selection)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=select_in_sessions, args=(i,)) for i in range(3)]
    tripper = threading.Thread(target=trip_breakers)
    for thread in threads:
        thread.start()
    tripper.start()
    tripper.join()
    for thread in threads:
        thread.join()
    assert errors == []
    assert violations == []
    # The tickets of selections whose model was unregistered meanwhile expire.
    registry.core.advance_clock(10_000.0)
    registry.core.sweep()
    assert registry.core.outstanding_tickets() == 0


def test_cancelling_a_selection_of_a_replaced_model_says_it_is_stale() -> None:
    """A selection made before its model was unregistered and a model of the
    same name registered again is stale: ``report_outcome`` says so
    (``StaleTicketError``), and so must ``cancel``, rather than claiming no
    model of that name is registered ("did you mean 'a'?")."""
    registry = registry_of("a", "b")
    selection = registry.select(session_id="s")
    name = selection.model.name
    registry.unregister_model(name)
    registry.register_model(ScriptedModel(name))
    with pytest.raises(StaleTicketError):
        registry.report_outcome(selection, True, 0.1)
    with pytest.raises(StaleTicketError):
        registry.cancel(selection)
    assert registry.get_metrics(name).pending == 0


def test_a_session_leaves_a_model_that_lacks_a_required_tag() -> None:
    registry = ModelRegistry()
    registry.core.use_virtual_clock()
    for name, tags in (("plain", ()), ("eu", ("eu",))):
        model = ScriptedModel(name)
        model.tags = tags
        registry.register_model(model)
    assert registry.select_model(session_id="s", exclude_models=["eu"]).name == "plain"
    assert registry.select_model(session_id="s", tags=["eu"]).name == "eu"
    assert bound_model(registry, "s") == "eu", "moved, and bound to the pick"
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(session_id="s", tags=["us"])
    assert bound_model(registry, "s") == "eu", "a failed selection binds nothing"


@pytest.mark.parametrize("value", ["eu", [b"eu"], ["EU"], [LyingStr("eu")]])
def test_bad_tags_are_refused_at_every_entry_point_and_bind_nothing(value: Any) -> None:
    registry = registry_of("a", "b")
    before = registry.core.session_counts()
    calls: list[Callable[[], object]] = [
        lambda: registry.select_model(tags=value, session_id="t"),
        lambda: registry.select(tags=value, session_id="t"),
        lambda: registry.select_many(2, tags=value, session_id="t"),
        lambda: registry.explain_selection(tags=value, session_id="t"),
        lambda: registry.scores(tags=value, session_id="t"),
        lambda: ModelConstraints(tags=value).request(),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError), match="tags"):
            call()
    assert registry.core.session_counts() == before
    assert registry.core.outstanding_tickets() == 0


def test_a_session_is_kept_for_exactly_its_ttl_whatever_the_clock_reads() -> None:
    """A session expires *after* ``session_ttl`` idle seconds. The core's
    clock starts frozen at its reading (some microseconds) and the idle time
    is a float difference, so at exactly the TTL the session is kept or
    forgotten by rounding (about one registry in five): the boundary must not
    depend on the reading (tests/affinity's idle-TTL test flakes on it)."""
    forgotten = 0
    for _ in range(200):
        registry = registry_of("a", "b", session_ttl=30.0)
        registry.select(session_id="s")
        registry.core.advance_clock(29.0)
        registry.select(session_id="s")
        registry.core.advance_clock(30.0)
        forgotten += bound_model(registry, "s") is None
    assert forgotten == 0
