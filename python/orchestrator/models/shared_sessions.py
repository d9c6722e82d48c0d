"""Session affinity shared by the workers of one shared state.

Every worker keeps its own session map in the Rust core (selection never
waits for Redis); the shared state's sync thread, once per
``sync_interval``, sends the sessions bound, moved or used here since the
last cycle to Redis with one Lua script, and every worker receives the new
bindings over pub/sub:

* Keys: ``orchestrator:{ns}:session:<key>`` holds ``"<version> <model>"``
  with a TTL equal to the registry's ``session_ttl`` (refreshed whenever a
  worker uses the session); ``<key>`` is the keyed hash of the session id
  (the raw id never leaves the core). The hash secret is shared by the
  workers of the namespace (``orchestrator:{ns}:session-secret``: the first
  worker sets it, and puts it back if Redis loses it, so later workers agree);
  ``orchestrator:{ns}:session-version`` numbers the bindings.
* A session **bound** here for the first time takes the binding Redis
  already holds, if another worker made one: the first binding wins, so two
  workers that see a new session at once agree after one cycle. A session
  **moved** here (its model failed a check) replaces every worker's binding.
  Each written binding gets the next version; a worker applies a binding
  only if its version is newer than the one it holds and the session did not
  change here since (that change is sent next and settles it), so every
  worker ends with the binding Redis holds, whatever order messages arrive in.
* **Propagation delay**: a binding reaches the other workers within one
  ``sync_interval`` of the selection that made it (plus a pub/sub round
  trip). A worker that sees the session for the first time before that binds
  it to its own pick, and adopts the shared binding at its next cycle.
* During an outage each worker keeps its own bindings; changes not yet sent
  wait (at most ``max_sessions`` of them), and bindings published meanwhile
  are missed, so a session may live on different models until its next move
  or first-seen binding is settled by Redis. Redis keys of an unregistered
  model are left to expire; a worker ignores bindings to models it does not
  have. Every worker holds the fleet's sessions it hears of, within its own
  ``max_sessions`` (least recently used first out).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import secrets
import threading
from typing import Any, Optional, Union

from orchestrator import _core

logger = logging.getLogger(__name__)

__all__ = ["SYNC_BATCH", "SessionSync"]

#: Session changes per script call (one call holds Redis for about a millisecond).
SYNC_BATCH = 1000
#: Rank of a change: a session's pending change is the strongest one seen.
_RANK = {"touched": 0, "bound": 1, "moved": 2}

#: KEYS: the version counter, then one session key per change. ARGV: worker,
#: channel, TTL in whole seconds, the highest version the worker has seen (the
#: counter is raised to it first: a Redis restored from an older snapshot must
#: not number a move below bindings workers hold), then (key hex, change,
#: model) per change.
#: Returns the settled bindings as a flat (key hex, "version model") list and
#: publishes the ones written, as JSON ``{"w": worker, "b": [hex, value, ...]}``.
_SYNC = """
local ttl = tonumber(ARGV[3])
local seen = tonumber(ARGV[4])
if tonumber(redis.call('GET', KEYS[1]) or '0') < seen then
  redis.call('SET', KEYS[1], ARGV[4])
end
local settled, written = {}, {}
for i = 2, #KEYS do
  local at = 5 + (i - 2) * 3
  local key, hex, change, model = KEYS[i], ARGV[at], ARGV[at + 1], ARGV[at + 2]
  if change == 'touched' and redis.call('EXPIRE', key, ttl) == 0 then
    change = 'bound'
  end
  if change == 'bound' then
    local current = redis.call('GET', key)
    if current then
      redis.call('EXPIRE', key, ttl)
      settled[#settled + 1] = hex
      settled[#settled + 1] = current
    else
      change = 'moved'
    end
  end
  if change == 'moved' then
    local value = redis.call('INCR', KEYS[1]) .. ' ' .. model
    redis.call('SET', key, value, 'EX', ttl)
    settled[#settled + 1] = hex
    settled[#settled + 1] = value
    written[#written + 1] = hex
    written[#written + 1] = value
  end
end
if #written > 0 then
  redis.call('PUBLISH', ARGV[2], cjson.encode({w = ARGV[1], b = written}))
end
return settled
"""


#: The highest version the counter is raised to (Lua numbers are exact up to 2**53).
_MAX_COUNTER = 2**53


def _text(value: Union[bytes, str]) -> str:
    """Redis's bytes as text; bytes that are not UTF-8 (a damaged or foreign
    value) become U+FFFD, so the checks below refuse them instead of failing
    the whole sync cycle."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _is_u64(text: str) -> bool:
    """Whether ``text`` is the decimal digits of a number from 0 to 2**64 - 1."""
    return text.isascii() and text.isdigit() and len(text) <= 20 and int(text) < 2**64


def _bindings(flat: list[Any]) -> list[tuple[str, str, int]]:
    """``(key hex, model, version)`` of a flat (hex, "version model") list
    from Redis; malformed entries (another writer's, a damaged message) are
    skipped, so what reaches the core is 32 hex digits, a name and a u64."""
    out = []
    for hex_key, value in zip(flat[::2], flat[1::2]):
        if not isinstance(hex_key, (bytes, str)) or not isinstance(value, (bytes, str)):
            continue
        key, (version, _, model) = _text(hex_key), _text(value).partition(" ")
        valid_key = len(key) == 32 and all(c in "0123456789abcdef" for c in key)
        if valid_key and _is_u64(version) and model:
            out.append((key, model, int(version)))
    return out


class SessionSync:
    """One registry's session bindings, synced through Redis (see the module).

    Args:
        core: the registry's ``SelectionCore``.
        prefix: the namespace's key prefix (``orchestrator:{ns}``).
        worker: this worker's id (its own messages are skipped).
        ttl: the registry's ``session_ttl`` (Redis keys expire after it).
        max_sessions: the registry's bound (also on changes waiting to be sent).
    """

    def __init__(
        self, core: _core.SelectionCore, prefix: str, worker: str, ttl: float, max_sessions: int
    ) -> None:
        self._core = core
        self._worker = worker
        self._ttl = max(1, math.ceil(ttl))
        self._max_unsent = max_sessions
        self.channel = f"{prefix}:sessions"
        self._secret_key = f"{prefix}:session-secret"
        self._version_key = f"{prefix}:session-version"
        self._session_prefix = f"{prefix}:session:"
        #: The secret agreed on with the namespace (``None`` before the first sync).
        self._secret: Optional[int] = None
        #: Changes taken from the core and not yet settled by Redis: key hex → (model, change).
        self._unsent: dict[str, tuple[str, str]] = {}
        self._script: Any = None
        #: The highest binding version seen (settled or received), and its
        #: lock (the sync and subscriber threads both raise it).
        self._seen_version = 0
        self._seen_lock = threading.Lock()
        core.start_sharing_sessions()

    def sync(self, client: Any) -> None:
        """Agree on the namespace's hash secret, send this worker's session
        changes and apply what Redis settled (raises the client's error when
        Redis is unreachable; unsent changes wait for the next cycle)."""
        self._agree_on_secret(client)
        self._take()
        if not self._unsent:
            return
        if self._script is None:
            self._script = client.register_script(_SYNC)
        while self._unsent:
            batch = list(itertools.islice(self._unsent.items(), SYNC_BATCH))
            keys = [self._version_key, *(self._session_prefix + hex_key for hex_key, _ in batch)]
            args: list[Union[str, int]] = [
                self._worker,
                self.channel,
                self._ttl,
                self._seen_version,
            ]
            for hex_key, (model, change) in batch:
                args += [hex_key, change, model]
            settled = self._script(keys=keys, args=args, client=client)
            for hex_key, _ in batch:
                del self._unsent[hex_key]
            self._apply(_bindings(settled))

    def on_message(self, data: Union[bytes, str]) -> None:
        """Apply the bindings another worker wrote."""
        try:
            message = json.loads(data)
            worker, flat = message["w"], message["b"]
            if not isinstance(flat, list):
                raise TypeError(flat)
        except (ValueError, KeyError, TypeError):
            logger.warning("shared state: ignoring a malformed session message")
            return
        if worker != self._worker:
            self._apply(_bindings(flat))

    def _apply(self, bindings: list[tuple[str, str, int]]) -> None:
        """Give the core bindings Redis settled or another worker wrote,
        remembering the highest version among them."""
        if bindings:
            with self._seen_lock:
                highest = max(b[2] for b in bindings)
                if highest <= _MAX_COUNTER:  # beyond it: forged, never counted up to
                    self._seen_version = max(self._seen_version, highest)
        self._core.apply_shared_sessions(bindings)

    def _agree_on_secret(self, client: Any) -> None:
        """Hash session ids with the namespace's secret: the first worker sets
        it, and a Redis that lost it (flushed, restarted empty) gets this
        worker's back, so workers joining later still agree with it. When
        the secret changes, sessions bound under the old one are forgotten."""
        offered = self._secret if self._secret is not None else secrets.randbits(64)
        pipeline = client.pipeline(transaction=False)  # one round trip per cycle
        pipeline.set(self._secret_key, str(offered), nx=True)
        pipeline.get(self._secret_key)
        stored = _text(pipeline.execute()[1] or "")
        if not _is_u64(stored):
            logger.warning(
                "shared state: %s held %r, not a session secret; replaced it",
                self._secret_key,
                stored[:40],
            )
            client.set(self._secret_key, str(offered))
            stored = str(offered)
        if int(stored) != self._secret:
            self._secret = int(stored)
            self._core.set_session_secret(self._secret)
            self._unsent.clear()
            self._core.take_session_changes()  # made under the old secret

    def _take(self) -> None:
        """Merge the core's new changes into the unsent ones (the strongest
        change and the latest model per session), keeping at most
        ``max_sessions`` (the oldest are dropped)."""
        for hex_key, model, change in self._core.take_session_changes():
            previous = self._unsent.pop(hex_key, None)
            if previous is not None and _RANK[previous[1]] > _RANK[change]:
                change = previous[1]
            self._unsent[hex_key] = (model, change)
        while len(self._unsent) > self._max_unsent:
            del self._unsent[next(iter(self._unsent))]
