"""The core's side of rate limits shared across workers, without Redis: a
shared window admits only within its lease, a refusal says so, and every
call the lease thread makes refuses a bad value by name."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import _core
from orchestrator.errors import NoEligibleModelsError, UnknownSlotError
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.shared_leases import SharedLeases
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(30)


def shared_registry(**limits: Any) -> ModelRegistry:
    """A local registry whose model ``a`` is shared (as the lease thread would)."""
    registry = ModelRegistry()
    registry.core.use_virtual_clock()
    registry.register_model(ScriptedModel("a", **limits))
    registry.core.share_limits(0, 0.5)
    return registry


def test_a_spent_lease_is_a_rate_limit_with_the_next_top_up() -> None:
    registry = shared_registry(rpm=100)
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model()
    assert info.value.reasons == {
        "a": "rate_limit: this worker's lease of the shared window holds 0 requests "
        "(the request needs 1), next top-up within 0.5 s"
    }
    assert info.value.retry_in == 0.5
    registry.core.grant_lease(0, "requests", 1, 1, 30.0)
    selection = registry.select()
    assert registry.core.shared_limits(0) == {
        "requests_available": 0,
        "requests_grants": 1,
        "requests_debt": 0,
        "requests_wanted": 0,
        "tokens_available": 0,
        "tokens_grants": 0,
        "tokens_debt": 0,
        "tokens_wanted": 0,
        "fallback": None,
        "unrecorded": False,
    }
    registry.cancel(selection)  # a cache hit: the request goes back to its grant
    assert registry.core.take_lease_returns(0) == ([(1, 1)], [])


def test_a_token_request_larger_than_the_lease_is_remembered_for_the_top_up() -> None:
    registry = shared_registry(tpm=100_000)
    registry.core.grant_lease(0, "tokens", 1, 500, 30.0)
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(input_tokens=4000, output_tokens=1000)
    state = registry.core.shared_limits(0)
    assert state is not None and state["tokens_wanted"] == 5000


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.set_rate_limit_window(0.0), "window"),
        (lambda c: c.set_rate_limit_window(float("nan")), "window"),
        (lambda c: c.set_rate_limit_window(True), "window"),
        (lambda c: c.set_rate_limit_window("60"), "window"),
        (lambda c: c.set_rate_limit_window(1e9), "window"),
        (lambda c: c.share_limits(0, -1.0), "top_up_in"),
        (lambda c: c.grant_lease(0, "calls", 1, 1, 1.0), "kind"),
        (lambda c: c.grant_lease(0, b"requests", 1, 1, 1.0), "kind"),
        (lambda c: c.grant_lease(0, "requests", 0, 1, 1.0), "grant"),
        (lambda c: c.grant_lease(0, "requests", 1, -1, 1.0), "amount"),
        (lambda c: c.grant_lease(0, "requests", 1, 2**60, 1.0), "amount"),
        (lambda c: c.grant_lease(0, "requests", 1, True, 1.0), "amount"),
        (lambda c: c.grant_lease(0, "requests", 1, 1, float("inf")), "expires_in"),
        (lambda c: c.grant_lease(0, "requests", 1, 1, -1.0), "expires_in"),
        (lambda c: c.fall_back_limits(0, rpm=0), "rpm"),
        (lambda c: c.fall_back_limits(0, tpm=1.5), "tpm"),
    ],
)
def test_every_lease_call_names_a_bad_value(call: Any, field: str) -> None:
    core = shared_registry(rpm=10).core
    with pytest.raises((ValueError, TypeError)) as info:
        call(core)
    assert field in str(info.value)


def test_an_unknown_slot_is_named() -> None:
    with pytest.raises(UnknownSlotError, match="slot 7"):
        shared_registry(rpm=10).core.share_limits(7, 0.5)


def test_an_unshared_model_has_no_lease_to_give_back() -> None:
    registry = ModelRegistry()
    registry.register_model(ScriptedModel("a", rpm=10))
    assert registry.core.shared_limits(0) is None
    with pytest.raises(ValueError, match="not shared"):
        registry.core.take_lease_returns(0)
    assert registry.core.unshare_limits(0) == ([], [])
    assert registry.core.rate_limit_window() == _core.RATE_LIMIT_WINDOW_S


def test_a_grant_beyond_the_most_a_lease_holds_is_refused() -> None:
    core = shared_registry(rpm=10).core
    for grant in range(1, _core.MAX_LEASE_GRANTS + 1):
        core.grant_lease(0, "requests", grant, 1, 30.0)
    with pytest.raises(ValueError, match="at most"):
        core.grant_lease(0, "requests", 99, 1, 30.0)
    other = shared_registry(rpm=10).core
    other.grant_lease(0, "requests", 1, 1, 30.0)
    with pytest.raises(ValueError, match="already held"):
        other.grant_lease(0, "requests", 1, 1, 30.0)


@pytest.mark.parametrize("divisor", [0, -1, 1025, 2.0, True, "4"])
def test_the_lease_divisor_is_checked(divisor: Any) -> None:
    registry = ModelRegistry()
    with pytest.raises(ValueError, match="lease_divisor"):
        SharedLeases(registry.core, lambda keys, args: None, "p", "w", 0.5, divisor=divisor)
