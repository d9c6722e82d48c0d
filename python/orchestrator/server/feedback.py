"""Request ids the gateway answered, kept for delayed feedback
(``POST /v1/feedback``): bounded in number and in age, oldest dropped first.

Each answer takes one score: the first is kept with its entry, a second is
refused, so a client cannot repeat feedback to weigh one answer many times.
An answer chosen by the contextual strategy also keeps the registry's request
id of its decision, so its score is reported to the router
(``registry.report_quality``) and learned; other strategies' scores are kept
here and counted in ``/metrics`` only (the call itself was already counted).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Optional


class FeedbackAlreadyGiven(Exception):
    """The request already has its score."""


@dataclass
class Answer:
    """One answered request: its model, tenant, expiry, score, and the
    registry's request id of the contextual decision (``None`` otherwise)."""

    model: str
    tenant: Optional[str]
    expires: float
    quality: Optional[float] = None
    routed_id: Optional[int] = None


class FeedbackBook:
    """``request_id -> answer`` of the last ``capacity`` answers, each kept
    ``ttl`` seconds with the score it was given, if any."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._entries: collections.OrderedDict[str, Answer] = collections.OrderedDict()

    def remember(
        self, request_id: str, model: str, tenant: Optional[str], routed_id: Optional[int] = None
    ) -> None:
        entries = self._entries
        entries[request_id] = Answer(
            model, tenant, time.monotonic() + self._ttl, routed_id=routed_id
        )
        entries.move_to_end(request_id)
        while len(entries) > self._capacity:
            entries.popitem(last=False)

    def score(self, request_id: str, tenant: Optional[str], quality: float) -> Optional[Answer]:
        """Give ``tenant``'s ``request_id`` its score; the answer, or ``None``
        if unknown, expired, or another tenant's (which must not be told apart).

        Raises:
            FeedbackAlreadyGiven: the request was scored before.
        """
        found = self._entries.get(request_id)
        if found is None or found.tenant != tenant:
            return None
        if time.monotonic() > found.expires:
            del self._entries[request_id]
            return None
        if found.quality is not None:
            raise FeedbackAlreadyGiven(request_id)
        found.quality = quality
        return found

    def __len__(self) -> int:
        return len(self._entries)
