"""Request ids the gateway answered, kept for delayed feedback
(``POST /v1/feedback``): bounded in number and in age, oldest dropped first.

Each answer takes one score: the first is kept with its entry, a second is
refused, so a client cannot repeat feedback to weigh one answer many times.
The registry cannot yet attach a quality to a call it already counted
(``report_outcome`` would count a new call: issue 13 brings delayed quality),
so scores are kept here and counted in ``/metrics``, and steer no routing.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Optional


class FeedbackAlreadyGiven(Exception):
    """The request already has its score."""


@dataclass
class _Answer:
    model: str
    tenant: Optional[str]
    expires: float
    quality: Optional[float] = None


class FeedbackBook:
    """``request_id -> answer`` of the last ``capacity`` answers, each kept
    ``ttl`` seconds with the score it was given, if any."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._entries: collections.OrderedDict[str, _Answer] = collections.OrderedDict()

    def remember(self, request_id: str, model: str, tenant: Optional[str]) -> None:
        entries = self._entries
        entries[request_id] = _Answer(model, tenant, time.monotonic() + self._ttl)
        entries.move_to_end(request_id)
        while len(entries) > self._capacity:
            entries.popitem(last=False)

    def score(self, request_id: str, tenant: Optional[str], quality: float) -> Optional[str]:
        """Give ``tenant``'s ``request_id`` its score; the model that answered
        it, or ``None`` if unknown, expired, or another tenant's (which must
        not be told apart).

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
        return found.model

    def __len__(self) -> int:
        return len(self._entries)
