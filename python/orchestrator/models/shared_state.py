"""Selection statistics and breaker trips shared by many workers through Redis.

``ModelRegistry(state="redis://...")`` creates a :class:`SharedState`. Every
worker keeps selecting from its own Rust arrays; nothing on the selection path
touches the network. A daemon thread, every ``sync_interval`` seconds:

1. takes the core's outcome deltas (per model, reset on take) and adds them to
   Redis with one Lua script (:mod:`orchestrator.models.shared_scripts`),
   atomically and exactly once: each batch carries this worker's next sequence
   number, and the same script adds it to the totals and to the worker's
   *ledger* (the sum of its batches Redis holds, with the last seq). A batch
   whose reply was lost is retried with the SAME seq and recognised as a
   duplicate; no value is read and written back from Python;
2. reads the merged totals back in one pipeline (and the Redis clock, for
   discounting) and gives the core, per model,
   everyone's statistics minus what this worker delivered itself
   (``set_shared``); the core adds its own to them in every score.

Keys (one Redis Cluster slot per namespace, thanks to the ``{namespace}`` tag):
``orchestrator:{ns}:meta`` (``version``, ``epoch``, ``discount``,
``bucket_seconds``, ``ref_bucket``), ``orchestrator:{ns}:totals`` (fields
``<model>:requests``, ``:successes``, ``:failures_<class>``, ``:reward_sum``,
``:reward_sq_sum``, ``:input_tokens``, ``:output_tokens``, ``:cost``),
``orchestrator:{ns}:discounted``, ``orchestrator:{ns}:ledger:<worker>`` (the
totals' fields, ``d:``-prefixed discounted ones, ``epoch``, ``seq``, ``ref``)
and the set of ledgers ``orchestrator:{ns}:workers``. Breaker trips go over
the pub/sub channel ``orchestrator:{ns}:breakers``; session bindings (the
``session_id=`` affinity) go through ``orchestrator:{ns}:session:<key>`` keys and
the channel ``orchestrator:{ns}:sessions`` (:mod:`orchestrator.models.shared_sessions`).

Discounted statistics (selector ``discount < 1``) are merged by one wall-clock
rule that every worker applies to the same numbers: time is cut into buckets of
``bucket_seconds`` (60 s) of the *Redis server's* clock, and an outcome from
bucket ``b`` weighs ``discount ** (B - b)`` in bucket ``B``. Redis stores each
sum pre-scaled by ``discount ** (ref_bucket - b)`` (rebased atomically when the
scale passes 1e100), so one hash holds the whole history and every worker's
view at bucket ``B`` is ``discount ** (B - ref_bucket) * stored``: the same for
all. A worker's own outcomes are discounted per outcome by the core; the other
workers' part comes from this rule (their view minus this worker's delivered
share under the same weights). Outcomes delivered late (after an outage) are
dated at delivery.

**Outcomes are never silently lost.**

* When Redis is unreachable the workers keep selecting with what they have.
  The undelivered outcomes are counters, not a list: one in-flight batch plus
  the core's running delta per model, whatever the outage's length (O(models)
  memory; nothing is dropped). One warning is logged per outage.
* When Redis comes back with *fewer* of this worker's outcomes than it
  delivered (restarted from an older RDB snapshot or empty, a failover to a
  lagging replica, ``FLUSHALL``) the worker sees its ledger behind (at the
  next delivery or read-back) and restores the difference with one script,
  exactly once (the values sent are absolute), logging one warning. An empty
  Redis is the same case: the first worker to notice starts a fresh epoch.
* When Redis loses (or rolls back) the discounted sums alone (the hash is
  evicted by an ``allkeys-*`` policy, or restored on its own), the hash's own
  marker of this worker's last batch is behind its ledger: the worker restores
  its share of every discounted sum, exactly once, with one warning (the hash
  holds each worker's share, so an older copy is repaired exactly too).
* A worker that stops during an outage (``close()``) writes its confirmed
  ledger and undelivered batches to a spool file
  (:mod:`orchestrator.models.shared_spool`; ``spool_dir``, default
  ``$ORCHESTRATOR_SPOOL_DIR`` or ``~/.cache/orchestrator/spool``); the next
  worker of the same namespace and Redis on that machine claims it, restores
  that ledger and applies the batches as the stopped worker, exactly once.
  ``close()`` returns within :data:`CLOSE_TIMEOUT_S` and leaves no thread.

The fleet's totals (every worker's delivered outcomes) are public:
:meth:`SharedState.fleet_statistics` (``registry.statistics(scope="fleet")``),
:meth:`SharedState.fleet_rows` and :func:`read_fleet_rows` (no registry needed).

Limits: a rollback is repaired by the workers that are running (or spooled)
when they see it; outcomes of a worker that closed cleanly before the rollback,
or was killed (SIGKILL), cannot be restored. Breaker messages that cannot be
published during an outage are dropped (each worker's breakers still work
locally).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator import _core
from orchestrator.errors import SharedStateError, StateVersionError
from orchestrator.models import shared_scripts as scripts
from orchestrator.models.shared_budgets import (
    SharedBudgets,
    check_periods,
    fleet_totals,
    read_totals,
)
from orchestrator.models.shared_connection import (
    CLUSTER_SCHEMES,
    check_namespace,
    check_timeout,
    check_url,
    connect,
    evicting_policy,
    redact,
    scrub,
    target,
)
from orchestrator.models.shared_fleet import FleetRow, decode_totals, fleet_columns, fleet_rows
from orchestrator.models.shared_leases import DEFAULT_LEASE_DIVISOR, LEASE, SharedLeases
from orchestrator.models.shared_router import RouterSums, registry_sums
from orchestrator.models.shared_sessions import SessionSync
from orchestrator.models.shared_spool import (
    Counters,
    Spool,
    claim_spools,
    default_spool_dir,
    quarantine_spool,
    read_spool,
    release_spool,
    spool_folder,
    write_spool,
)

if TYPE_CHECKING:
    from orchestrator.core.model import Model
    from orchestrator.models.model_registry import ModelRegistry

__all__ = [
    "BUCKET_SECONDS",
    "CLOSE_TIMEOUT_S",
    "CLUSTER_SCHEMES",
    "FORMAT_VERSION",
    "SharedState",
    "SharedStateError",
    "StateVersionError",
    "SyncStats",
    "check_namespace",
    "check_url",
    "connect",
    "namespace_prefix",
    "read_fleet_budgets",
    "read_fleet_rows",
    "redact",
]

logger = logging.getLogger(__name__)

#: Format of the keys; a namespace written with another version is refused.
#: Version 2: the discounted sums hold each worker's share and marker.
FORMAT_VERSION = 2
#: Width of the wall-clock buckets of discounted statistics.
BUCKET_SECONDS = 60.0
#: ``close()`` returns within about this many seconds, Redis up or down.
CLOSE_TIMEOUT_S = 1.0
#: Rebase the pre-scaled discounted sums when their scale passes this.
RESCALE_LIMIT = 1e100
#: Breaker messages waiting to be published, at most (older ones are dropped).
MAX_OUTBOX = 256

_INT_SUFFIXES = (
    "requests",
    "successes",
    "input_tokens",
    "output_tokens",
    *(f"failures_{c}" for c in _core.ERROR_CLASSES),
)
_DISC_SUFFIXES = ("n", "reward_sum", "reward_sq_sum")
_CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def read_fleet_rows(
    url: str, namespace: str = "default", *, timeout: float = 2.0
) -> list[FleetRow]:
    """The fleet's totals of ``namespace`` at ``url``, one row per model, without
    a registry (``orchestrator stats``). Raises :class:`SharedStateError`, naming
    the URL without its password, when Redis cannot be read (or a total is
    not a finite number)."""
    key = f"{namespace_prefix(namespace)}:totals"
    raw = _read_once(url, namespace, timeout, "the fleet's totals", lambda c: c.hgetall(key))
    return fleet_rows(decode_totals(key, raw))


def read_fleet_budgets(
    url: str, namespace: str, periods: list[tuple[str, int]], *, timeout: float = 2.0
) -> dict[str, int]:
    """Each budget's spend over the fleet of ``namespace`` at ``url`` in its
    period (``(name, period end)``, nano-USD), without a registry and
    without taking a lease (``orchestrator budgets``). Raises
    :class:`SharedStateError`, naming the URL without its password, when
    Redis cannot be read or holds a corrupt counter; ``TypeError`` or
    ``ValueError`` naming the argument for a bad one."""
    periods = check_periods(periods)
    prefix = namespace_prefix(namespace)
    return _read_once(
        url,
        namespace,
        timeout,
        "the fleet's budgets",
        lambda client: fleet_totals(periods, prefix, read_totals(client)),
    )


_Read = TypeVar("_Read")


def _read_once(
    url: str, namespace: str, timeout: float, what: str, read: Callable[[Any], _Read]
) -> _Read:
    """``read(client)`` on a fresh client of ``url`` that does not retry, closed after."""
    check_url(url)
    check_namespace(namespace)
    check_timeout(timeout)
    client = connect(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        return read(client)
    except (*_CONNECTION_ERRORS, redis.exceptions.RedisError) as exc:
        text = scrub(exc, urlsplit(url).password)
        raise SharedStateError(f"cannot read {what} at {redact(url)}: {text}") from None
    finally:
        client.close()


def discount_weight(discount: float, age_buckets: float) -> float:
    """Weight of an outcome ``age_buckets`` buckets old: ``discount ** age``."""
    return 1.0 if discount >= 1.0 else float(discount**age_buckets)


@dataclass
class SyncStats:
    """What the background sync has done, for monitoring and benchmarks."""

    cycles: int = 0
    batches_applied: int = 0
    duplicates: int = 0
    resets: int = 0
    restores: int = 0
    restored_outcomes: int = 0
    #: Restores that found the discounted sums missing some of this worker's share.
    discounted_restores: int = 0
    spools_written: int = 0
    spools_delivered: int = 0
    cpu_seconds: float = 0.0
    last_sync_monotonic: float = 0.0
    published: int = 0
    received: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def namespace_prefix(namespace: str) -> str:
    """The prefix of every Redis key of ``namespace`` (one hash slot)."""
    return f"orchestrator:{{{namespace}}}"


class SharedState:
    """One registry's link to Redis: background delta sync and breaker pub/sub.

    Args:
        registry: the registry whose core is shared.
        url: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or ``unix://``.
        namespace: separates registries sharing one Redis.
        sync_interval: seconds between syncs.
        bucket_seconds: width of the discounted statistics' time buckets.
        connect_timeout: seconds to wait for Redis on each connection attempt.
        spool_dir: where a worker stopping during an outage leaves its
            undelivered outcomes (default :func:`default_spool_dir`).
        lease_divisor: a worker's lease of a shared rate limit is
            ``max(1, limit // (lease_divisor × workers))``
            (:mod:`orchestrator.models.shared_leases`).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        url: str,
        *,
        namespace: str = "default",
        sync_interval: float = 0.5,
        bucket_seconds: float = BUCKET_SECONDS,
        connect_timeout: float = 1.0,
        spool_dir: Optional[Union[str, os.PathLike[str]]] = None,
        lease_divisor: int = DEFAULT_LEASE_DIVISOR,
    ) -> None:
        check_url(url)
        self.url = url
        self.namespace = check_namespace(namespace)
        if (
            not isinstance(sync_interval, (int, float))
            or isinstance(sync_interval, bool)
            or not 0 < sync_interval <= 3600
        ):
            raise ValueError(f"invalid sync_interval: {sync_interval!r} (seconds, > 0, <= 3600)")
        if not isinstance(bucket_seconds, (int, float)) or not 1 <= bucket_seconds <= 86_400:
            raise ValueError(f"invalid bucket_seconds: {bucket_seconds!r} (1 to 86400)")
        if spool_dir is not None and not isinstance(spool_dir, (str, os.PathLike)):
            raise TypeError(f"invalid spool_dir: {spool_dir!r} (a path)")
        self.sync_interval = float(sync_interval)
        self.bucket_seconds = float(bucket_seconds)
        self.discount = float(getattr(registry.model_selector, "discount", 1.0))
        self._token = uuid.uuid4().hex[:8]
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{self._token}"
        self.stats = SyncStats()
        self._registry = registry
        self._core = registry._core
        self.prefix = namespace_prefix(namespace)
        self.keys = {
            "meta": f"{self.prefix}:meta",
            "totals": f"{self.prefix}:totals",
            "disc": f"{self.prefix}:discounted",
            "workers": f"{self.prefix}:workers",
            "ledger": f"{self.prefix}:ledger:{self.worker_id}",
        }
        self.channel = f"{self.prefix}:breakers"
        #: The field of the discounted sums holding the seq of this worker's
        #: last batch they hold (see shared_scripts).
        self._disc_marker = "seq/" + self.keys["ledger"].replace(":", "/")
        self.spool_folder = spool_folder(
            spool_dir if spool_dir is not None else default_spool_dir(),
            target(url),
            namespace,
        )
        self._password = urlsplit(url).password
        self._connect_timeout = connect_timeout
        self._client = self._connect(connect_timeout, max(2.0, connect_timeout))
        self._sub_client = self._connect(connect_timeout, max(2.0, connect_timeout))
        self._scripts = {
            name: self._client.register_script(text)
            for name, text in (
                ("init", scripts.INIT),
                ("apply", scripts.APPLY),
                ("restore", scripts.RESTORE),
                ("remove", scripts.REMOVE),
                ("forget", scripts.FORGET),
                ("lease", LEASE),
                # TIME has no key, so a cluster cannot route it; this script runs
                # on the node that holds the namespace (a cluster pipeline cannot
                # carry scripts, so it is its own round trip, once per sync).
                ("clock", "return redis.call('TIME')"),
            )
        }

        self._lock = threading.Lock()  # models and own contributions
        self._sync_lock = threading.Lock()  # one sync cycle at a time
        self._slots: dict[str, int] = {}
        # What Redis confirmed of this worker (its ledger, for live models): the
        # view of the others is the totals minus these, and a restore sends them.
        self._own_ints: dict[str, int] = collections.defaultdict(int)
        self._own_floats: dict[str, float] = collections.defaultdict(float)
        self._own_disc: dict[str, float] = collections.defaultdict(float)
        self._own_ref: Optional[int] = None
        self._seq = 0  # seq of this worker's last batch Redis confirmed
        # Batches on their way to Redis, in order; the first is retried with the
        # same seq (this worker's last confirmed seq + 1) until it is applied.
        self._pending: list[Counters] = []
        self._claimed: list[Path] = []
        self._outbox: collections.deque[tuple[str, str]] = collections.deque(maxlen=MAX_OUTBOX)
        self._removals: collections.deque[str] = collections.deque()
        self._epoch: Optional[str] = None
        self._ref_bucket = 0
        self._fatal: Optional[SharedStateError] = None
        self._outage = False
        self._outage_lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        # Rate limits of the whole fleet: leases of windows in Redis, topped up
        # in the sync cycle (models/shared_leases.py).
        self._leases = SharedLeases(
            self._core,
            lambda keys, args: self._run("lease", keys, args),
            self.prefix,
            self.worker_id,
            top_up_in=self.sync_interval,
            divisor=lease_divisor,
        )
        # Spend budgets of the whole fleet, leased the same way (models/shared_budgets.py).
        self._budget_leases = SharedBudgets(
            self._core,
            lambda keys, args: self._run("lease", keys, args),
            self.prefix,
            self.worker_id,
            refresh_every=max(1.0, 10 * self.sync_interval),
            divisor=lease_divisor,
        )
        # A contextual registry's router learning, shared as summed natural
        # parameters in the same sync cycle (models/shared_router.py).
        self._router_sums: Optional[RouterSums] = None
        if self._core.contextual:
            self._core.router_start_sharing()
            self._router_sums = registry_sums(self._core, self.prefix, self.worker_id)
        # Session affinity across workers (models/shared_sessions.py).
        self._sessions = SessionSync(
            self._core, self.prefix, self.worker_id, registry.session_ttl, registry.max_sessions
        )

        try:
            self._init_meta()
            self._sessions.sync(self._client)  # the namespace's session secret, before selections
            self._warn_if_evicting()
        except SharedStateError:
            self._client.close()
            self._sub_client.close()
            raise
        except _CONNECTION_ERRORS as exc:
            self._down(exc)
        _LIVE.add(self)

    def _connect(self, connect_timeout: float, socket_timeout: float) -> Any:
        """A client that fails fast (no retries): the sync loop is the retry."""
        return connect(
            self.url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _warn_if_evicting(self) -> None:
        """Say once, at connect, that Redis may evict keys of the shared state
        (a cache sharing it, under ``allkeys-*``): each eviction is repaired
        only as far as the workers still know what was lost."""
        policy = evicting_policy(self._client)
        if policy is not None:
            logger.warning(
                "shared state: Redis at %s has maxmemory-policy %s, which may evict the "
                "statistics of namespace %r; use noeviction or a volatile-* policy",
                redact(self.url),
                policy,
                self.namespace,
            )

    # ----- hooks called by the registry -------------------------------------

    def model_added(self, model: Model) -> None:
        """Track a newly registered model; starts the background threads."""
        slot = self._core.slot_of(model.name)
        if slot is None:
            return
        with self._lock:
            self._slots[model.name] = slot
        if self._leases.track(model.name, slot):
            self._lease_now()
        self._start()

    def _lease_now(self) -> None:
        """Lease a newly shared model's window at once (registration, not the
        selection path), or fall back to this worker's share during an outage."""
        with self._sync_lock:
            if not self._outage and self._fatal is None:
                try:
                    self._exchange_leases()
                    return
                except (*_CONNECTION_ERRORS, redis.exceptions.RedisError) as exc:
                    self._down(exc)
            self._fall_back()

    def _exchange_leases(self) -> None:
        self._leases.exchange()
        self._budget_leases.exchange()

    def _fall_back(self) -> None:
        """Redis is unreachable: limits and budgets at this worker's share."""
        self._leases.fall_back()
        self._budget_leases.fall_back()

    def budget_added(self, name: str) -> None:
        """A new budget: it may spend nothing here until Redis grants it (its
        first lease is taken at once, off the selection path)."""
        self._budget_leases.hold(name)
        self._lease_now()

    def model_updated(self, model: Model) -> None:
        """A registered model's spec changed: share its limits if it has
        some now (its leases, if any, go on under the new limits)."""
        slot = self._core.slot_of(model.name)
        if slot is None or self._leases.is_tracked(model.name):
            return
        with self._sync_lock:
            tracked = self._leases.track(model.name, slot)
        if tracked:
            self._lease_now()

    def model_removed(self, name: str) -> None:
        """Forget a model here, and (in the background) delete its fields in
        Redis and tell the other workers to forget their share of it."""
        with self._lock:
            self._slots.pop(name, None)
            self._forget_own(name)
        with self._sync_lock:
            self._leases.untrack(name)
        self._removals.append(name)
        self._outbox.append((name, "removed"))
        self._wake.set()

    def publish_transition(self, model: Model, state: str) -> None:
        """Queue a breaker trip ("opened") or recovery ("closed") for the other
        workers; published by the background thread at once (no I/O here)."""
        if state in ("opened", "closed") and not self._closed:
            self._outbox.append((model.name, state))
            self._wake.set()

    # ----- reading the fleet ------------------------------------------------

    def fleet_rows(self) -> list[FleetRow]:
        """Every model's totals over all the workers of this namespace, as Redis
        holds them (one round trip; raises ``redis`` errors when it is down,
        :class:`SharedStateError` for a total that is not a finite number)."""
        key = self.keys["totals"]
        return fleet_rows(decode_totals(key, self._client.hgetall(key)))

    def fleet_budget_totals(self, periods: list[tuple[str, int]]) -> dict[str, int]:
        """The spend over the whole fleet of each budget in its period
        (``(name, period end)``), as Redis counts it (nano-USD; a worker's
        unused lease counts until it returns it). One round trip; raises
        ``redis`` errors when it is down."""
        return fleet_totals(periods, self.prefix, read_totals(self._client))

    def fleet_statistics(self) -> dict[str, Any]:
        """The fleet's totals shaped like ``registry.statistics()``: a ``name``
        list and one numpy array per column of
        :data:`~orchestrator.models.shared_fleet.FLEET_COLUMNS`
        (``registry.statistics(scope="fleet")``)."""
        return fleet_columns(self.fleet_rows())

    # ----- lifecycle ----------------------------------------------------------

    def close(self, flush: bool = True) -> None:
        """Stop the background threads and, with ``flush``, deliver what is left;
        what cannot be delivered (Redis down) goes to the spool. Idempotent;
        returns within about :data:`CLOSE_TIMEOUT_S` and leaves no thread.

        Order: the subscriber's socket is shut at once (it only reads); the
        sync thread has half the bound to finish its cycle before its socket
        is shut too (an error then is not an outage); the final flush runs
        on a fresh client, which every part of the sync goes through."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        self._stop.set()
        self._wake.set()
        # The subscriber only reads: once stopping it has nothing to wait for,
        # so its socket is shut now (its end) rather than after its poll.
        _shut_down(self._sub_client)
        self._join_threads(deadline - CLOSE_TIMEOUT_S / 2)
        if any(thread.is_alive() for thread in self._threads):
            _shut_down(self._client)  # the sync thread waits on a Redis that does not answer
            self._join_threads(deadline)
        if flush and self._fatal is None:
            self._final_flush(deadline)
        for path in self._claimed:
            release_spool(path)
        self._claimed = []
        _LIVE.discard(self)
        self._client.close()
        self._sub_client.close()

    def _join_threads(self, deadline: float) -> None:
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _final_flush(self, deadline: float) -> None:
        """One last delivery within ``deadline`` (skipped during an outage),
        then the spool for anything left; never raises."""
        if not self._sync_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            logger.error(
                "shared state: the sync thread is still talking to %s at close; "
                "this worker's undelivered outcomes are not spooled",
                redact(self.url),
            )
            return
        try:
            left = deadline - time.monotonic()
            if not self._outage and left > 0.05:
                self._client.close()
                self._client = self._connect(left, left)  # bounded by what is left
                if self._cycle_locked(final=True):
                    return
            self._write_spool()
        except Exception:  # never raise from close
            logger.exception("shared state: final sync failed")
        finally:
            self._sync_lock.release()

    def sync_now(self) -> bool:
        """Run one sync cycle in this thread: deliver every outcome so far and
        read the merged totals. True on success, False when Redis is down."""
        if self._fatal is not None:
            raise self._fatal
        return self._cycle()

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        """Wait until this worker receives other workers' breaker and session
        messages (pub/sub drops messages sent before the subscription)."""
        return self._subscribed.wait(timeout)

    @property
    def leases(self) -> SharedLeases:
        """The leases of this registry's shared rate limits."""
        return self._leases

    @property
    def budget_leases(self) -> SharedBudgets:
        """The leases of this registry's spend budgets."""
        return self._budget_leases

    @property
    def connected(self) -> bool:
        """False while an outage is in progress."""
        return not self._outage

    def _start(self) -> None:
        with self._lock:
            if self._threads or self._closed:
                return
            for target, name in (
                (self._run_sync, "sync"),
                (self._run_subscriber, "subscriber"),
            ):
                thread = threading.Thread(
                    target=target, name=f"orchestrator-shared-{name}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    # ----- background sync --------------------------------------------------

    def _run_sync(self) -> None:
        due = time.monotonic() + self.sync_interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set() or self._fatal is not None:
                break
            started = time.thread_time()
            try:
                self._publish_outbox()
                if self._stop.is_set():
                    break  # close() is under way: its final flush syncs, on its own client
                if time.monotonic() >= due:
                    due = time.monotonic() + self.sync_interval
                    self._cycle()
            except SharedStateError:
                break  # logged by _cycle; the registry keeps selecting locally
            except Exception as exc:  # the thread must survive anything
                if self._stop.is_set():
                    # close() shut the socket under this cycle: the end, not a
                    # failure (the final flush delivers or spools what is left).
                    logger.debug("shared state: sync thread stopped: %s", self._scrub(exc))
                    break
                logger.exception("shared state: sync cycle failed")
            self.stats.cpu_seconds += time.thread_time() - started

    def _cycle(self) -> bool:
        """Deliver pending and new deltas, then read totals; False if Redis is down."""
        with self._sync_lock:
            return self._cycle_locked()

    def _cycle_locked(self, final: bool = False) -> bool:
        self.stats.cycles += 1
        self.stats.last_sync_monotonic = time.monotonic()
        try:
            if self._epoch is None:
                self._init_meta()
            if final:
                self._leases.release()
                self._budget_leases.release()
            else:
                self._exchange_leases()
            self._apply_removals()
            self._deliver_pending()
            batch = self._take_batch()
            if batch is not None:
                self._pending.append(batch)
                self._deliver_pending()
            if self._router_sums is not None:
                self._router_sums.sync(self._client)
            self._sessions.sync(self._client)
            if final:
                self._forget_ledger()
            else:
                self._deliver_spools()
                for _ in range(3):  # a restore changes the totals: read them again
                    if self._read_back():
                        break
                    self._deliver_pending()
        except SharedStateError as exc:
            self._fatal = exc
            logger.error("shared state disabled: %s", exc)
            raise
        except (*_CONNECTION_ERRORS, redis.exceptions.RedisError) as exc:
            self._down(exc)
            self._fall_back()
            return False
        self._up()
        return True

    def _init_meta(self) -> None:
        keys = [self.keys["meta"], self.keys["totals"], self.keys["disc"], self.keys["workers"]]
        args: list[Union[str, int]] = [
            FORMAT_VERSION,
            uuid.uuid4().hex,
            repr(self.discount),
            repr(self.bucket_seconds),
        ]
        try:
            version, epoch, discount, bucket, ref = self._run("init", keys, args)
        except redis.exceptions.AuthenticationError as exc:
            raise SharedStateError(
                f"Redis at {redact(self.url)} refused the credentials: {self._scrub(exc)}"
            ) from None
        except redis.exceptions.ResponseError as exc:
            raise SharedStateError(
                f"Redis at {redact(self.url)} refused the shared-state script: {self._scrub(exc)}"
            ) from None
        if _text(version) != str(FORMAT_VERSION):
            raise StateVersionError(
                f"namespace {self.namespace!r} at {redact(self.url)} holds format version "
                f"{_text(version)!r}; this orchestrator writes version {FORMAT_VERSION}. "
                "Use another state_namespace, or delete the namespace's keys to start over."
            )
        if float(discount) != self.discount or float(bucket) != self.bucket_seconds:
            raise SharedStateError(
                f"namespace {self.namespace!r} shares statistics with discount "
                f"{float(discount)} and {float(bucket)} s buckets, but this registry uses "
                f"discount {self.discount} and {self.bucket_seconds} s buckets; workers "
                "sharing a namespace must use the same selector settings"
            )
        epoch_text = _text(epoch)
        if self._epoch is not None and epoch_text != self._epoch:
            self.stats.resets += 1  # the restore that follows logs the warning
        self._epoch = epoch_text
        self._ref_bucket = int(ref)

    def _run(self, script: str, keys: list[str], args: Sequence[Union[str, int, float]]) -> Any:
        """Run one of the registered scripts on the current client."""
        return self._scripts[script](keys=keys, args=args, client=self._client)

    def _take_batch(self) -> Optional[Counters]:
        rows = self._core.take_deltas()
        if not rows:
            return None
        with self._lock:
            names = {slot: name for name, slot in self._slots.items()}
        counters = Counters()
        ints, floats, disc = counters.ints, counters.floats, counters.disc
        unknown = [row for row in rows if row[0] not in names]
        if unknown:  # registered in the core, model_added not called yet
            self._core.restore_deltas(unknown)
        for slot, requests, successes, failures, rsum, rsq, tin, tout, cost in rows:
            name = names.get(slot)
            if name is None:
                continue
            ints[f"{name}:requests"] = requests
            ints[f"{name}:successes"] = successes
            if tin:
                ints[f"{name}:input_tokens"] = tin
            if tout:
                ints[f"{name}:output_tokens"] = tout
            for cls, count in zip(_core.ERROR_CLASSES, failures):
                if count:
                    ints[f"{name}:failures_{cls}"] = count
            floats[f"{name}:reward_sum"] = rsum
            floats[f"{name}:reward_sq_sum"] = rsq
            if cost:
                floats[f"{name}:cost"] = cost
            if self.discount < 1.0:
                disc[f"{name}:n"] = float(requests)
                disc[f"{name}:reward_sum"] = rsum
                disc[f"{name}:reward_sq_sum"] = rsq
        if not ints:
            return None
        return counters

    def _deliver_pending(self) -> None:
        while self._pending:
            batch = self._pending[0]
            reply = self._apply(self.keys["ledger"], self._seq + 1, batch)
            status = _text(reply[0])
            if status == "reset":
                self._init_meta()  # a new epoch; the next try finds the ledger behind
                continue
            if status == "behind":
                self._restore()
                continue
            if status == "dup":
                self.stats.duplicates += 1
            else:
                self.stats.batches_applied += 1
            ref_text, factor_text = _text(reply[1]).split()
            self._credit(batch, int(ref_text), float(factor_text))
            self._pending.pop(0)

    def _apply(self, ledger: str, seq: int, counters: Counters) -> list[Any]:
        """Add ``counters`` as batch ``seq`` of the worker owning ``ledger``."""
        assert self._epoch is not None
        args: list[Union[str, int, float]] = [self._epoch, seq, repr(RESCALE_LIMIT)]
        args += _counted(counters)
        reply: list[Any] = self._run("apply", self._ledger_keys(ledger), args)
        return reply

    def _ledger_keys(self, ledger: str) -> list[str]:
        keys = self.keys
        return [keys["meta"], keys["totals"], keys["disc"], ledger, keys["workers"]]

    def _restore_ledger(self, ledger: str, seq: int, ref: Optional[int], counters: Counters) -> Any:
        """Make the share of ``ledger``'s worker in Redis equal ``counters``."""
        assert self._epoch is not None
        origin = self._ref_bucket if ref is None else ref
        args: list[Union[str, int, float]] = [self._epoch, seq, repr(RESCALE_LIMIT), origin]
        args += _counted(counters)
        return self._run("restore", self._ledger_keys(ledger), args)

    def _restore(self) -> None:
        """Redis holds fewer of this worker's batches than it delivered: put
        back exactly what is missing, and say so once."""
        with self._lock:
            own = Counters(
                {k: v for k, v in self._own_ints.items() if v},
                {k: v for k, v in self._own_floats.items() if v},
                {k: v for k, v in self._own_disc.items() if v},
            )
            ref = self._own_ref
        reply = self._restore_ledger(self.keys["ledger"], self._seq, ref, own)
        status = _text(reply[0])
        if status == "reset":
            self._init_meta()
            return
        lost = int(_text(reply[1]))
        discounted_lost = _text(reply[3]) == "1"
        self._rebase_own(int(_text(reply[2])))
        self.stats.restores += 1
        self.stats.restored_outcomes += lost
        if discounted_lost:
            self.stats.discounted_restores += 1
            logger.warning(
                "shared state: Redis at %s lost this worker's share of the discounted sums "
                "in namespace %r (that hash was evicted or rolled back alone); restored it",
                redact(self.url),
                self.namespace,
            )
        if status == "rebuilt":
            logger.warning(
                "shared state: Redis at %s lost this worker's ledger in namespace %r but "
                "kept the totals (evicted: use maxmemory-policy noeviction or volatile-*); "
                "rebuilt it",
                redact(self.url),
                self.namespace,
            )
            return
        if status == "unknown":
            logger.warning(
                "shared state: Redis at %s lost this worker's ledger in namespace %r and "
                "its totals hold another number of this worker's batches than it delivered: "
                "the fleet's totals may be off by this worker's last batches; rebuilt the ledger",
                redact(self.url),
                self.namespace,
            )
            return
        if discounted_lost and not lost:
            return
        logger.warning(
            "shared state: Redis at %s held %d fewer of this worker's outcomes in "
            "namespace %r than it delivered (restarted from an older snapshot or empty, "
            "a failover to a lagging replica, or a flush); restored them",
            redact(self.url),
            lost,
            self.namespace,
        )

    def _rebase_own(self, ref: int) -> None:
        """Scale this worker's discounted contribution to Redis's ``ref`` bucket."""
        with self._lock:
            if self._own_ref is not None and self._own_ref != ref:
                rescale = discount_weight(self.discount, ref - self._own_ref)
                for key in self._own_disc:
                    self._own_disc[key] *= rescale
            self._own_ref = ref

    def _credit(self, counters: Counters, ref: int, factor: float) -> None:
        """Count an applied batch as this worker's own contribution."""
        self._rebase_own(ref)
        with self._lock:
            self._seq += 1
            live = self._slots
            for key, value in counters.ints.items():
                if key.rsplit(":", 1)[0] in live:
                    self._own_ints[key] += value
            for key, fvalue in counters.floats.items():
                if key.rsplit(":", 1)[0] in live:
                    self._own_floats[key] += fvalue
            for key, fvalue in counters.disc.items():
                if key.rsplit(":", 1)[0] in live:
                    self._own_disc[key] += fvalue * factor

    def _read_back(self) -> bool:
        """Give the core everyone else's statistics; False when something had
        to be repaired first (a new epoch, or this worker's ledger behind)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self.keys["totals"])
        pipe.hgetall(self.keys["disc"])
        pipe.hmget(self.keys["meta"], "epoch", "ref_bucket")
        pipe.hmget(self.keys["ledger"], "epoch", "seq")
        totals_raw, disc_raw, (epoch, ref), (led_epoch, led_seq) = pipe.execute()
        seconds, _micros = self._run("clock", [self.keys["meta"]], [])
        if epoch is None or _text(epoch) != self._epoch:
            self._init_meta()
            return False
        if self._seq and (_text(led_epoch) != self._epoch or int(led_seq or 0) < self._seq):
            self._restore()
            return False
        totals = {_text(k): float(v) for k, v in totals_raw.items()}
        disc = {_text(k): float(v) for k, v in disc_raw.items()}
        if self.discount < 1.0 and self._seq and disc.get(self._disc_marker, 0.0) != self._seq:
            self._restore()  # the discounted sums lost (or rolled back) some of ours
            return False
        ref_bucket = int(ref)
        bucket = int(int(seconds) // self.bucket_seconds)
        view = discount_weight(self.discount, bucket - ref_bucket)
        with self._lock:
            own_scale = (
                1.0
                if self._own_ref is None
                else discount_weight(self.discount, ref_bucket - self._own_ref)
            )
            rows = []
            for name, slot in self._slots.items():
                if self.discount < 1.0:
                    n = disc.get(f"{name}:n", 0.0) - self._own_disc[f"{name}:n"] * own_scale
                    s = disc.get(f"{name}:reward_sum", 0.0)
                    s -= self._own_disc[f"{name}:reward_sum"] * own_scale
                    sq = disc.get(f"{name}:reward_sq_sum", 0.0)
                    sq -= self._own_disc[f"{name}:reward_sq_sum"] * own_scale
                    n, s, sq = n * view, s * view, sq * view
                else:
                    n = totals.get(f"{name}:requests", 0.0) - self._own_ints[f"{name}:requests"]
                    s = totals.get(f"{name}:reward_sum", 0.0)
                    s -= self._own_floats[f"{name}:reward_sum"]
                    sq = totals.get(f"{name}:reward_sq_sum", 0.0)
                    sq -= self._own_floats[f"{name}:reward_sq_sum"]
                rows.append((slot, *_clamp(n, s, sq)))
        for slot, n, s, sq in rows:
            with contextlib.suppress(ValueError):  # the model was removed meanwhile
                self._core.set_shared(slot, n, s, sq)
        return True

    def _apply_removals(self) -> None:
        while self._removals:
            name = self._removals[0]
            suffixes = [*_INT_SUFFIXES, "reward_sum", "reward_sq_sum", "cost"]
            keys = [self.keys["totals"], self.keys["disc"], self.keys["workers"]]
            self._run("remove", keys, [name, *suffixes, "--", *_DISC_SUFFIXES])
            self._removals.popleft()

    def _forget_own(self, name: str) -> None:
        prefix = f"{name}:"
        for table in (self._own_ints, self._own_floats, self._own_disc):
            for key in [k for k in table if k.startswith(prefix)]:
                del table[key]

    def _forget_ledger(self) -> None:
        """This worker is closing with everything delivered: its ledger will
        not be needed (no one restores for a closed worker)."""
        self._forget(self.keys["ledger"])

    def _forget(self, ledger: str) -> None:
        """Delete ``ledger`` and its marker in the totals, and its marker and
        shares in the discounted sums."""
        keys = [ledger, self.keys["workers"], self.keys["totals"], self.keys["disc"]]
        self._run("forget", keys, [])

    # ----- the spool ------------------------------------------------------------

    def _write_spool(self) -> None:
        """Leave the undelivered outcomes, and the ledger of what Redis had
        confirmed (Redis may come back without it), for the next worker of
        this namespace; logs what it did."""
        batch = self._take_batch()
        if batch is not None:
            self._pending.append(batch)
        if not self._pending and not self._seq:
            return
        with self._lock:
            spool = Spool(
                worker=self.worker_id,
                ledger_key=self.keys["ledger"],
                seq=self._seq,
                ref=self._own_ref,
                ledger=Counters(dict(self._own_ints), dict(self._own_floats), dict(self._own_disc)),
                pending=list(self._pending),
            )
        try:
            path = write_spool(self.spool_folder, spool)
        except (OSError, ValueError) as exc:
            logger.error(
                "shared state: Redis at %s is unreachable and the spool %s cannot be "
                "written (%s); %d outcomes of this worker are lost",
                redact(self.url),
                self.spool_folder,
                exc,
                spool.requests(),
            )
            return
        self.stats.spools_written += 1
        self._pending = []
        logger.warning(
            "shared state: Redis at %s is unreachable; %d undelivered outcomes were "
            "spooled to %s for the next worker of namespace %r",
            redact(self.url),
            spool.requests(),
            path,
            self.namespace,
        )

    def _deliver_spools(self) -> None:
        """Deliver the spools stopped workers left for this namespace, each
        exactly once: restore the stopped worker's ledger, then apply its
        batches under its own seqs (so one Redis applied already is a duplicate)."""
        for path in claim_spools(self.spool_folder, self._token):
            if path not in self._claimed:
                self._claimed.append(path)
        while self._claimed:
            path = self._claimed[0]
            try:
                spool = read_spool(path)
                if not spool.ledger_key.startswith(f"{self.prefix}:ledger:"):
                    raise ValueError(f"its ledger {spool.ledger_key!r} is not of this namespace")
            except (OSError, ValueError) as exc:
                quarantine_spool(path, str(exc))
                self._claimed.pop(0)
                continue
            if not self._deliver_spool(spool):
                quarantine_spool(path, "its worker's ledger changed while it was delivered")
                self._claimed.pop(0)
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._claimed.pop(0)
            self._forget(spool.ledger_key)
            self.stats.spools_delivered += 1
            logger.warning(
                "shared state: delivered %d outcomes that worker %s spooled when it "
                "stopped during an outage",
                spool.requests(),
                spool.worker,
            )

    def _deliver_spool(self, spool: Spool) -> bool:
        """Restore the stopped worker's ledger and apply its batches; False if
        its ledger moved meanwhile (someone else writes it: not a stopped worker)."""
        while True:
            reply = self._restore_ledger(spool.ledger_key, spool.seq, spool.ref, spool.ledger)
            if _text(reply[0]) == "reset":
                self._init_meta()
                continue
            statuses = [
                _text(self._apply(spool.ledger_key, spool.seq + 1 + i, counters)[0])
                for i, counters in enumerate(spool.pending)
            ]
            if "reset" in statuses:  # flushed meanwhile: start again (idempotent)
                self._init_meta()
                continue
            return "behind" not in statuses

    # ----- breaker messages ---------------------------------------------------

    def _publish_outbox(self) -> None:
        while self._outbox:
            name, state = self._outbox[0]
            message = json.dumps({"w": self.worker_id, "m": name, "s": state})
            try:
                self._client.publish(self.channel, message)
            except _CONNECTION_ERRORS as exc:
                self._down(exc)
                self._outbox.clear()  # stale by the time Redis is back
                return
            self._outbox.popleft()
            self.stats.published += 1

    def _run_subscriber(self) -> None:
        pubsub: Any = None  # PubSub, or ClusterPubSub for a cluster
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._sub_client.pubsub()
                    channels = (self.channel, self._sessions.channel)
                    pubsub.subscribe(*channels)
                    confirmed: set[str] = set()
                message = pubsub.get_message(timeout=0.5)
                if message is None:
                    continue
                if message.get("type") == "subscribe":
                    confirmed.add(_text(message.get("channel")))
                    if confirmed.issuperset(channels):
                        self._subscribed.set()
                elif message.get("type") == "message":
                    if _text(message.get("channel")) == self._sessions.channel:
                        self._sessions.on_message(message["data"])
                    else:
                        self._on_message(message["data"])
            except Exception as exc:
                if self._stop.is_set():
                    # close() shut the socket under this read: the end, not a failure.
                    logger.debug("shared state: subscriber stopped: %s", self._scrub(exc))
                    break
                if not isinstance(exc, (*_CONNECTION_ERRORS, redis.exceptions.RedisError)):
                    logger.exception("shared state: breaker subscriber failed")
                    self._stop.wait(0.2)
                    continue
                # Outages are reported by the sync thread, once.
                self._subscribed.clear()
                logger.debug("shared state: subscriber reconnecting: %s", self._scrub(exc))
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                    pubsub = None
                self._stop.wait(0.2)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    def _on_message(self, data: Union[bytes, str]) -> None:
        """Apply another worker's breaker transition or model removal."""
        try:
            message = json.loads(data)
            worker, name, state = message["w"], message["m"], message["s"]
        except (ValueError, KeyError, TypeError):
            logger.warning("shared state: ignoring a malformed breaker message")
            return
        if worker == self.worker_id:
            return
        self.stats.received += 1
        with self._lock:
            slot = self._slots.get(name)
            if state == "removed":
                self._forget_own(name)
        if slot is None or state not in ("opened", "closed"):
            return
        try:
            transition = self._core.record_health_check(slot, state == "closed")
            model = self._core.model(slot)
        except ValueError:
            return
        if transition is not None:
            # Tell the local monitor, but do not publish again.
            self._registry.health_monitor.transition(model, transition.state)

    # ----- outage bookkeeping -------------------------------------------------

    def _down(self, exc: BaseException) -> None:
        """Count the error and, the first time, report the outage; not while
        closing: an error then is close()'s own interrupt of the sync thread,
        or the final flush's, which spools and says so."""
        self.stats.errors[type(exc).__name__] = self.stats.errors.get(type(exc).__name__, 0) + 1
        if self._stop.is_set():
            return
        with self._outage_lock:
            if self._outage:
                return
            self._outage = True
        logger.warning(
            "shared state: Redis at %s is unreachable (%s: %s); selecting with local "
            "statistics, each shared rate limit at this worker's share, and keeping "
            "outcomes until it returns",
            redact(self.url),
            type(exc).__name__,
            self._scrub(exc),
        )

    def _up(self) -> None:
        with self._outage_lock:
            if not self._outage:
                return
            self._outage = False
        logger.info("shared state: Redis at %s is back; outcomes merged", redact(self.url))

    def _scrub(self, exc: BaseException) -> str:
        return scrub(exc, self._password)


def _shut_down(client: Any) -> None:
    """Shut down every socket of ``client``, so a thread blocked on it gets an
    error now instead of at its socket timeout (its pool reconnects if used)."""
    if isinstance(client, redis.RedisCluster):
        client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
    else:
        client.connection_pool.disconnect()


def _counted(counters: Counters) -> list[Union[str, int, float]]:
    """The scripts' three counted lists of field/value pairs."""
    args: list[Union[str, int, float]] = [len(counters.ints)]
    for key, value in counters.ints.items():
        args += [key, value]
    args.append(len(counters.floats))
    for key, fvalue in counters.floats.items():
        args += [key, repr(fvalue)]
    args.append(len(counters.disc))
    for key, fvalue in counters.disc.items():
        args += [key, repr(fvalue)]
    return args


def _text(value: Union[bytes, str, None]) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _clamp(n: float, s: float, sq: float) -> tuple[float, float, float]:
    """Other workers' share, cleaned of rounding: 0 <= sq <= s <= n."""
    n = max(n, 0.0)
    if n < 1e-9:
        return 0.0, 0.0, 0.0
    s = min(max(s, 0.0), n)
    sq = min(max(sq, 0.0), s)
    if not (math.isfinite(n) and math.isfinite(s) and math.isfinite(sq)):
        return 0.0, 0.0, 0.0
    return n, s, sq


_LIVE: weakref.WeakSet[SharedState] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Deliver what is left when the interpreter exits without ``close()``."""
    for state in list(_LIVE):
        state.close()
