"""A contextual router's learning shared through Redis as summed natural
parameters (``rust/orchestrator-core/src/contextual/sharing.rs``).

The posterior of every weight is Gaussian, so a worker's learning is the
change of each touched weight's precision and precision × mean since its
last sync, and the shared posterior is the common starting state plus the
*sum* of every worker's changes. :class:`RouterSums` adds this worker's
changes to two Redis hashes (``HINCRBYFLOAT``), then reads the sums back and
applies them; sums commute, so workers need no ordering.

Nothing is counted twice or lost, the way the statistics' ledgers work
(``models/shared_scripts.py``): each push is a numbered batch, applied by one
Lua script together with the worker's own share of the sums (two hashes per
worker) and its last batch number.

* A push whose reply was lost is sent again under the same number, and the
  script skips a batch it has already applied.
* A Redis that comes back with an older batch number than this worker had
  acknowledged (restarted empty, restored from an older snapshot, a replica
  that lagged) has lost some of its batches. The worker then restores its
  share: it adds the difference between what it delivered and the stored
  share, exactly once, and logs one warning.

A departed worker's share stays in Redis (its learning is part of the
sums). The hash fields are strings chosen by the caller: the standalone
:class:`~orchestrator.routing.shared.SharedRouter` uses the flat weight
index (every worker lists the same models in the same order); the
registry's shared state uses ``"<feature>:<model name>"``, so workers may
register models in any order and add or remove them while sharing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional

logger = logging.getLogger(__name__)

#: One weight's change or sum: (hash field, Δ precision, Δ precision × mean).
Change = tuple[str, float, float]

#: KEYS: the sums' two hashes, this worker's share's two hashes, the batch
#: numbers. ARGV: worker, batch, the last batch the worker saw acknowledged,
#: then (field, Δ precision, Δ precision × mean) triples. Returns 1 when the
#: batch is applied (now or before), 0 when Redis lost earlier batches of this
#: worker (restore its share first).
_PUSH = """
local last = tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0')
local batch = tonumber(ARGV[2])
if last >= batch then return 1 end
if last < tonumber(ARGV[3]) then return 0 end
for i = 4, #ARGV, 3 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 2])
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 2])
end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
return 1
"""

#: KEYS as for _PUSH. ARGV: worker, the last acknowledged batch, then (field,
#: precision, precision × mean) triples: everything the worker delivered. Adds
#: to the sums what the stored share lacks and stores the share.
_RESTORE = """
for i = 3, #ARGV, 3 do
  local stored_q = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  local stored_h = tonumber(redis.call('HGET', KEYS[4], ARGV[i]) or '0')
  local dq = tonumber(ARGV[i + 1]) - stored_q
  local dh = tonumber(ARGV[i + 2]) - stored_h
  if dq ~= 0 then redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], string.format('%.17g', dq)) end
  if dh ~= 0 then redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], string.format('%.17g', dh)) end
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 2])
end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
return 1
"""


def text_of(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


class RouterSums:
    """Pushes ``take()``'s changes to the hashes ``precision_key`` and
    ``weighted_key``, as numbered batches of ``worker``, and gives ``apply``
    the sums of every worker's.

    It holds no client: each :meth:`sync` goes through the caller's current
    one, so a caller that replaces or closes its client (the shared state's
    final flush at ``close()``) leaves no connection behind in an old one."""

    def __init__(
        self,
        precision_key: str,
        weighted_key: str,
        worker: str,
        take: Callable[[], Sequence[Change]],
        apply: Callable[[list[Change]], None],
    ) -> None:
        self._precision, self._weighted = precision_key, weighted_key
        self._keys = [
            precision_key,
            weighted_key,
            f"{precision_key}:share:{worker}",
            f"{weighted_key}:share:{worker}",
            f"{precision_key}:batches",
        ]
        self._worker = worker
        self._take, self._apply = take, apply
        #: The two scripts, made on the first sync (no I/O: each call names its client).
        self._scripts: Optional[tuple[Any, Any]] = None
        self._unsent: dict[str, tuple[float, float]] = {}
        #: The batch sent whose reply has not come (its number and changes).
        self._in_flight: Optional[tuple[int, dict[str, tuple[float, float]]]] = None
        #: The last batch acknowledged, and the sum of every acknowledged batch.
        self._acknowledged = 0
        self._delivered: dict[str, tuple[float, float]] = {}

    @property
    def unsent(self) -> int:
        """Weights whose changes wait for a push that succeeds."""
        in_flight = len(self._in_flight[1]) if self._in_flight is not None else 0
        return len(self._unsent) + in_flight

    def sync(self, client: Any) -> None:
        """Push this worker's changes through ``client``, then read everyone's
        sums back (raises the client's error when Redis is unreachable;
        nothing is lost)."""
        for field, dq, dh in self._take():
            q, h = self._unsent.get(field, (0.0, 0.0))
            self._unsent[field] = (q + dq, h + dh)
        while self._in_flight is not None or self._unsent:
            if self._in_flight is None:
                self._in_flight = (self._acknowledged + 1, self._unsent)
                self._unsent = {}
            self._push(client, *self._in_flight)
            self._in_flight = None
        pipeline = client.pipeline(transaction=True)
        pipeline.hgetall(self._precision)
        pipeline.hgetall(self._weighted)
        precision, weighted = pipeline.execute()
        weighted = {text_of(k): v for k, v in weighted.items()}
        self._apply(
            [
                (text_of(field), float(dq), float(weighted.get(text_of(field), 0.0)))
                for field, dq in precision.items()
            ]
        )

    def _scripts_of(self, client: Any) -> tuple[Any, Any]:
        """The push and restore scripts (made once; every call names its client)."""
        if self._scripts is None:
            self._scripts = (client.register_script(_PUSH), client.register_script(_RESTORE))
        return self._scripts

    def _push(self, client: Any, batch: int, changes: dict[str, tuple[float, float]]) -> None:
        """Apply batch ``batch`` once through ``client``, restoring this
        worker's share first when Redis lost batches it had acknowledged."""
        push_script, restore_script = self._scripts_of(client)
        args = [self._worker, batch, self._acknowledged, *_triples(changes)]
        if not push_script(keys=self._keys, args=args, client=client):
            logger.warning(
                "shared router sums in Redis lack batches %s delivered (Redis restarted "
                "or was restored from an older snapshot): restoring its share once",
                self._worker,
            )
            delivered = _triples(self._delivered)
            restore_script(
                keys=self._keys, args=[self._worker, self._acknowledged, *delivered], client=client
            )
            if not push_script(keys=self._keys, args=args, client=client):
                raise RuntimeError("the router sums' batch numbers went back during a restore")
        for field, (dq, dh) in changes.items():
            q, h = self._delivered.get(field, (0.0, 0.0))
            self._delivered[field] = (q + dq, h + dh)
        self._acknowledged = batch


def _triples(changes: dict[str, tuple[float, float]]) -> list[Any]:
    """``changes`` as a flat (field, Δ precision, Δ precision × mean) argument list,
    the numbers written exactly (``repr``)."""
    return [item for field, (q, h) in changes.items() for item in (field, repr(q), repr(h))]


def registry_sums(core: Any, prefix: str, worker: str) -> RouterSums:
    """:class:`RouterSums` of a contextual registry's core, keyed by feature and model name."""

    def take() -> list[Change]:
        return [
            (f"{feature}:{name}", dq, dh) for name, feature, dq, dh in core.router_take_changes()
        ]

    def apply(sums: list[Change]) -> None:
        named = []
        for field, dq, dh in sums:
            feature, _, name = field.partition(":")
            named.append((name, int(feature), dq, dh))
        core.router_apply_shared(named)

    return RouterSums(f"{prefix}:router:q", f"{prefix}:router:h", worker, take, apply)
