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

import contextlib
import copy
import hashlib
import hmac
import json
import math
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "CacheConfigured",
    "cache_identity_of",
    "credential_fingerprint",
    "credentials_of",
]


class _Named(Protocol):
    name: str
    provider: str


class CacheConfigured(Protocol):
    """What a model defines to say what configures its answers (both methods;
    looked up by name, as a runtime Protocol check would cost 14 µs a hit)."""

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


#: Per model: (name, provider, a deep copy of its settings, identity). Encoding
#: the identity costs several microseconds; comparing settings with the copy
#: is cheap, and a changed setting (even nested) re-encodes it.
_memo: weakref.WeakKeyDictionary[Any, tuple[str, str, Any, str]] = weakref.WeakKeyDictionary()


def cache_identity_of(model: _Named) -> str:
    """The public identity of ``model``: name, provider and ``cache_settings()``
    as canonical JSON (no credentials)."""
    hook = getattr(model, "cache_settings", None)  # cheaper than a runtime Protocol check
    settings: Mapping[str, Any] = hook() if callable(hook) else {}
    try:
        memo = _memo.get(model)
    except TypeError:  # not weak-referenceable: encoded every time
        memo = None
    if memo is not None and memo[:3] == (model.name, model.provider, settings):
        return memo[3]
    identity = json.dumps(
        {"name": model.name, "provider": model.provider, "settings": _canonical(settings)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Unhashable, not weak-referenceable or not copyable: no memo.
    with contextlib.suppress(TypeError, copy.Error):
        _memo[model] = (model.name, model.provider, copy.deepcopy(settings), identity)
    return identity


def credentials_of(model: object) -> tuple[str, ...]:
    """``model.cache_credentials()``, or none for a model without the hook."""
    hook = getattr(model, "cache_credentials", None)
    return tuple(hook()) if callable(hook) else ()


def credential_fingerprint(credentials: tuple[str, ...], key: bytes) -> str:
    """HMAC-SHA256 of ``credentials`` under ``key`` (``""`` for no credentials)."""
    if not credentials:
        return ""
    message = "\x00".join(credentials).encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()
