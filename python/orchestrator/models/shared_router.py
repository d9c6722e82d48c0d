"""A contextual router's learning shared through Redis as summed natural
parameters (``rust/orchestrator-core/src/contextual/sharing.rs``).

The posterior of every weight is Gaussian, so a worker's learning is the
change of each touched weight's precision and precision × mean since its
last sync, and the shared posterior is the common starting state plus the
*sum* of every worker's changes. :class:`RouterSums` adds this worker's
changes to two Redis hashes with ``HINCRBYFLOAT`` (one transaction), then
reads the sums back and applies them; sums commute, so workers need no
ordering. A push that fails keeps its changes and retries them at the next
sync (a transaction whose reply is lost after Redis applied it is counted
twice: the same caveat as the statistics' retry without a ledger).

The hash fields are strings chosen by the caller: the standalone
:class:`~orchestrator.routing.shared.SharedRouter` uses the flat weight
index (every worker lists the same models in the same order); the
registry's shared state uses ``"<feature>:<model name>"``, so workers may
register models in any order and add or remove them while sharing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: One weight's change or sum: (hash field, Δ precision, Δ precision × mean).
Change = tuple[str, float, float]


def text_of(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


class RouterSums:
    """Pushes ``take()``'s changes to the hashes ``precision_key`` and
    ``weighted_key`` and gives ``apply`` the sums of every worker's."""

    def __init__(
        self,
        client: Any,
        precision_key: str,
        weighted_key: str,
        take: Callable[[], Sequence[Change]],
        apply: Callable[[list[Change]], None],
    ) -> None:
        self._client = client
        self._precision, self._weighted = precision_key, weighted_key
        self._take, self._apply = take, apply
        self._unsent: dict[str, tuple[float, float]] = {}

    @property
    def unsent(self) -> int:
        """Weights whose changes wait for a push that succeeds."""
        return len(self._unsent)

    def sync(self) -> None:
        """Push this worker's changes, then read everyone's sums back
        (raises the client's error when Redis is unreachable; nothing is lost)."""
        for field, dq, dh in self._take():
            q, h = self._unsent.get(field, (0.0, 0.0))
            self._unsent[field] = (q + dq, h + dh)
        if self._unsent:
            pipeline = self._client.pipeline(transaction=True)
            for field, (dq, dh) in self._unsent.items():
                pipeline.hincrbyfloat(self._precision, field, dq)
                pipeline.hincrbyfloat(self._weighted, field, dh)
            pipeline.execute()
            self._unsent.clear()
        pipeline = self._client.pipeline(transaction=True)
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


def registry_sums(core: Any, client: Any, prefix: str) -> RouterSums:
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

    return RouterSums(client, f"{prefix}:router:q", f"{prefix}:router:h", take, apply)
