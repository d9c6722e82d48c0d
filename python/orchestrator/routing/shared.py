"""Sharing a router's learning across workers through Redis.

The router's posterior is Gaussian per weight, so what a worker learned is
the change of each touched weight's natural parameters (precision and
precision × mean), and the shared posterior is the common starting state
plus the *sum* of every worker's changes (``contextual/sharing.rs``).
:class:`SharedRouter` adds this worker's changes to two Redis hashes with
``HINCRBYFLOAT`` (one transaction per sync) and reads the sums back. Sums
commute, so syncs need no ordering, and selection never waits for Redis: a
background thread syncs every ``interval_s``. When a push fails, the changes
are kept and retried, and the local state is left as it is until they land.

Every worker must start from the same state (fresh, or loaded from the same
file) with the same models in the same order; the first worker records the
featurizer version, the feature size and the model list in a ``:meta`` hash
and the others are checked against it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Optional

import redis

from orchestrator import _core
from orchestrator.models.shared_router import RouterSums, text_of
from orchestrator.models.shared_state import connect
from orchestrator.routing.router import ContextualRouter

logger = logging.getLogger("orchestrator.routing.shared")


class SharedRouter:
    """Keeps ``router`` in sync with every other worker sharing ``name`` at ``url``."""

    def __init__(
        self,
        router: ContextualRouter,
        url: str,
        *,
        name: str = "default",
        interval_s: float = 1.0,
    ) -> None:
        if not (isinstance(interval_s, (int, float)) and interval_s > 0):
            raise ValueError(f"invalid interval_s: {interval_s!r} (must be > 0)")
        if not name or any(c in name for c in ":{}"):
            raise ValueError(f"invalid name: {name!r} (non-empty, without ':', '{' or '}')")
        self.router = router
        self.interval_s = float(interval_s)
        self._client = connect(url)
        prefix = "orchestrator:router:{" + name + "}"  # one hash tag: one cluster node
        self._meta, self._precision, self._weighted = (
            f"{prefix}:meta",
            f"{prefix}:q",
            f"{prefix}:h",
        )
        core = router._core
        self._sums = RouterSums(
            self._precision,
            self._weighted,
            uuid.uuid4().hex,  # this worker: its batches and share of the sums
            lambda: [(str(index), dq, dh) for index, dq, dh in core.take_changes()],
            lambda sums: core.apply_shared([(int(index), dq, dh) for index, dq, dh in sums]),
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _check_meta(self) -> None:
        expected = {
            "featurizer_version": str(_core.FEATURIZER_VERSION),
            "dim": str(self.router._core.dim),
            "models": json.dumps(self.router.models),
        }
        for field, value in expected.items():
            self._client.hsetnx(self._meta, field, value)  # the first worker's values win
        stored = {text_of(k): text_of(v) for k, v in self._client.hgetall(self._meta).items()}
        for field, value in expected.items():
            if stored.get(field) != value:
                raise ValueError(
                    f"invalid shared router state: {field} is {stored.get(field)!r} in Redis "
                    f"but {value!r} here"
                )

    def start(self, background: bool = True) -> SharedRouter:
        """Check the shared metadata, start recording changes, sync once and
        (with ``background``) keep syncing every ``interval_s``."""
        self._check_meta()
        self.router._core.start_sharing()
        self.sync()
        if background:
            self._thread = threading.Thread(
                target=self._run, name="orchestrator-router-sync", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
            except redis.RedisError as exc:
                logger.warning("router sync failed, will retry: %s", exc)

    def sync(self) -> None:
        """Push this worker's changes, then read everyone's sums back."""
        with self._lock:
            self._sums.sync(self._client)

    def close(self) -> None:
        """Stop the background thread and push what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()
        self._client.close()

    def __enter__(self) -> SharedRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
