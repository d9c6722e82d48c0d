"""Request ids the gateway answered, kept for delayed feedback
(``POST /v1/feedback``): bounded in number and in age, oldest dropped first."""

from __future__ import annotations

import collections
import time
from typing import Optional


class FeedbackBook:
    """``request_id -> model`` for the last ``capacity`` answers younger than ``ttl`` seconds."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._entries: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()

    def remember(self, request_id: str, model: str) -> None:
        entries = self._entries
        entries[request_id] = (model, time.monotonic() + self._ttl)
        entries.move_to_end(request_id)
        while len(entries) > self._capacity:
            entries.popitem(last=False)

    def model_of(self, request_id: str) -> Optional[str]:
        """The model that answered ``request_id``; ``None`` if unknown or expired."""
        found = self._entries.get(request_id)
        if found is None:
            return None
        model, expires = found
        if time.monotonic() > expires:
            del self._entries[request_id]
            return None
        return model

    def __len__(self) -> int:
        return len(self._entries)
