"""Base URLs split into what may be shown and what is a credential.

A base URL may carry credentials (``https://user:pass@host/v1``,
``...?key=...``) and request options (``/v1?tenant=A``). :class:`Endpoint`
keeps the shown part (scheme, host, port, path and the non-secret query) apart
from the credentials (userinfo, credential-named query values), which are
:class:`~orchestrator._secrets.Secret`\\ s; requests get the query as
parameters, so ``/v1?tenant=A`` + ``/chat/completions`` is
``/v1/chat/completions?tenant=A``."""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

from orchestrator._secrets import REDACTED, SECRET_QUERY_NAMES, Secret, redact


@dataclass(frozen=True)
class Endpoint:
    """One base URL: ``url`` (scheme, host, port and path; no userinfo, query
    or trailing slash), its public ``query``, its ``secret_query`` values and
    its ``userinfo`` (``user:password``, as a secret)."""

    url: str
    query: tuple[tuple[str, str], ...] = ()
    secret_query: tuple[tuple[str, Secret], ...] = ()
    userinfo: Optional[Secret] = None
    #: ``Basic ...`` for the userinfo, and the bare password: both scrubbed while this lives.
    _userinfo_forms: tuple[Secret, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, raw: object, field_name: str = "base_url") -> Endpoint:
        """Split ``raw``; a ``ValueError`` names ``field_name`` and the (redacted) value."""
        if not isinstance(raw, str):
            raise TypeError(
                f"invalid {field_name}: expected an http(s):// URL string, got {type(raw).__name__}"
            )
        parts = urllib.parse.urlsplit(raw.strip())
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid {field_name} {redact(raw)!r}: bad port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid {field_name} {redact(raw)!r}: need http(s)://host")
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{port}" if port else host
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        public: list[tuple[str, str]] = []
        secret: list[tuple[str, Secret]] = []
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() in SECRET_QUERY_NAMES:
                secret.append((name, Secret(value)))
            else:
                public.append((name, value))
        userinfo: Optional[Secret] = None
        forms: tuple[Secret, ...] = ()
        if parts.username is not None or parts.password is not None:
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            userinfo = Secret(f"{user}:{password}")
            token = base64.b64encode(userinfo.get().encode()).decode("ascii")
            forms = (Secret(f"Basic {token}"), Secret(token), Secret(password or user))
        return cls(url, tuple(public), tuple(secret), userinfo, forms)

    @property
    def basic_auth(self) -> Optional[str]:
        """The ``Authorization`` header value the userinfo stands for."""
        return self._userinfo_forms[0].get() if self._userinfo_forms else None

    def public(self) -> str:
        """The URL to show: credential-named query values as ``***``, no userinfo."""
        shown = [*self.query, *((name, REDACTED) for name, _ in self.secret_query)]
        if not shown:
            return self.url
        return f"{self.url}?{urllib.parse.urlencode(shown, safe='*')}"

    def identity(self) -> str:
        """What of the URL is in a cache identity: everything but credentials."""
        if not self.query:
            return self.url
        return f"{self.url}?{urllib.parse.urlencode(sorted(self.query))}"

    def params(self) -> list[tuple[str, str]]:
        """Query parameters every request to this endpoint carries."""
        return [*self.query, *((name, value.get()) for name, value in self.secret_query)]

    def credentials(self) -> tuple[str, ...]:
        """The credential values the URL holds (for a keyed cache fingerprint)."""
        values = [f"{name}={value.get()}" for name, value in self.secret_query]
        if self.userinfo is not None:
            values.append(f"@{self.userinfo.get()}")
        return tuple(values)
