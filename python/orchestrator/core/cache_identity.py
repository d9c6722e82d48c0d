"""What a model's cached answers are keyed by: its full configuration.

A model's *identity* is its name, provider and every setting that can change
an answer (``cache_settings()``: model id, base URL with path and query,
organization, default generation settings, embedding model...), encoded as
canonical JSON. Its *credentials* (``cache_credentials()``: API key, base-URL
userinfo, credential query values) never enter a key; a cache adds a keyed
fingerprint of them (:func:`credential_fingerprint`, HMAC-SHA256 with the
cache's own secret), so two tenants never share an entry and a store never
holds anything a key can be recovered or confirmed from without that secret.

Models opt in by defining ``cache_settings``/``cache_credentials`` (the
provider adapters do); any other model is identified by name and provider.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CacheConfigured",
    "cache_identity_of",
    "credential_fingerprint",
    "credentials_of",
]


class _Named(Protocol):
    name: str
    provider: str


@runtime_checkable
class CacheConfigured(Protocol):
    """A model that says what configures its answers."""

    def cache_settings(self) -> Mapping[str, Any]:
        """Every non-secret setting that can change an answer."""

    def cache_credentials(self) -> tuple[str, ...]:
        """The credentials its calls carry (never stored; only fingerprinted)."""


def _canonical(value: Any) -> Any:
    """``value`` as JSON-able data with a single encoding per meaning."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return f"{type(value).__qualname__}:{value!r}"


def cache_identity_of(model: _Named) -> str:
    """The public identity of ``model``: name, provider and ``cache_settings()``
    as canonical JSON (no credentials)."""
    settings: Mapping[str, Any] = {}
    if isinstance(model, CacheConfigured):
        settings = model.cache_settings()
    return json.dumps(
        {"name": model.name, "provider": model.provider, "settings": _canonical(settings)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def credentials_of(model: object) -> tuple[str, ...]:
    """``model.cache_credentials()``, or none for a model without the hook."""
    if isinstance(model, CacheConfigured):
        return tuple(model.cache_credentials())
    return ()


def credential_fingerprint(credentials: tuple[str, ...], key: bytes) -> str:
    """HMAC-SHA256 of ``credentials`` under ``key`` (``""`` for no credentials)."""
    if not credentials:
        return ""
    message = "\x00".join(credentials).encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()
