"""The one place secrets are known and scrubbed.

Every credential the process holds registers here: API keys given to an
adapter (:class:`Secret`), keys read from the environment at call time, the
userinfo of base URLs and credential-named query values. :func:`redact`
replaces all of them, whatever the text's format (plain, JSON-escaped,
percent-encoded or HTML-escaped), plus three patterns that need no
registration: ``Bearer <token>``, URL userinfo (``scheme://user:***@``) and
credential-named query parameters (``?key=***``). A registered value is also
found base64-encoded (standard or URL-safe, padded or not, alone or inside
``user:key`` as Basic auth sends it), and cut short (an echo such as
``unknown key sk-abc...``: a prefix of :func:`prefix_length` characters or
more counts as the secret).

It is applied to:

* exception messages: :func:`scrub_exception` rewrites ``args`` (so
  ``str(exc)``, ``repr`` and tracebacks) of an exception and of its
  ``__cause__``/``__context__`` chain; the HTTP layer runs every error it
  raises through it;
* log records: :class:`RedactingFilter`, installed on the ``orchestrator``
  logger and, through the log-record factory, on every record of the
  ``orchestrator.*``, ``httpx`` and ``httpcore`` loggers, wherever it is
  handled (a filter on a logger alone does not see its children's records);
* command-line output: the CLI passes every line through :func:`redact`.
"""

from __future__ import annotations

import base64
import collections
import html
import json
import logging
import re
import threading
import urllib.parse
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "RedactingFilter",
    "Secret",
    "install_log_redaction",
    "known_secret_count",
    "prefix_length",
    "redact",
    "register_secret",
    "scrub_exception",
]

#: What a secret is replaced with.
REDACTED = "***"
#: Registered values shorter than this are not scrubbed by value (they would
#: mangle ordinary words); the patterns still catch them in their usual places.
MIN_SECRET_LENGTH = 4
#: A prefix of a registered value is scrubbed once it shows all but this many
#: characters of it, or :data:`LONG_PREFIX` characters...
SHORT_TAIL = 4
#: ... whichever is shorter; but never fewer than :data:`MIN_PREFIX` (shorter
#: prefixes of short values would mangle ordinary words).
LONG_PREFIX = 13
MIN_PREFIX = 8
#: Query parameters whose values are credentials.
SECRET_QUERY_NAMES = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "token",
        "auth",
        "password",
        "secret",
        "client_secret",
        "sig",
        "signature",
    }
)

_BEARER = re.compile(r"(\bBearer\s+)[^\s\"'<>,;]+", re.I)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)([^/\s@\"'<>]*)@", re.I)
_SECRET_QUERY = re.compile(
    r"([?&](?:" + "|".join(re.escape(n) for n in sorted(SECRET_QUERY_NAMES)) + r")=)[^&#\s\"'<>]+",
    re.I,
)

#: Guards the registry. Reentrant: a log record made by a finalizer that runs
#: while this thread holds it is redacted too (nothing slow runs under it).
_lock = threading.RLock()
#: Registered values and how many live holders each has.
_values: dict[str, int] = {}
#: Values whose holders went, to forget at the next registration or redaction.
_releases: collections.deque[str] = collections.deque()


_URL_SAFE = str.maketrans("+/", "-_")


def prefix_length(value: str) -> Optional[int]:
    """How many leading characters of ``value`` count as the secret when an
    echo is cut short (None: only the whole value is scrubbed)."""
    length = max(MIN_PREFIX, min(len(value) - SHORT_TAIL, LONG_PREFIX))
    return length if length < len(value) else None


def _base64_cores(value: str) -> set[str]:
    """The base64 text of ``value`` that is the same wherever it stands in an
    encoded string (alone, after ``user:``...): for each of the three byte
    alignments, the characters that encode ``value``'s bits only; in the
    standard and the URL-safe alphabet (padding is outside the core)."""
    raw = value.encode("utf-8", "surrogatepass")
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        core = encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6]
        cores |= {core, core.translate(_URL_SAFE)}
    return cores


def _variants(value: str) -> set[str]:
    """The forms a secret takes in JSON, URLs, HTML and base64."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        html.escape(value),
        *_base64_cores(value),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


@dataclass(frozen=True)
class _Scrubber:
    """Finds every registered form, and every long prefix of a registered
    value (``stems``: the prefix -> the values it starts)."""

    pattern: re.Pattern[str]
    stems: dict[str, tuple[str, ...]]

    def sub(self, text: str) -> str:
        """``text`` with each match, stretched over as much of the value it
        starts as the text goes on with, replaced by ``***``."""
        parts: list[str] = []
        position = 0
        for match in self.pattern.finditer(text):
            start = match.start()
            if start < position:  # inside a stretched match
                continue
            end = match.end()
            for value in self.stems.get(match.group(), ()):
                end = max(end, start + _shared_length(text, start, value))
            parts += [text[position:start], REDACTED]
            position = end
        parts.append(text[position:])
        return "".join(parts)


def _shared_length(text: str, start: int, value: str) -> int:
    """How many characters of ``value`` ``text`` shows from ``start`` on."""
    shown = 0
    for expected, found in zip(value, text[start : start + len(value)]):
        if expected != found:
            break
        shown += 1
    return shown


_scrubber: Optional[_Scrubber] = None


def _compiled() -> Optional[_Scrubber]:
    """The scrubber of every registered value, rebuilt (outside the lock) after a change."""
    global _scrubber
    with _lock:
        _apply_releases()
        scrubber, values = _scrubber, list(_values)
    if scrubber is not None or not values:
        return scrubber
    forms: set[str] = set()
    stems: dict[str, list[str]] = collections.defaultdict(list)
    for value in values:
        forms |= _variants(value)
        length = prefix_length(value)
        if length is not None:
            stems[value[:length]].append(value)
    alternatives = sorted(forms | set(stems), key=len, reverse=True)  # longest first
    scrubber = _Scrubber(
        re.compile("|".join(re.escape(f) for f in alternatives)),
        {stem: tuple(found) for stem, found in stems.items()},
    )
    with _lock:
        if not _releases and list(_values) == values:
            _scrubber = scrubber
    return scrubber


def register_secret(value: str) -> Callable[[], None]:
    """Make ``redact`` scrub ``value`` until the returned function is called
    (each registration counts once; a value stays known while any holds it)."""
    if not isinstance(value, str):
        raise TypeError(f"invalid secret: expected a string, got {type(value).__name__}")
    global _scrubber
    if len(value) < MIN_SECRET_LENGTH:
        return _nothing
    with _lock:
        _apply_releases()
        _values[value] = _values.get(value, 0) + 1
        _scrubber = None
    released: list[bool] = []

    def release() -> None:
        # Runs from garbage collection too, maybe while this thread holds
        # _lock: so it only queues (deque.append is atomic), never locks.
        if not released:
            released.append(True)
            _releases.append(value)

    return release


def _apply_releases() -> None:
    """Forget the values whose holders went (call with ``_lock`` held)."""
    global _scrubber
    while _releases:
        value = _releases.popleft()
        count = _values.get(value, 0) - 1
        if count > 0:
            _values[value] = count
        else:
            _values.pop(value, None)
        _scrubber = None


def _nothing() -> None:
    """Release of a value too short to register."""


def known_secret_count() -> int:
    """How many distinct secrets are registered (for tests and diagnostics)."""
    with _lock:
        _apply_releases()
        return len(_values)


def redact(text: str) -> str:
    """``text`` with every registered secret, bearer token, URL password and
    credential-named query value replaced by ``***``."""
    if not isinstance(text, str):
        text = str(text)
    scrubber = _compiled()
    if scrubber is not None:
        text = scrubber.sub(text)
    text = _BEARER.sub(r"\1" + REDACTED, text)
    text = _USERINFO.sub(_redact_userinfo, text)
    return _SECRET_QUERY.sub(r"\1" + REDACTED, text)


def _redact_userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match.group(2).partition(":")
    if sep:
        return f"{match.group(1)}{user}:{REDACTED}@"
    return f"{match.group(1)}{REDACTED}@"


class Secret:
    """A credential that never shows itself in ``repr``, ``str`` or ``vars``,
    and that :func:`redact` scrubs from every message while it lives."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"invalid secret: expected a string, got {type(value).__name__}")
        self._value = value
        weakref.finalize(self, register_secret(value))

    def get(self) -> str:
        """The credential itself, for a request header only."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def _scrub_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(redact(a) if isinstance(a, str) else a for a in args)


def scrub_exception(exc: BaseException) -> BaseException:
    """Redact ``exc``'s arguments (what ``str``, ``repr`` and tracebacks show)
    and those of the exceptions it was raised from; returns ``exc``."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cleaned = _scrub_args(current.args)
        if cleaned != current.args:
            current.args = cleaned
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [redact(n) if isinstance(n, str) else n for n in notes]
        current = current.__cause__ or current.__context__
    return exc


#: Set on a record once it is redacted (the factory and the filter both see it).
_MARK = "_orchestrator_redacted"


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and exception text in place
    (always lets it through)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):
            return True
        setattr(record, _MARK, True)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format or a failing __str__: never break the caller
            message = f"unformattable log message {record.msg!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_exception(record.exc_info[1])
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


#: Loggers whose records are redacted wherever they are handled.
REDACTED_LOGGERS = ("orchestrator", "httpx", "httpcore")
_FILTER = RedactingFilter()
_installed = False


def _covered(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in REDACTED_LOGGERS)


def install_log_redaction() -> None:
    """Install :class:`RedactingFilter` on the ``orchestrator`` logger and on
    every record of the redacted loggers (idempotent; runs at import)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    logging.getLogger("orchestrator").addFilter(_FILTER)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _covered(record.name):
            _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(factory)


install_log_redaction()
