"""Rate limits exact across workers: leases of windows Redis holds.

With ``state="redis://..."``, a model's ``rpm`` and ``tpm`` hold for the whole
fleet, not per worker (LiteLLM #40291: limits kept in local memory become
limit × replicas). The design:

* **Redis holds the authoritative window** of each (namespace, model, kind):
  a sorted set of *grants* (``orchestrator:{ns}:lease:<model>:<kind>``,
  member ``<worker>/<grant id>``, scored by the Redis clock in ms) and a hash
  of their amounts with their ``total`` (``...:amounts``). One Lua script
  (:data:`LEASE`) drops the grants older than the window, takes returns back,
  charges what a worker admitted without a lease, and grants at most what the
  window has left (``limit - total``), all atomically.
* **Each worker holds a lease**: a few grants the core admits within with no
  I/O (``rust/orchestrator-core/src/leases.rs``). A reservation takes from the
  oldest grant and remembers it; a cancelled reservation, or one reconciled
  below its estimate, goes back *to that grant*, never into the lease.
* **This module's exchange** runs in the shared state's sync thread every
  ``sync_interval``: it tops a lease up to one *slice* (``max(1, limit //
  (lease_divisor × workers))``, ``workers`` = the workers that took a lease of
  that model in the last window) once what it holds falls under half a slice,
  and gives back what the core queued. A worker starts slow: its first lease
  is 1 (tokens: the first request refused for want of them), and each
  exchange doubles the most it may top up to, until the slice (so workers
  that start together, before they know of each other, do not each take a
  big slice). A request larger than a slice (tokens) is leased whole. A
  grant is used for a quarter of the window (:data:`LEASE_TTL_FRACTION`),
  and never after it leaves Redis's window (the core dates it from when the
  exchange *started*, never later than Redis did); its unused units go back
  then, so a lease taken before the worker knew how many workers share the
  window does not last.

**The bound.** Redis never grants more than ``limit`` within one window, and a
unit is used only while its grant counts there; so in any window the requests
sent by all workers are at most ``limit`` plus what each worker held, unused,
when the window began: **limit + slice × workers**. Tokens obey the same bound
for estimates; a call reported above its estimate is charged against the next
grants (its excess is counted, late).

**Exactly once.** Each exchange carries a call id; the script remembers each
worker's last one per window key, so a retry after a lost reply is answered
with the first reply instead of being applied twice. Once every return is
delivered, Redis's count in the window equals the requests actually admitted
(LiteLLM #8430).

**Outages.** When Redis is unreachable each shared model falls back to this
worker's share, ``max(1, limit // workers)``, enforced on the core's local log,
which still holds what the leases admitted (so never more than the last lease
allowed, and never unlimited). The shared state logs its one outage warning.
When Redis is back, what was admitted on the share is charged to the window,
the leases' returns are delivered, and leases are granted again. A Redis that
restarted empty or from an older snapshot simply holds fewer grants: nothing is
added back from memory, so nothing is counted twice.

**No counter outlives its window** (LiteLLM #5609): every key the script writes
gets a TTL of one window after its newest grant, and keys with no grant left are
deleted, so after traffic stops no key outlives one window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from orchestrator import _core

__all__ = ["DEFAULT_LEASE_DIVISOR", "LEASE", "SharedLeases", "lease_slice"]

#: A slice is ``limit // (DEFAULT_LEASE_DIVISOR × workers)`` (at least 1).
DEFAULT_LEASE_DIVISOR = 4
#: A grant is usable for this fraction of the window: what a worker leased
#: before it knew how many workers share the window goes back soon.
LEASE_TTL_FRACTION = 0.25
KINDS = ("requests", "tokens")

# KEYS: grants (sorted set), amounts (hash), lease workers (hash).
# ARGV: worker, call id, limit, window ms, want, charge, claimed, n returns,
# then n pairs (grant id, amount). ``claimed``: what the worker knows the key
# holds of its grants (0: unknown); a key holding less (Redis restarted empty
# or from an older snapshot) gets the difference back, once. Returns {grant
# id, granted, charge id, total, workers in the window, Redis time in ms, 0};
# a repeated call id returns the first reply with 1 last (a duplicate: its
# grant was dated then).
LEASE = """
local worker, call = ARGV[1], ARGV[2]
local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local want, charge = tonumber(ARGV[5]), tonumber(ARGV[6])
local claimed, n = tonumber(ARGV[7]), tonumber(ARGV[8])
local call_field = 'call/' .. worker
local last = redis.call('HGET', KEYS[2], call_field)
if last and string.sub(last, 1, #call + 1) == call .. ' ' then
  local reply = {}
  for value in string.gmatch(string.sub(last, #call + 2), '%S+') do reply[#reply + 1] = value end
  reply[#reply + 1] = '1'
  return reply
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)) do
  local amount = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  redis.call('HINCRBY', KEYS[2], 'total', -amount)
  redis.call('HDEL', KEYS[2], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local function take_back(member, amount)
  local held = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  local back = math.min(held, amount)
  if back > 0 then
    redis.call('HINCRBY', KEYS[2], member, -back)
    redis.call('HINCRBY', KEYS[2], 'total', -back)
  end
  return back
end
local mine = nil
local prefix = worker .. '/'
for i = 1, n do
  local id, rest = ARGV[7 + 2 * i], tonumber(ARGV[8 + 2 * i])
  if id ~= '0' then
    local member = prefix .. id
    if redis.call('ZSCORE', KEYS[1], member) then
      rest = rest - take_back(member, rest)
    else
      rest = 0  -- that grant left the window (or Redis lost it): it counts nowhere
    end
  end
  if rest > 0 then  -- beyond the named grant: this worker's newest grants
    mine = mine or redis.call('ZREVRANGE', KEYS[1], 0, -1)
    for _, member in ipairs(mine) do
      if rest <= 0 then break end
      if string.sub(member, 1, #prefix) == prefix then rest = rest - take_back(member, rest) end
    end
  end
end
local function add(amount)
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  local id = string.format('%d', now * 1024 + seq % 1024)
  redis.call('ZADD', KEYS[1], now, prefix .. id)
  redis.call('HSET', KEYS[2], prefix .. id, string.format('%d', amount))
  redis.call('HINCRBY', KEYS[2], 'total', string.format('%d', amount))
  return id
end
if claimed > 0 then
  local held = 0
  for _, member in ipairs(mine or redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if string.sub(member, 1, #prefix) == prefix then
      held = held + tonumber(redis.call('HGET', KEYS[2], member) or '0')
    end
  end
  if claimed > held then charge = charge + claimed - held end
end
local charge_id = '0'
if charge > 0 then charge_id = add(charge) end
local total = tonumber(redis.call('HGET', KEYS[2], 'total') or '0')
local granted = math.max(0, math.min(want, limit - total))
local grant_id = '0'
if granted > 0 then
  grant_id = add(granted)
  total = total + granted
end
redis.call('HSET', KEYS[3], worker, string.format('%d', now))
local workers = 0
local seen = redis.call('HGETALL', KEYS[3])
for i = 1, #seen, 2 do
  if tonumber(seen[i + 1]) > now - window then workers = workers + 1
  else redis.call('HDEL', KEYS[3], seen[i]) end
end
redis.call('PEXPIRE', KEYS[3], window)
local reply = {grant_id, string.format('%d', granted), charge_id, string.format('%d', total),
               string.format('%d', workers), string.format('%d', now)}
if redis.call('ZCARD', KEYS[1]) > 0 then
  redis.call('HSET', KEYS[2], call_field, call .. ' ' .. table.concat(reply, ' '))
  redis.call('PEXPIRE', KEYS[1], window)
  redis.call('PEXPIRE', KEYS[2], window)
else
  redis.call('DEL', KEYS[1], KEYS[2])
end
reply[#reply + 1] = '0'
return reply
"""


def lease_slice(limit: int, workers: int, divisor: int) -> int:
    """One worker's lease slice of a window of ``limit``: ``max(1, limit //
    (divisor × workers))``."""
    return max(1, limit // (divisor * max(1, workers)))


def fallback_share(limit: int, workers: int) -> int:
    """What one worker may admit per window while Redis is unreachable."""
    return max(1, limit // max(1, workers))


@dataclass
class _Call:
    """One exchange of a (model, kind) with Redis, kept until it is answered
    so that a retry sends the same call id (and is recognised)."""

    call_id: str
    want: int
    charge: int
    returns: list[tuple[int, int]]


@dataclass
class _Tracked:
    """A model whose limits are shared: its slot and, per kind, what is owed."""

    slot: int
    calls: dict[str, _Call] = field(default_factory=dict)
    owed: dict[str, list[tuple[int, int]]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    charges: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    workers: int = 1
    #: Slow start: a lease tops up to at most this much, doubled by each
    #: grant up to the slice (a worker that just joined holds little).
    ceiling: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 1))


@dataclass
class LeaseStats:
    """What the exchanges did, for tests and monitoring."""

    exchanges: int = 0
    granted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    returned: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    charged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    #: The most a lease was topped up to (the ``slice`` of the bound).
    largest_lease: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    fallbacks: int = 0


#: Runs the :data:`LEASE` script on the shared state's current connection.
RunScript = Callable[[list[str], list[Union[str, int]]], Any]


class SharedLeases:
    """The leases of one registry's rate-limited models (see the module doc).

    Driven by :class:`~orchestrator.models.shared_state.SharedState` from its
    sync thread (or under its sync lock): ``track`` at registration,
    ``exchange`` in every sync cycle (it raises the client's connection
    errors; the caller then calls ``fall_back``), ``release`` at close.
    """

    def __init__(
        self,
        core: _core.SelectionCore,
        run: RunScript,
        prefix: str,
        worker_id: str,
        top_up_in: float,
        divisor: int = DEFAULT_LEASE_DIVISOR,
    ) -> None:
        if not isinstance(divisor, int) or isinstance(divisor, bool) or not 1 <= divisor <= 1024:
            raise ValueError(f"invalid lease_divisor: {divisor!r} (an integer from 1 to 1024)")
        self._core = core
        self._run = run
        self._prefix = prefix
        self._worker = worker_id
        self._top_up_in = float(top_up_in)
        self.divisor = divisor
        self._tracked: dict[str, _Tracked] = {}
        self._call_ids = itertools.count(1)
        self.stats = LeaseStats()

    def keys(self, name: str, kind: str) -> list[str]:
        """The Redis keys of ``name``'s window of ``kind``."""
        grants = f"{self._prefix}:lease:{name}:{kind}"
        return [grants, f"{grants}:amounts", f"{self._prefix}:lease-workers:{name}"]

    def track(self, name: str, slot: int) -> bool:
        """Share ``name``'s limits if it has any; True when it does."""
        limits = self._core.rate_limits(slot)
        if limits["rpm"] is None and limits["tpm"] is None:
            return False
        self._core.share_limits(slot, self._top_up_in)
        self._tracked[name] = _Tracked(slot)
        return True

    def is_tracked(self, name: str) -> bool:
        return name in self._tracked

    def untrack(self, name: str) -> None:
        """Forget a removed model (its grants expire with their window)."""
        self._tracked.pop(name, None)

    def exchange(self) -> None:
        """Top up, give back and charge every shared model's leases (one
        script call per model and kind that has something to do)."""
        for name, tracked in list(self._tracked.items()):
            try:
                self._exchange_model(name, tracked)
            except ValueError:  # the model was removed meanwhile
                self._tracked.pop(name, None)

    def _collect(self, tracked: _Tracked) -> None:
        """Move what the core owes back (and admitted unrecorded) to ``tracked``."""
        state = self._core.shared_limits(tracked.slot)
        if state is not None and state["unrecorded"]:
            requests, tokens = self._core.take_unrecorded(tracked.slot)
            tracked.charges["requests"] += requests
            tracked.charges["tokens"] += tokens
        if state is not None:
            for kind, returns in zip(KINDS, self._core.take_lease_returns(tracked.slot)):
                tracked.owed[kind] += returns

    def _exchange_model(self, name: str, tracked: _Tracked) -> None:
        state = self._core.shared_limits(tracked.slot)
        if state is None:
            return
        self._collect(tracked)
        limits = self._core.rate_limits(tracked.slot)
        for kind, limit in (("requests", limits["rpm"]), ("tokens", limits["tpm"])):
            if limit is None:
                tracked.owed[kind].clear()
                tracked.charges[kind] = 0
                continue
            call = tracked.calls.get(kind) or self._new_call(tracked, kind, limit, state)
            if call is None:
                continue
            tracked.calls[kind] = call
            started = self._core.now()
            grant_id, granted, duplicate = self._send(name, tracked, kind, limit, call)
            tracked.ceiling[kind] = min(limit, 2 * tracked.ceiling[kind])
            if granted and duplicate:
                # Granted by an earlier try whose reply was lost: dated then,
                # so it may be about to leave Redis's window: give it back.
                tracked.owed[kind].append((grant_id, granted))
            elif granted:
                # Redis dated the grant after `started`: it leaves Redis's
                # window no sooner than a window after `started`.
                window_s = self._core.rate_limit_window()
                expires_in = min(
                    window_s * LEASE_TTL_FRACTION, window_s - (self._core.now() - started)
                )
                self._core.grant_lease(tracked.slot, kind, grant_id, granted, max(0.0, expires_in))
        if state["fallback"] is not None:
            self._core.recover_limits(tracked.slot)

    def _new_call(
        self, tracked: _Tracked, kind: str, limit: int, state: dict[str, Any]
    ) -> Optional[_Call]:
        """What ``kind``'s lease needs from Redis now, or None: a top-up to
        one slice once it holds less than half a slice (or less than a
        refused request needs), what it owes back, and what it must charge."""
        available = int(state[f"{kind}_available"])
        wanted = int(state[f"{kind}_wanted"])
        # Slow start counts in requests: doubling from below the size of a
        # refused request would spend an exchange, and one of the lease's few
        # grants (held until they expire), per doubling before a lease held
        # more than that one request (a fresh worker of tpm=12000 sent 7 calls
        # of 100 tokens in a quarter window).
        tracked.ceiling[kind] = max(tracked.ceiling[kind], wanted)
        fair = min(tracked.ceiling[kind], lease_slice(limit, tracked.workers, self.divisor))
        full = min(limit, max(fair, wanted))
        low = available < math.ceil(full / 2) or wanted > available
        room = int(state[f"{kind}_grants"]) < _core.MAX_LEASE_GRANTS - 1
        want = full - available if (low or state["fallback"] is not None) and room else 0
        if want > 0:
            self.stats.largest_lease[kind] = max(self.stats.largest_lease[kind], full)
        returns, tracked.owed[kind] = tracked.owed[kind], []
        charge, tracked.charges[kind] = tracked.charges[kind], 0
        if want <= 0 and not returns and not charge:
            return None
        return _Call(str(next(self._call_ids)), max(0, want), charge, returns)

    def _send(
        self, name: str, tracked: _Tracked, kind: str, limit: int, call: _Call
    ) -> tuple[int, int, bool]:
        """Run one exchange (or its retry): ``(grant id, granted, duplicate)``,
        ``duplicate`` when an earlier try was applied. Connection errors
        propagate, the call kept for a retry."""
        window_ms = max(1, int(self._core.rate_limit_window() * 1000))
        args: list[Union[str, int]] = [
            self._worker,
            call.call_id,
            limit,
            window_ms,
            call.want,
            call.charge,
            0,
            len(call.returns),
        ]
        for grant, amount in call.returns:
            args += [grant, amount]
        reply = self._run(self.keys(name, kind), args)
        grant_id, granted, _charge_id, _total, workers, _now, duplicate = (int(v) for v in reply)
        tracked.calls.pop(kind, None)
        tracked.workers = max(1, workers)
        self.stats.exchanges += 1
        self.stats.granted[kind] += granted
        self.stats.returned[kind] += sum(amount for _, amount in call.returns)
        self.stats.charged[kind] += call.charge
        return grant_id, granted, bool(duplicate)

    def fall_back(self) -> None:
        """Redis is unreachable: every shared model enforces this worker's
        share locally; what its leases held or owed is kept for later."""
        for tracked in self._tracked.values():
            try:
                state = self._core.shared_limits(tracked.slot)
                if state is None or state["fallback"] is not None:
                    continue
                limits = self._core.rate_limits(tracked.slot)
                share = {
                    kind: None
                    if limits[kind] is None
                    else fallback_share(limits[kind], tracked.workers)
                    for kind in ("rpm", "tpm")
                }
                returns = self._core.fall_back_limits(tracked.slot, **share)
            except ValueError:  # removed meanwhile
                continue
            for kind, owed in zip(KINDS, returns):
                tracked.owed[kind] += owed
            self.stats.fallbacks += 1

    def release(self) -> None:
        """Give every lease back (at close): a call still unanswered is sent
        again first, then one with everything owed. Connection errors
        propagate; what is not delivered expires with its window."""
        for name, tracked in list(self._tracked.items()):
            self._collect(tracked)
            for kind, owed in zip(KINDS, self._core.unshare_limits(tracked.slot)):
                tracked.owed[kind] += owed
            limits = self._core.rate_limits(tracked.slot)
            for kind, limit in (("requests", limits["rpm"]), ("tokens", limits["tpm"])):
                if limit is None:
                    continue
                pending = tracked.calls.get(kind)
                if pending is not None:
                    grant_id, granted, _ = self._send(name, tracked, kind, limit, pending)
                    if granted:
                        tracked.owed[kind].append((grant_id, granted))
                owed, tracked.owed[kind] = tracked.owed[kind], []
                charge, tracked.charges[kind] = tracked.charges[kind], 0
                if owed or charge:
                    final = _Call(str(next(self._call_ids)), 0, charge, owed)
                    self._send(name, tracked, kind, limit, final)
            del self._tracked[name]
