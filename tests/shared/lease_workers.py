"""Worker processes of the shared rate-limit tests (importable by ``spawn``).

Each worker registers one rate-limited simulated model against a shared
Redis, with the core's rate-limit window shortened to ``window`` seconds (a
core parameter, so the tests run in seconds and the windows are real), and
selects as fast as it can for ``seconds``. It returns when each admitted
request was sent (wall clock, comparable across processes), how many were
refused and attempted, and what its leases did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Optional

from orchestrator.core.budgets import BudgetScope
from orchestrator.core.model import ModelCost
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ModelRegistry, Selection
from tests.shared.workers import CountWarnings, SimModel

#: Tokens every simulated request reserves and reports.
REQUEST_TOKENS = 100


def limited_registry(
    url: str,
    namespace: str,
    window: float,
    rpm: Optional[int] = None,
    tpm: Optional[int] = None,
    sync_interval: float = 0.05,
) -> ModelRegistry:
    """A registry sharing ``url`` with one model ``"m"`` limited to ``rpm``/``tpm``
    per ``window`` seconds."""
    registry = ModelRegistry(state=url, state_namespace=namespace, sync_interval=sync_interval)
    registry.core.set_rate_limit_window(window)
    model = SimModel("m")
    model.rpm, model.tpm = rpm, tpm
    registry.register_model(model)
    return registry


class Tally:
    """What one worker attempted, admitted (when), cancelled and was refused.

    The core admits a request at some instant inside its ``select`` call, on
    its own clock; Python can only bracket it. ``admitted_at`` is the wall
    clock after each admitting call returned, ``selecting_at`` before it
    began (a thread can be paused between the two, so only the pair bounds
    the instant: see ``tests.shared.test_leases.most_in_any_window``)."""

    def __init__(self) -> None:
        self.attempted = 0
        self.refused = 0
        self.cancelled = 0
        self.selecting_at: list[float] = []
        self.admitted_at: list[float] = []

    def admitted(self, selecting_at: float) -> None:
        """Count an admission whose ``select`` began at ``selecting_at``."""
        self.selecting_at.append(selecting_at)
        self.admitted_at.append(time.time())

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "refused": self.refused,
            "cancelled": self.cancelled,
            "selecting_at": self.selecting_at,
            "admitted_at": self.admitted_at,
        }


def select_request(registry: ModelRegistry) -> Selection:
    """Select for one request of :data:`REQUEST_TOKENS` tokens (half in, half out)."""
    return registry.select(input_tokens=REQUEST_TOKENS // 2, output_tokens=REQUEST_TOKENS // 2)


def report_sent(registry: ModelRegistry, selection: Selection) -> None:
    """Report a selected request as sent, using its :data:`REQUEST_TOKENS` tokens."""
    registry.report_outcome(
        selection, True, 0.01, input_tokens=REQUEST_TOKENS // 2, output_tokens=REQUEST_TOKENS // 2
    )


def select_for(
    registry: ModelRegistry, seconds: float, tally: Tally, cancel_every: int = 0
) -> None:
    """Select as fast as possible for ``seconds``; every ``cancel_every``-th
    admitted selection is cancelled (served from a cache), the others are
    reported as sent with :data:`REQUEST_TOKENS` tokens."""
    end = time.time() + seconds
    while time.time() < end:
        tally.attempted += 1
        selecting_at = time.time()
        try:
            selection = select_request(registry)
        except NoEligibleModelsError:
            tally.refused += 1
            time.sleep(0.002)
            continue
        if cancel_every and tally.attempted % cancel_every == 0:
            registry.cancel(selection)
            tally.cancelled += 1
            continue
        tally.admitted(selecting_at)
        report_sent(registry, selection)


def limited_worker(
    ready: Callable[[], Any],
    index: int,
    url: str,
    namespace: str,
    window: float,
    seconds: float,
    rpm: Optional[int] = None,
    tpm: Optional[int] = None,
    cancel_every: int = 0,
) -> dict[str, Any]:
    """Select against a shared limit for ``seconds``; the tally and lease stats."""
    handler = CountWarnings()
    logging.getLogger("orchestrator.models.shared_state").addHandler(handler)
    registry = limited_registry(url, namespace, window, rpm=rpm, tpm=tpm)
    tally = Tally()
    ready()
    select_for(registry, seconds, tally, cancel_every)
    shared = registry.shared_state
    assert shared is not None
    stats = shared.leases.stats
    registry.close()
    return {
        **tally.as_dict(),
        "largest_lease": dict(stats.largest_lease),
        "granted": dict(stats.granted),
        "warnings": handler.messages,
    }


#: Tokens in and out of a request that costs exactly $0.01 on :func:`cent_model`.
CENT_TOKENS = 2_500


def cent_model() -> SimModel:
    """A simulated model at $2 per million tokens in and out (8192-token window)."""
    model = SimModel("m")
    model.cost = ModelCost(input_per_million=2.0, output_per_million=2.0)
    return model


def budget_worker(
    ready: Callable[[], Any], index: int, url: str, namespace: str, seconds: float
) -> dict[str, Any]:
    """Spend $0.01 requests against a shared $1.00 day budget for ``seconds``;
    the tally and what the budget lease did."""
    registry = ModelRegistry(state=url, state_namespace=namespace, sync_interval=0.05)
    registry.register_model(cent_model())
    registry.add_budget(BudgetScope(provider="sim"), 1.0, "day", name="fleet")
    tally = Tally()
    ready()
    end = time.time() + seconds
    while time.time() < end:
        tally.attempted += 1
        selecting_at = time.time()
        try:
            selection = registry.select(input_tokens=CENT_TOKENS, output_tokens=CENT_TOKENS)
        except NoEligibleModelsError:
            tally.refused += 1
            time.sleep(0.002)
            continue
        tally.admitted(selecting_at)
        registry.report_outcome(
            selection, True, 0.01, input_tokens=CENT_TOKENS, output_tokens=CENT_TOKENS
        )
    (state,) = registry.budgets()
    shared = registry.shared_state
    assert shared is not None
    stats = shared.budget_leases.stats
    registry.close()
    return {
        **tally.as_dict(),
        "spent_nanos": state.spent_nanos,
        "granted": stats.granted,
        "charged": stats.charged,
    }
