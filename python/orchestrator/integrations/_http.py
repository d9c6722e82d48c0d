"""The one HTTP transport every provider adapter shares.

* One pooled, keep-alive :class:`httpx.AsyncClient` per base URL (and event
  loop, since a client's connections belong to the loop that opened them).
* Requests with retries: exponential backoff with jitter, honouring
  ``Retry-After`` (seconds or HTTP-date), only for retryable errors, all within
  a total deadline.
* HTTP status and transport failures mapped into :mod:`orchestrator.errors`.
* SSE and NDJSON stream parsers that raise :class:`StreamCutError` when a
  stream ends before its end marker and :class:`MalformedResponseError` on a
  malformed event.

Nothing here knows a provider: adapters pass predicates and parsers. Secrets
are kept in :class:`Secret` and scrubbed from every error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import time
import urllib.parse
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, TypedDict, TypeVar

import httpx

from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.errors import (
    AuthenticationError,
    ContentFilteredError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    ModelError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamCutError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ----- secrets ------------------------------------------------------------------


class Secret:
    """An API key that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The key itself, for a request header only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (and any ``key=`` query value) replaced by ``***``."""
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return re.sub(r"([?&](?:key|api_key|apikey)=)[^&\s]+", r"\1***", text, flags=re.I)


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe for cache keys and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


# ----- pooled clients -----------------------------------------------------------

#: Per base URL: up to 1,000 open connections, 20 kept idle. More idle
#: connections make httpcore's pool scheduling slower for every request (at
#: 100 concurrent requests on loopback, 64 idle cost 0.8 ms per request more
#: than 20); raise it with `set_pool_limits` when reconnecting is the larger
#: cost (TLS to a far provider at high concurrency).
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=20, keepalive_expiry=30.0)
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def get_client(base_url: str) -> httpx.AsyncClient:
    """The shared pooled client for ``base_url`` in the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _CLIENTS.get(loop)
    if per_loop is None:
        per_loop = _CLIENTS[loop] = {}
    client = per_loop.get(base_url)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            base_url=base_url, limits=_LIMITS, timeout=None, follow_redirects=False
        )
        per_loop[base_url] = client
    return client


def set_pool_limits(max_connections: int = 1000, max_keepalive_connections: int = 20) -> None:
    """Connection limits of pooled clients created from now on (per base URL)."""
    global _LIMITS
    for name, value in (
        ("max_connections", max_connections),
        ("max_keepalive_connections", max_keepalive_connections),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"invalid {name}: {value!r} (an integer > 0)")
    _LIMITS = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=30.0,
    )


async def aclose_clients() -> None:
    """Close every pooled client of the running event loop."""
    per_loop = _CLIENTS.pop(asyncio.get_running_loop(), {})
    for client in per_loop.values():
        await client.aclose()


# ----- retry policy --------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try: ``max_retries`` retries after the first
    attempt, delays ``base_delay * 2**n`` (capped, with jitter), every attempt
    and wait inside ``deadline`` seconds; ``timeout`` bounds one attempt's
    connect/read/write."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    timeout: float = 60.0
    connect_timeout: float = 10.0
    deadline: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (0-based): exponential, full jitter in its upper half."""
        delay = min(self.max_delay, self.base_delay * (2**attempt))
        return float(delay * random.uniform(0.5, 1.0))


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN / inf
        return None
    return max(0.0, seconds)


def retry_after_of(headers: httpx.Headers) -> Optional[float]:
    """``Retry-After`` (or ``retry-after-ms``) of a response, in seconds."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


# ----- error mapping --------------------------------------------------------------


@dataclass
class ErrorDetail:
    """What an error body says, in the common shapes ``{"error": {...}}``,
    ``{"error": "..."}`` and ``{"message": ...}``."""

    message: str = ""
    type: str = ""
    code: str = ""
    retry_after: Optional[float] = None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def error_detail(body: Any) -> ErrorDetail:
    """Extract message, type and code from a decoded error body of any common shape."""
    detail = ErrorDetail()
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return detail
    err: Any = body.get("error", body)
    if isinstance(err, str):
        detail.message = err
        detail.type = str(body.get("error_type") or body.get("type") or "")
        return detail
    if not isinstance(err, dict):
        return detail
    detail.message = str(err.get("message") or body.get("message") or "")
    detail.type = str(err.get("type") or err.get("status") or "")
    code = err.get("code")
    detail.code = "" if code is None else str(code)
    details = err.get("details")
    if isinstance(details, list):  # google.rpc.RetryInfo
        for item in details:
            if isinstance(item, dict) and isinstance(item.get("retryDelay"), str):
                m = _DURATION.match(item["retryDelay"])
                if m:
                    detail.retry_after = float(m.group(1))
    return detail


_CONTEXT_WORDS = re.compile(
    r"context[ _-]?length|context[ _-]?window|maximum context|prompt is too long|"
    r"too many (?:input )?tokens|input token count .* exceeds|exceeds the maximum number of tokens|"
    r"input is too long|reduce the length of the messages|tokens \+ `?max_new_tokens`? must be",
    re.I,
)
_FILTER_WORDS = re.compile(r"content[ _-]?(?:policy|filter|management)|safety|blocked", re.I)


def error_for_payload(
    detail: ErrorDetail,
    *,
    status: Optional[int],
    model: Optional[str],
    retry_after: Optional[float] = None,
) -> ModelError:
    """The documented exception for an error status and/or an error body
    (also used for error events inside a stream, where ``status`` is None)."""
    text = " ".join(p for p in (detail.message, detail.type, detail.code) if p)
    message = detail.message or detail.type or (f"HTTP {status}" if status else "provider error")
    retry_after = retry_after if retry_after is not None else detail.retry_after
    kind = f"{detail.type} {detail.code}".lower()
    cls: type[ModelError]
    if _CONTEXT_WORDS.search(text):
        cls = ContextLengthExceededError
    elif status in (401, 403) or "authentication" in kind or "permission" in kind:
        cls = AuthenticationError
    elif status == 429 or "rate_limit" in kind or "resource_exhausted" in kind:
        cls = RateLimitError
    elif status == 404 or "not_found" in kind:
        cls = NotFoundError
    elif status == 408 or "timeout" in kind or "deadline" in kind:
        cls = ProviderTimeoutError
    elif (status is not None and status >= 500) or any(
        w in kind for w in ("overloaded", "api_error", "server", "internal", "unavailable")
    ):
        cls = ServerError
    elif _FILTER_WORDS.search(text):
        cls = ContentFilteredError
    elif status is not None and 400 <= status < 500:
        cls = InvalidRequestError
    else:
        cls = ServerError  # an error event with nothing to tell it apart
    exc = cls(message, model=model, status_code=status, retry_after=retry_after)
    if "insufficient_quota" in kind:
        exc.__dict__["retryable"] = False  # a spent quota does not come back in seconds
    return exc


def _transport_error(exc: httpx.HTTPError, model: Optional[str], streaming: bool) -> ModelError:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(f"timed out: {type(exc).__name__}", model=model)
    if streaming:
        return StreamCutError(f"stream cut off: {type(exc).__name__}: {exc}", model=model)
    if isinstance(exc, (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError)):
        return ProviderConnectionError(f"{type(exc).__name__}: {exc}", model=model)
    return ProviderConnectionError(f"{type(exc).__name__}: {exc}", model=model)


# ----- stream parsers -------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event`` name (``message`` when unnamed) and data."""

    event: str
    data: str
    id: Optional[str] = None


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Parse server-sent events from text lines (per the WHATWG rules: fields
    ``event``/``data``/``id``, comments, multi-line data; an unterminated last
    event is dropped)."""
    event = ""
    data: list[str] = []
    last_id: Optional[str] = None
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value


EndPredicate = Callable[[Any], bool]


async def iter_sse_json(
    lines: AsyncIterator[str],
    *,
    is_end: EndPredicate,
    model: Optional[str] = None,
    sentinel: Optional[str] = None,
) -> AsyncIterator[tuple[str, Any]]:
    """Decoded ``(event name, JSON data)`` pairs of an SSE stream, up to and
    including the event for which ``is_end`` holds (a ``sentinel`` data line
    such as ``[DONE]`` also ends it and is not yielded).

    Raises :class:`MalformedResponseError` on data that is not JSON and
    :class:`StreamCutError` if the stream ends first."""
    async for ev in iter_sse(lines):
        if sentinel is not None and ev.data.strip() == sentinel:
            return
        try:
            payload = json.loads(ev.data)
        except ValueError:
            raise MalformedResponseError(
                f"malformed stream event {ev.event!r}: {ev.data[:120]!r}", model=model
            ) from None
        yield ev.event, payload
        if is_end(payload):
            return
    raise StreamCutError("stream ended before its end marker", model=model)


async def iter_ndjson(
    lines: AsyncIterator[str], *, is_end: EndPredicate, model: Optional[str] = None
) -> AsyncIterator[Any]:
    """Decoded objects of a newline-delimited JSON stream, up to and including
    the one for which ``is_end`` holds; errors as for :func:`iter_sse_json`."""
    async for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            payload = json.loads(line)
        except ValueError:
            raise MalformedResponseError(
                f"malformed stream line: {line[:120]!r}", model=model
            ) from None
        yield payload
        if is_end(payload):
            return
    raise StreamCutError("stream ended before its end marker", model=model)


# ----- the transport -----------------------------------------------------------------

ErrorParser = Callable[[Any], ErrorDetail]
HeadersFn = Callable[[], Mapping[str, str]]


@dataclass
class Transport:
    """Requests to one base URL for one model, with retries and error mapping.

    ``headers`` is called for every request (so a key set in the environment
    later is picked up); its values are scrubbed from error messages."""

    base_url: str
    model: str
    headers: HeadersFn = field(default=lambda: {})
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_retry_after: Optional[Callable[[float], None]] = None
    parse_error: ErrorParser = error_detail

    def __repr__(self) -> str:
        return f"Transport(base_url={public_url(self.base_url)!r}, model={self.model!r})"

    @property
    def client(self) -> httpx.AsyncClient:
        return get_client(self.base_url)

    def _timeout(self, remaining: float) -> httpx.Timeout:
        read = max(0.001, min(self.policy.timeout, remaining))
        return httpx.Timeout(read, connect=min(self.policy.connect_timeout, read))

    def _scrub(self, exc: ModelError, secrets: tuple[str, ...]) -> ModelError:
        if exc.args and isinstance(exc.args[0], str):
            cleaned = redact(exc.args[0], secrets)
            if cleaned != exc.args[0]:
                exc.args = (cleaned, *exc.args[1:])
        return exc

    def _status_error(self, response: httpx.Response, body: bytes) -> ModelError:
        try:
            decoded: Any = json.loads(body) if body else None
        except ValueError:
            decoded = None
        detail = self.parse_error(decoded)
        if not detail.message and body and decoded is None:
            detail.message = body[:200].decode("utf-8", "replace")
        return error_for_payload(
            detail,
            status=response.status_code,
            model=self.model,
            retry_after=retry_after_of(response.headers),
        )

    async def call(self, attempt: Callable[[float], Awaitable[T]], *, what: str = "request") -> T:
        """Run ``attempt(remaining_seconds)`` with retries for retryable
        :class:`ModelError`s, waiting ``Retry-After`` or a backoff, never past
        the deadline."""
        policy = self.policy
        deadline = time.monotonic() + policy.deadline
        tries = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderTimeoutError(
                    f"{what}: deadline of {policy.deadline:g}s passed", model=self.model
                )
            try:
                return await attempt(remaining)
            except ModelError as exc:
                if exc.retry_after and self.on_retry_after is not None:
                    self.on_retry_after(exc.retry_after)
                if not exc.retryable or tries >= policy.max_retries:
                    raise
                delay = policy.backoff(tries)
                if exc.retry_after is not None:
                    delay = exc.retry_after + random.uniform(0.0, 0.1 * max(exc.retry_after, 0.1))
                left = deadline - time.monotonic()
                if delay >= left:
                    logger.info(
                        "%s for %s: not retrying %s, wait %.2fs exceeds deadline",
                        what,
                        self.model,
                        exc.error_class,
                        delay,
                    )
                    raise
                tries += 1
                logger.info(
                    "%s for %s failed (%s: %s); retry %d/%d in %.2fs",
                    what,
                    self.model,
                    exc.error_class,
                    exc,
                    tries,
                    policy.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: Optional[Mapping[str, str]],
        remaining: float,
    ) -> tuple[httpx.Response, bytes]:
        headers = dict(self.headers())
        try:
            response = await self.client.request(
                method,
                path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=self._timeout(remaining),
            )
            return response, response.content
        except httpx.HTTPError as exc:
            raise self._scrub(
                _transport_error(exc, self.model, False), tuple(headers.values())
            ) from None

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        parse: Optional[Callable[[Any], T]] = None,
        retry: bool = True,
    ) -> T:
        """Send a request and return its decoded JSON body, passed through
        ``parse`` (which validates it, raising :class:`ModelError`s) inside the
        same attempt, so a retryable validation failure is retried too."""

        async def attempt(remaining: float) -> T:
            secrets = tuple(self.headers().values())
            response, body = await self._send(method, path, json_body, params, remaining)
            if response.status_code >= 400:
                raise self._scrub(self._status_error(response, body), secrets)
            try:
                decoded = json.loads(body)
            except ValueError:
                raise MalformedResponseError(
                    f"invalid JSON in response to {method} {path}: {body[:80]!r}",
                    model=self.model,
                    status_code=response.status_code,
                ) from None
            if parse is None:
                return decoded  # type: ignore[no-any-return]
            try:
                return parse(decoded)
            except ModelError as exc:
                raise self._scrub(exc, secrets) from None
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise MalformedResponseError(
                    f"unexpected response shape ({type(exc).__name__}: {exc})", model=self.model
                ) from None

        if not retry:
            return await attempt(self.policy.deadline)
        return await self.call(attempt, what=f"{method} {path}")

    async def stream_lines(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Optional[Mapping[str, str]] = None,
    ) -> AsyncGenerator[str, None]:
        """Open a streaming request (with retries until the response starts) and
        yield its body's text lines. A connection lost mid-body raises
        :class:`StreamCutError`; a read timeout :class:`ProviderTimeoutError`.
        The response is always closed, so the pool stays healthy."""
        started = time.monotonic()
        holder: list[httpx.Response] = []

        async def attempt(remaining: float) -> None:
            headers = dict(self.headers())
            secrets = tuple(headers.values())
            request = self.client.build_request(
                method,
                path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=self._timeout(remaining),
            )
            try:
                response = await self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self._scrub(_transport_error(exc, self.model, False), secrets) from None
            if response.status_code >= 400:
                try:
                    body = await response.aread()
                except httpx.HTTPError as exc:
                    raise self._scrub(_transport_error(exc, self.model, False), secrets) from None
                finally:
                    await response.aclose()
                raise self._scrub(self._status_error(response, body), secrets)
            holder.append(response)

        await self.call(attempt, what=f"{method} {path} (stream)")
        response = holder[0]
        try:
            lines = response.aiter_lines()
            while True:
                if time.monotonic() - started > self.policy.deadline:
                    raise ProviderTimeoutError(
                        f"stream exceeded the deadline of {self.policy.deadline:g}s",
                        model=self.model,
                    )
                try:
                    line = await lines.__anext__()
                except StopAsyncIteration:
                    return
                except httpx.HTTPError as exc:
                    raise _transport_error(exc, self.model, True) from None
                yield line
        finally:
            await response.aclose()

    async def stream_sse(
        self,
        method: str,
        path: str,
        *,
        is_end: EndPredicate,
        json_body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        sentinel: Optional[str] = None,
    ) -> AsyncIterator[tuple[str, Any]]:
        """``(event, JSON data)`` pairs of an SSE response (see :func:`iter_sse_json`);
        what follows the end marker is read and dropped so the connection is reused."""
        lines = self.stream_lines(method, path, json_body=json_body, params=params)
        try:
            async for item in iter_sse_json(
                lines, is_end=is_end, model=self.model, sentinel=sentinel
            ):
                yield item
            await drain(lines)
        finally:
            await lines.aclose()

    async def stream_ndjson(
        self,
        method: str,
        path: str,
        *,
        is_end: EndPredicate,
        json_body: Any = None,
        params: Optional[Mapping[str, str]] = None,
    ) -> AsyncIterator[Any]:
        """Objects of an NDJSON response (see :func:`iter_ndjson`)."""
        lines = self.stream_lines(method, path, json_body=json_body, params=params)
        try:
            async for item in iter_ndjson(lines, is_end=is_end, model=self.model):
                yield item
            await drain(lines)
        finally:
            await lines.aclose()


async def drain(iterator: AsyncIterator[Any], limit: int = 10_000) -> None:
    """Consume what is left of a stream (so its connection returns to the pool)."""
    count = 0
    async for _ in iterator:
        count += 1
        if count >= limit:
            return


# ----- what every HTTP adapter shares ---------------------------------------------------

_VERSION_SUFFIX = re.compile(r"\d{3,8}|\d{4}-\d{2}-\d{2}|latest")


def _plain_model_name(name: str) -> str:
    name = name.strip().lower().removeprefix("models/")
    name = name.removesuffix(":latest")
    return name.removesuffix("-latest")


def same_model(requested: str, answered: str) -> bool:
    """Whether an answer labelled ``answered`` is from the ``requested`` model:
    equal up to case, a ``models/`` prefix, a ``:latest``/``-latest`` tag, or a
    dated/numbered snapshot suffix (``gpt-4`` answered by ``gpt-4-0613``)."""
    r, a = _plain_model_name(requested), _plain_model_name(answered)
    if r == a:
        return True
    for short, long in ((r, a), (a, r)):
        if long.startswith(short + "-") and _VERSION_SUFFIX.fullmatch(long[len(short) + 1 :]):
            return True
    return False


def chat_messages(prompt: Any) -> list[dict[str, Any]]:
    """A prompt (a string or chat messages) as a list of ``{"role", "content"}``
    dicts; raises ``TypeError``/``ValueError`` on anything else."""
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("prompt must not be empty")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise ValueError("messages must not be empty")
        out: list[dict[str, Any]] = []
        for i, msg in enumerate(prompt):
            if not isinstance(msg, Mapping) or "role" not in msg or "content" not in msg:
                raise TypeError(f"message {i} must be a dict with 'role' and 'content'")
            out.append(dict(msg))
        return out
    raise TypeError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")


def push_capabilities(model: Model) -> None:
    """Tell every registry ``model`` is registered in that its capabilities changed."""
    for binding in list(model._bindings):
        try:
            binding.registry.update_model(model)
        except (KeyError, ValueError) as exc:
            logger.debug("could not update %s in a registry: %s", model.name, exc)


class ShapeGuard:
    """``with ShapeGuard(model):`` turns a lookup on an unexpected JSON shape
    (``KeyError``, ``TypeError``, ...) into :class:`MalformedResponseError`."""

    def __init__(self, model: str) -> None:
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: Optional[type[BaseException]], exc: Optional[BaseException], tb: Any
    ) -> None:
        if exc is not None and isinstance(exc, (KeyError, IndexError, TypeError, AttributeError)):
            raise MalformedResponseError(
                f"unexpected response shape ({type(exc).__name__}: {exc})", model=self.model
            ) from None


class HTTPOptions(TypedDict, total=False):
    """Keywords every HTTP adapter accepts.

    ``capabilities``, ``cost`` and ``speed`` override the catalogue;
    ``timeout`` bounds one attempt, ``max_retries`` counts retries after it
    and ``deadline`` bounds the whole call, retries included;
    ``validate_model=False`` accepts answers labelled with another model name
    (for servers that label every answer with their one model)."""

    capabilities: Optional[ModelCapabilities]
    cost: Optional[ModelCost]
    speed: Optional[float]
    timeout: float
    max_retries: int
    deadline: float
    validate_model: bool


#: What an HTTP adapter can do unless the catalogue or the user says otherwise.
CHAT_CAPABILITIES = ModelCapabilities(text_generation=True, chat=True, supports_streaming=True)


class HTTPModel(Model):
    """Base of the HTTP adapters: catalogue lookup, key handling (a :class:`Secret`,
    read from the environment at call time when not given), the shared
    :class:`Transport`, model-name checks, cache identity and health probing."""

    #: Environment variables holding the key, first set wins.
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: Environment variable holding the base URL, and the URL when it is unset.
    base_url_env: ClassVar[Optional[str]] = None
    default_base_url: ClassVar[str] = ""
    #: Whether a call needs a key at all with this base URL.
    requires_key: bool = True

    def __init__(
        self,
        name: str,
        provider: str,
        *,
        base_url: Optional[str],
        api_key: Optional[str],
        model_id: Optional[str],
        capabilities: Optional[ModelCapabilities] = None,
        cost: Optional[ModelCost] = None,
        speed: Optional[float] = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        deadline: float = 120.0,
        validate_model: bool = True,
        default_cost: Optional[ModelCost] = None,
        use_alias_id: bool = True,
    ) -> None:
        from orchestrator.integrations import catalogue

        if not base_url:
            from_env = os.environ.get(self.base_url_env) if self.base_url_env else None
            base_url = from_env or self.default_base_url

        if api_key is not None and not isinstance(api_key, str):
            raise TypeError("api_key must be a string or None")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"invalid base_url {public_url(str(base_url))!r}: need http(s)://")
        if max_retries < 0 or timeout <= 0 or deadline <= 0:
            raise ValueError("max_retries must be >= 0, timeout and deadline > 0")
        resolved = catalogue.resolve(
            provider,
            name,
            model_id=model_id,
            capabilities=capabilities,
            cost=cost,
            speed=speed,
            default_capabilities=CHAT_CAPABILITIES,
            default_cost=default_cost,
            use_alias_id=use_alias_id,
        )
        super().__init__(name, provider, resolved.capabilities, resolved.cost, speed=resolved.speed)
        self.model_id = resolved.model_id
        self.in_catalogue = resolved.known
        self.base_url = base_url.rstrip("/")
        self.validate_model = validate_model
        self._api_key: Optional[Secret] = Secret(api_key) if api_key else None
        self._transport = Transport(
            self.base_url,
            name,
            headers=self._headers,
            policy=RetryPolicy(max_retries=max_retries, timeout=timeout, deadline=deadline),
            on_retry_after=self.record_retry_after,
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        """Retries, backoff, per-attempt timeout and total deadline of every call."""
        return self._transport.policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy) -> None:
        self._transport.policy = policy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model_id={self.model_id!r}, "
            f"base_url={public_url(self.base_url)!r})"
        )

    # ----- keys -----------------------------------------------------------------

    def _key(self) -> Optional[str]:
        if self._api_key:
            return self._api_key.get()
        for var in self.api_key_env:
            value = os.environ.get(var)
            if value:
                return value
        return None

    def _require_key(self) -> None:
        if self.requires_key and not self._key():
            names = " or ".join(self.api_key_env) or "an API key"
            raise AuthenticationError(f"no API key: pass api_key= or set {names}", model=self.name)

    def _headers(self) -> Mapping[str, str]:
        """Request headers (with the key); subclasses add theirs."""
        return {}

    # ----- checks -----------------------------------------------------------------

    def _check_model(self, answered: Any) -> None:
        """Raise :class:`MalformedResponseError` if the wire says another model answered."""
        if not self.validate_model or answered is None:
            return
        if not isinstance(answered, str) or not same_model(self.model_id, answered):
            raise MalformedResponseError(
                f"response is for model {answered!r}, requested {self.model_id!r}",
                model=self.name,
            )

    def _empty(self) -> MalformedResponseError:
        return MalformedResponseError("empty completion", model=self.name)

    def cache_identity(self) -> str:
        """Provider, endpoint (without credentials) and model id."""
        return f"{self.provider}|{public_url(self.base_url)}|{self.model_id}"

    async def _probe(self) -> None:
        """The provider's cheapest request that shows the model is served."""
        raise NotImplementedError

    async def health_check(self) -> bool:
        """Whether the provider answers the cheapest probe for this model (never raises)."""
        try:
            if self.requires_key and not self._key():
                logger.warning("health check of %s: no API key", self.name)
                return False
            await self._probe()
        except ModelError as exc:
            logger.warning("health check of %s failed: %s", self.name, exc)
            return False
        return True
