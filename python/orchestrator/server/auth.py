"""Client keys of the gateway: loaded from environment variables or stored as
salted SHA-256 digests, checked in constant time, each naming a tenant.

Gateway keys are long random tokens (``hash_key`` makes the digest of one),
so a salted fast hash is enough: there is nothing to brute-force, and a
request does not pay for a slow KDF. Every configured key is compared on
every request, so the time taken does not tell which key came close.

``python -m orchestrator.server.auth`` reads a key on stdin and prints its
digest for ``[server] api_keys = [{ hash = "..." }]``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from orchestrator.errors import KeyConfigurationError as KeyConfigurationError
from orchestrator.server.settings import ApiKeyEntry


@dataclass(frozen=True)
class _StoredKey:
    salt: bytes
    digest: bytes
    tenant: str


def hash_key(key: str, salt: Optional[bytes] = None) -> str:
    """The ``sha256:<salt>:<digest>`` form of a client key, for the config file."""
    if not isinstance(key, str) or len(key) < 16:
        raise ValueError("invalid key: a gateway key must be a string of at least 16 characters")
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.sha256(salt + key.encode()).hexdigest()
    return f"sha256:{salt.hex()}:{digest}"


class KeyChecker:
    """Maps a presented bearer token to its tenant, or ``None``."""

    def __init__(self, entries: Sequence[ApiKeyEntry]) -> None:
        self._keys = [self._load(i, entry) for i, entry in enumerate(entries)]

    @staticmethod
    def _load(index: int, entry: ApiKeyEntry) -> _StoredKey:
        if entry.hash is not None:
            _, salt_hex, digest_hex = entry.hash.split(":")
            return _StoredKey(bytes.fromhex(salt_hex), bytes.fromhex(digest_hex), entry.tenant)
        assert entry.env is not None
        key = os.environ.get(entry.env, "")
        if len(key) < 16:
            problem = "is not set" if not key else "holds fewer than 16 characters"
            raise KeyConfigurationError(
                f"server.api_keys[{index}].env: environment variable {entry.env} {problem}"
            )
        salt = secrets.token_bytes(16)
        return _StoredKey(salt, hashlib.sha256(salt + key.encode()).digest(), entry.tenant)

    @property
    def required(self) -> bool:
        """Whether any key is configured (else every caller is let in)."""
        return bool(self._keys)

    def tenant_of(self, token: bytes) -> Optional[str]:
        """The tenant of ``token``, comparing against every key in constant time."""
        found: Optional[str] = None
        for key in self._keys:
            candidate = hashlib.sha256(key.salt + token).digest()
            if hmac.compare_digest(candidate, key.digest) and found is None:
                found = key.tenant
        return found


def bearer_token(authorization: Optional[bytes]) -> Optional[bytes]:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()


def main() -> None:
    """Print the digest of the key read from stdin."""
    print(hash_key(sys.stdin.readline().strip()))


if __name__ == "__main__":
    main()
