"""Reaching the shared state's Redis: checking URLs and namespaces, connecting
(a cluster client for ``redis+cluster://``), and keeping passwords out of
every message."""

from __future__ import annotations

import math
import re
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

import redis

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    netloc = f"{user}:***@{host}{port}"
    return parts._replace(netloc=netloc).geturl()


def check_timeout(timeout: object) -> float:
    """A usable timeout of a Redis read (finite seconds > 0), else a
    ``TypeError``/``ValueError`` naming it."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(f"invalid timeout: {timeout!r} (seconds, a number)")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"invalid timeout: {timeout!r} (finite seconds > 0)")
    return float(timeout)


def check_namespace(namespace: object) -> str:
    """A valid namespace, else a ``ValueError`` saying what is allowed."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"invalid state_namespace: {namespace!r}; use 1-100 characters of letters, "
            "digits and _ . : / -, starting with a letter or digit (no braces or spaces)"
        )
    return namespace


#: URL schemes of a Redis Cluster, and the plain scheme each stands for.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def check_url(url: object) -> str:
    """A usable Redis URL, else a ``ValueError`` naming the problem (without the password)."""
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if not isinstance(url, str) or not url.startswith(schemes):
        raise ValueError(
            f"invalid state URL: {url!r}; use redis://, rediss://, unix://, "
            "or redis+cluster:// / rediss+cluster:// for a Redis Cluster"
        )
    shown = redact(url)
    url = plain_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ValueError(f"invalid state URL {shown}: {exc}") from None
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ValueError(f"invalid state URL {shown}: no host")
        db = unquote(parts.path).strip("/")
        if db and not db.isdigit():
            raise ValueError(f"invalid state URL {shown}: database {db!r} is not a number")
    return url


def plain_url(url: str) -> str:
    """``url`` with a cluster scheme replaced by the plain one it stands for."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme, scheme)}{sep}{rest}"


def connect(url: str, **options: Any) -> Any:
    """A client for ``url``: ``RedisCluster`` for a cluster scheme (every key
    of a namespace shares one hash tag, so scripts and pipelines stay on one
    node), else ``Redis``."""
    if url.split("://", 1)[0] in CLUSTER_SCHEMES:
        return redis.RedisCluster.from_url(plain_url(url), **options)
    return redis.Redis.from_url(url, **options)


def evicting_policy(client: Any) -> Optional[str]:
    """The server's ``maxmemory-policy`` when it may evict the shared state's
    keys (they have no TTL, so only ``noeviction`` and ``volatile-*`` spare
    them), else None; None too when the server refuses ``CONFIG GET`` (many
    managed Redis do)."""
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.exceptions.RedisError:
        return None
    policies = [reply] if "maxmemory-policy" in reply else list(reply.values())  # cluster: per node
    for entry in policies:
        policy = str(entry.get("maxmemory-policy", "noeviction"))
        if policy != "noeviction" and not policy.startswith("volatile-"):
            return policy
    return None


def scrub(exc: BaseException, password: Optional[str]) -> str:
    """The text of ``exc`` with ``password`` replaced by ``***``."""
    text = str(exc)
    return text.replace(password, "***") if password else text


def target(url: str) -> str:
    """The Redis a URL points at, without credentials (names the spool folder)."""
    parts = urlsplit(plain_url(url))
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or ''}{parts.path}"
