"""Request ids the gateway answered, kept for delayed feedback
(``POST /v1/feedback``): bounded in number and in age, oldest dropped first."""

from __future__ import annotations

import collections
import time
from typing import Optional


class FeedbackBook:
    """``request_id -> (model, tenant)`` of the last ``capacity`` answers, each
    kept ``ttl`` seconds."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._entries: collections.OrderedDict[str, tuple[str, Optional[str], float]] = (
            collections.OrderedDict()
        )

    def remember(self, request_id: str, model: str, tenant: Optional[str]) -> None:
        entries = self._entries
        entries[request_id] = (model, tenant, time.monotonic() + self._ttl)
        entries.move_to_end(request_id)
        while len(entries) > self._capacity:
            entries.popitem(last=False)

    def model_of(self, request_id: str, tenant: Optional[str]) -> Optional[str]:
        """The model that answered ``tenant``'s ``request_id``; ``None`` if
        unknown, expired, or another tenant's (which must not be told apart)."""
        found = self._entries.get(request_id)
        if found is None or found[1] != tenant:
            return None
        model, _, expires = found
        if time.monotonic() > expires:
            del self._entries[request_id]
            return None
        return model

    def __len__(self) -> int:
        return len(self._entries)
