"""Spend budgets exact across workers: leases of per-period counters in Redis.

With ``state="redis://..."`` a budget (``registry.add_budget``) caps the whole
fleet's spend in its calendar period, through the same mechanism as the rate
limits (:mod:`orchestrator.models.shared_leases`, the same :data:`LEASE`
script):

* Redis holds one counter per budget and period
  (``orchestrator:{ns}:budget:<name>:<period end>:spend`` and its ``:amounts``):
  the grants made in that period, never more than the limit in total. A
  period's key is named by its end (UTC), so it starts empty and its TTL
  (one period after its newest grant) lets it go.
* Each worker's core may spend, in the period, only what Redis granted it:
  the budget's *allowance* (``set_budget_allowance``), checked in the core
  with no I/O. The sync thread tops it up by one slice, ``limit //
  (lease_divisor × workers)`` nano-USD, once what is left of it falls under
  half a slice, and gives back the unused rest at close. It hears from the
  counter at least every ``refresh_every`` seconds (the workers it counts set
  the slice and the outage share).
* Spent and reserved amounts are the core's; anything the worker spent beyond
  its grants in a period (on its share during an outage, or in the moment a
  new period began before its first exchange) is charged to the counter at
  the next exchange, so Redis's count is what the fleet spent. Each exchange
  also tells the counter what this worker was granted there: a counter that
  holds less (Redis restarted empty or from an older snapshot) gets the
  difference back, once, so a restart forgets no spend.

**The bound.** Within a period the grants add up to at most the limit and a
worker spends only within its grants, reserving each request's expected cost
first: the fleet spends at most the limit plus, per worker, what its calls
cost beyond their estimates (at most one request's cost each when estimates
are exact). At a period boundary a worker may spend the unused rest of its
last lease in the new period before its first exchange there (charged then).

**Outages.** A budget's allowance becomes this worker's share, ``limit //
workers``, or what it was granted in the period if that is more (never
unlimited); what it spends beyond its grants is charged when Redis is back.
A worker back first may be granted a slice before another has charged its
outage spend: around an outage the fleet spends at most the limit plus one
slice per worker.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from orchestrator import _core
from orchestrator.errors import SharedStateError
from orchestrator.models.shared_leases import DEFAULT_LEASE_DIVISOR, RunScript

__all__ = [
    "PERIOD_SECONDS",
    "SharedBudgets",
    "budget_keys",
    "check_periods",
    "current_periods",
    "fleet_totals",
    "read_totals",
]

#: The longest each calendar period lasts (a month: 31 days).
PERIOD_SECONDS = {"minute": 60, "hour": 3_600, "day": 86_400, "month": 31 * 86_400}
#: A counter total as Redis's HINCRBY writes it: ASCII decimal, signed 64 bits.
_COUNTER_TOTAL = re.compile(rb"-?[0-9]{1,19}")
_I64 = range(-(2**63), 2**63)


def budget_keys(prefix: str, name: str, ends: int) -> list[str]:
    """The Redis keys of budget ``name``'s period ending at ``ends`` (Unix s)
    in the namespace of ``prefix``: its grants, their amounts (and ``total``),
    and the workers that exchanged with it."""
    counter = f"{prefix}:budget:{name}:{ends}:spend"
    return [counter, f"{counter}:amounts", f"{prefix}:budget-workers:{name}"]


def fleet_totals(
    periods: list[tuple[str, int]],
    prefix: str,
    read: Callable[[list[str]], list[Optional[Union[str, bytes]]]],
) -> dict[str, int]:
    """What the fleet was granted or charged, less what came back, in each
    budget's period (``(name, period end in Unix s)``), in nano-USD: the
    ``total`` of each period's counter, read with ``read`` (one value per
    key). Reading takes no lease. A counter that does not exist yet counts 0."""
    keys = [budget_keys(prefix, name, ends)[1] for name, ends in periods]
    totals = read(keys) if keys else []
    return {name: counter_total(key, total) for (name, _), key, total in zip(periods, keys, totals)}


def counter_total(key: str, raw: Optional[Union[str, bytes]]) -> int:
    """The ``total`` of counter ``key`` as read from Redis (0 when absent);
    anything HINCRBY could not have written (a forged or corrupt value) is a
    :class:`SharedStateError` naming the key and the value."""
    if raw is None:
        return 0
    encoded = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if _COUNTER_TOTAL.fullmatch(encoded) and int(encoded) in _I64:
        return int(encoded)
    raise SharedStateError(
        f"corrupt budget counter {key}: total {encoded.decode('utf-8', 'replace')!r} "
        "(Redis should hold a signed 64-bit integer of nano-USD there)"
    )


def check_periods(periods: object) -> list[tuple[str, int]]:
    """``periods`` as :func:`fleet_totals` takes them (a list of ``(budget
    name, period end in Unix s)``), else a ``TypeError``/``ValueError``
    naming the entry."""
    if not isinstance(periods, (list, tuple)):
        raise TypeError(f"invalid periods: {periods!r} (a list of (budget name, period end))")
    for index, period in enumerate(periods):
        if not (
            isinstance(period, tuple)
            and len(period) == 2
            and isinstance(period[0], str)
            and isinstance(period[1], int)
            and not isinstance(period[1], bool)
        ):
            raise TypeError(
                f"invalid periods[{index}]: {period!r} (a (budget name, period end) tuple "
                "of a str and an int of Unix seconds)"
            )
        if period[1] < 0:
            raise ValueError(f"invalid periods[{index}]: {period!r} (the period end is >= 0)")
    return list(periods)


def current_periods(budgets: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """``(name, period end)`` of each of ``budgets`` (``SelectionCore.budgets()``)."""
    return [(b["name"], round(b["resets_at"])) for b in budgets]


def read_totals(client: Any) -> Callable[[list[str]], list[Optional[Union[str, bytes]]]]:
    """A reader for :func:`fleet_totals` on a redis-py ``client``: the
    ``total`` field of every key in one pipelined round trip."""

    def read(keys: list[str]) -> list[Optional[Union[str, bytes]]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "total")
        return list(pipe.execute())

    return read


@dataclass
class _Period:
    """What this worker was granted of one budget in one period."""

    ends: int
    granted: int = 0
    #: When this worker last heard from the period's counter (monotonic).
    exchanged_at: float = -math.inf


@dataclass
class BudgetLeaseStats:
    """What the budget exchanges did, in nano-USD."""

    exchanges: int = 0
    granted: int = 0
    charged: int = 0
    returned: int = 0
    fallbacks: int = 0
    #: Per budget, the workers Redis saw in the period.
    workers: dict[str, int] = field(default_factory=dict)


class SharedBudgets:
    """The leases of one registry's budgets (see the module doc), driven by
    :class:`~orchestrator.models.shared_state.SharedState` from its sync
    thread (``exchange``; connection errors propagate, then ``fall_back``),
    and at close (``release``)."""

    def __init__(
        self,
        core: _core.SelectionCore,
        run: RunScript,
        prefix: str,
        worker_id: str,
        refresh_every: float,
        divisor: int = DEFAULT_LEASE_DIVISOR,
    ) -> None:
        self._core = core
        self._run = run
        self._prefix = prefix
        self._worker = worker_id
        self._divisor = divisor
        self._refresh_every = refresh_every
        self._periods: dict[str, _Period] = {}
        self._call_ids = itertools.count(1)
        self.stats = BudgetLeaseStats()

    def keys(self, name: str, ends: int) -> list[str]:
        """The Redis keys of budget ``name``'s period ending at ``ends`` (Unix s)."""
        return budget_keys(self._prefix, name, ends)

    def hold(self, name: str) -> None:
        """A new budget: nothing may be spent here before Redis grants it."""
        self._core.set_budget_allowance(name, 0)

    def refresh_all(self) -> None:
        """Hear from every budget's counter at the next exchange, due or not
        (after the fleet changed: the worker count sets slices and shares)."""
        for period in self._periods.values():
            period.exchanged_at = -math.inf

    def exchange(self) -> None:
        """Charge, top up and record every budget's lease for its period."""
        live = set()
        for budget in self._core.budgets():
            live.add(budget["name"])
            self._exchange(budget)
        for name in set(self._periods) - live:  # removed budgets
            del self._periods[name]

    def _period(self, budget: dict[str, Any]) -> _Period:
        ((_, ends),) = current_periods([budget])
        period = self._periods.get(budget["name"])
        if period is None or period.ends != ends:
            period = self._periods[budget["name"]] = _Period(ends)
        return period

    def _exchange(self, budget: dict[str, Any]) -> None:
        name, limit = budget["name"], int(budget["limit_nanos"])
        period = self._period(budget)
        used = int(budget["spent_nanos"]) + int(budget["reserved_nanos"])
        charge = max(0, used - period.granted)
        left = period.granted + charge - used
        workers = self.stats.workers.get(name, 1)
        slice_ = max(1, limit // (self._divisor * workers))
        want = slice_ - left if left < (slice_ + 1) // 2 else 0
        stale = time.monotonic() - period.exchanged_at >= self._refresh_every
        if want <= 0 and not charge and not stale:
            if budget["allowance_nanos"] is None:
                self._core.set_budget_allowance(name, period.granted)
            return
        granted, workers = self._send(budget, period, max(0, want), charge, period.granted, [])
        period.granted += charge + granted
        period.exchanged_at = time.monotonic()
        self.stats.workers[name] = workers
        self._core.set_budget_allowance(name, period.granted)

    def _send(
        self,
        budget: dict[str, Any],
        period: _Period,
        want: int,
        charge: int,
        claimed: int,
        returns: list[tuple[int, int]],
    ) -> tuple[int, int]:
        """One exchange with the period's counter: ``(granted, workers)``.
        Grants are never older than the period, so the script's window is
        the period's length and no grant leaves it early."""
        args: list[Union[str, int]] = [
            self._worker,
            f"b{next(self._call_ids)}",
            int(budget["limit_nanos"]),
            PERIOD_SECONDS[budget["period"]] * 1000,
            want,
            charge,
            claimed,
            len(returns),
        ]
        for grant, amount in returns:
            args += [grant, amount]
        reply = self._run(self.keys(budget["name"], period.ends), args)
        _grant_id, granted, _charge_id, _total, workers, _now, _duplicate = (int(v) for v in reply)
        self.stats.exchanges += 1
        self.stats.granted += granted
        self.stats.charged += charge
        self.stats.returned += sum(amount for _, amount in returns)
        return granted, max(1, workers)

    def fall_back(self) -> None:
        """Redis is unreachable: each budget may spend this worker's share of
        the period, or what Redis granted it there if that is more."""
        for budget in self._core.budgets():
            name, limit = budget["name"], int(budget["limit_nanos"])
            share = limit // self.stats.workers.get(name, 1)
            self._core.set_budget_allowance(name, max(share, self._period(budget).granted))
        self.stats.fallbacks += 1

    def release(self) -> None:
        """Give back what each budget's lease has left (at close); connection
        errors propagate (what is not returned stays counted: safe)."""
        for budget in self._core.budgets():
            period = self._period(budget)
            used = int(budget["spent_nanos"]) + int(budget["reserved_nanos"])
            charge = max(0, used - period.granted)
            left = period.granted + charge - used
            if left or charge:
                self._send(budget, period, 0, charge, 0, [(0, left)] if left else [])
            self._core.set_budget_allowance(budget["name"], 0)
            period.granted = used
