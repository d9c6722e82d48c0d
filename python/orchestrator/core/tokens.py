"""Token estimates for text whose provider reported no counts.

Its own module so that both the model layer and the cache can use it without
importing each other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_tokens"]


def estimate_tokens(value: Any) -> int:
    """Rough token count (four characters a token) when a provider gave none."""
    if isinstance(value, str):
        return max(1, (len(value) + 3) // 4) if value else 0
    if isinstance(value, (list, tuple)):
        return sum(
            estimate_tokens(m.get("content", "") if isinstance(m, dict) else m) for m in value
        )
    return 0
