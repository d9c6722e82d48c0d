"""Breaker transitions cross the Rust-Python boundary as the
``_core.Transition`` enum (``None`` when the breaker did not change), not as
integer codes that Python maps back: every reporting entry point returns one,
and the health callbacks get its state name."""

from __future__ import annotations

import pytest

from orchestrator import _core
from tests.contract.helpers import fleet

pytestmark = pytest.mark.timeout(30)


def test_report_record_and_health_checks_return_the_transition_by_name() -> None:
    registry = fleet("a", "b")
    core = registry.core
    seen: list[tuple[str, str]] = []
    registry.health_monitor.on_transition(lambda model, state: seen.append((model.name, state)))
    model_a = core.model(0)
    failures = [
        core.report(model_a, 0, 0, False, 0.1, error_class="server_error") for _ in range(3)
    ]
    assert failures == [None, None, _core.Transition.OPENED]
    assert core.record_health_check(0, True) == _core.Transition.HALF_OPENED
    assert core.record_health_check(0, True) is None
    closing = [core.report(model_a, 0, 0, True, 0.1) for _ in range(2)]
    assert closing == [None, _core.Transition.CLOSED]
    transitions = core.report_many([1, 1, 1], [0, 0, 0], [False] * 3, [0.1] * 3)
    assert transitions == [None, None, _core.Transition.OPENED]
    for _ in range(3):
        registry.report_outcome("a", False, 0.1, error_class="server_error")
    assert seen == [("a", "opened")]


def test_a_transition_is_an_enum_not_an_integer() -> None:
    opened = _core.Transition.OPENED
    assert opened == _core.Transition.OPENED
    assert opened != 1
    assert opened != _core.Transition.CLOSED
    assert repr(opened) == "Transition.OPENED"
    assert len({opened, _core.Transition.OPENED, _core.Transition.HALF_OPENED}) == 2
    states = [t.state for t in (opened, _core.Transition.HALF_OPENED, _core.Transition.CLOSED)]
    assert states == ["opened", "half_open", "closed"]
