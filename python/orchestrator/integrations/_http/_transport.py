"""Requests to one endpoint for one model: retries with backoff and capped
``Retry-After`` inside a total deadline, errors mapped and redacted, and
streamed lines that always release their connection.

The client is injectable: a caller's own :class:`httpx.AsyncClient`
(``http_client``, never closed here, every request built and sent by it), a
:class:`ClientPool` (``pool``, e.g. one per registry), or by default the
module's pool. A pooled request is built complete here (the pool client's
default headers, this model's headers kept built while they do not change,
the URL parsed once per path, the JSON encoded once) and handed to the
pool's transport itself, past the client's redirect, auth, cookie and hook
handling it does not use (see :meth:`ClientPool.direct`)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

import httpx

from orchestrator import _json
from orchestrator._secrets import redact, scrub_exception
from orchestrator.core.rate_limits import ReportedLimits
from orchestrator.core.waits import caller_waits
from orchestrator.errors import (
    InvalidRequestError,
    MalformedResponseError,
    ModelError,
    ProviderTimeoutError,
)
from orchestrator.integrations._http._connections import (
    ConnectionBody,
    Origin,
    PooledResponse,
    PreparedRequest,
    StreamedResponse,
    WholeResponse,
    origin_of,
    request_head,
)
from orchestrator.integrations._http._errors import (
    ErrorDetail,
    error_detail,
    error_for_payload,
    transport_error,
)
from orchestrator.integrations._http._pool import DEFAULT_POOL, ClientPool
from orchestrator.integrations._http._ratelimit import names_rate_limits, rate_limits_of
from orchestrator.integrations._http._retries import RetryAfterCap, RetryPolicy, retry_after_of
from orchestrator.integrations._http._streams import (
    EndPredicate,
    drain,
    iter_ndjson,
    iter_sse_json,
    split_lines,
)
from orchestrator.integrations._http._urls import Endpoint

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: What httpx's client adds to every request it builds (the encodings are
#: those every httpx install decodes).
_POOLED_HEADERS: tuple[tuple[str, str], ...] = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("User-Agent", f"python-httpx/{httpx.__version__}"),
)
_JSON_HEADER = ("Content-Type", "application/json")
#: A request body's encoding: compact UTF-8 as httpx writes it, no NaN (one
#: encoder for every request: ``json.dumps`` with options makes one per call).
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
#: Headers a prepared request's head must not hold: it writes its own.
_FRAMING = frozenset({b"host", b"content-length", b"transfer-encoding"})
ErrorParser = Callable[[Any], ErrorDetail]
HeadersFn = Callable[[], Mapping[str, str]]
Params = Optional[Mapping[str, str]]


def _no_headers() -> Mapping[str, str]:
    return {}


def _lines_of(response: httpx.Response | StreamedResponse) -> AsyncIterator[str]:
    """The response body's lines (see :func:`split_lines`): read straight
    from one of the pool's own connections when nothing is to be decoded,
    past httpx's byte iterators; else from httpx's decoded bytes."""
    if isinstance(response, StreamedResponse):
        return split_lines(response.body.chunks())
    if isinstance(response.stream, ConnectionBody) and "content-encoding" not in response.headers:
        return split_lines(response.stream)
    return split_lines(response.aiter_bytes())


def _raw_headers(response: httpx.Response | PooledResponse) -> list[tuple[bytes, bytes]]:
    if isinstance(response, PooledResponse):
        return response.raw_headers
    return response.headers.raw


def _unencodable_field(value: Any, path: str = "") -> Optional[str]:
    """The path (``messages[0].content``) of the first string in a JSON body
    that UTF-8 cannot encode (a lone surrogate), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _unencodable_field(key, path) or _unencodable_field(
                item, f"{path}.{key}" if path else str(key)
            )
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _unencodable_field(item, f"{path}[{index}]")
            if found:
                return found
    return None


@dataclass
class Transport:
    """Requests to ``endpoint`` for ``model``, with retries and error mapping.

    ``headers`` is called for every request (so a key set in the environment
    later is picked up); ``on_rate_limits`` with what each response's
    rate-limit headers reported, when they report anything. Every
    :class:`ModelError` leaving the transport has been through
    :func:`~orchestrator._secrets.scrub_exception`."""

    endpoint: Endpoint
    model: str
    headers: HeadersFn = _no_headers
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_retry_after: Optional[Callable[[float], None]] = None
    on_rate_limits: Optional[Callable[[ReportedLimits], None]] = None
    parse_error: ErrorParser = error_detail
    http_client: Optional[httpx.AsyncClient] = None
    pool: ClientPool = DEFAULT_POOL
    _cap: RetryAfterCap = field(default_factory=RetryAfterCap, repr=False)
    #: The last header items of ``headers()`` and the request headers built from them.
    _built_headers: Optional[tuple[tuple[tuple[str, str], ...], list[tuple[str, str]]]] = field(
        default=None, repr=False
    )
    #: The model's headers :meth:`_pooled_headers` was built from, whether with JSON, and it.
    _pooled: Optional[tuple[list[tuple[str, str]], bool, httpx.Headers]] = field(
        default=None, repr=False
    )
    #: Parsed URL per path (with the endpoint's own query parameters).
    _urls: dict[str, httpx.URL] = field(default_factory=dict, repr=False)
    #: Per (method, path): the pooled headers a prepared head was built from,
    #: its origin and the head (``None``: those headers need httpx's framing).
    _heads: dict[tuple[str, str], tuple[httpx.Headers, Optional[tuple[Origin, bytes]]]] = field(
        default_factory=dict, repr=False
    )

    def __repr__(self) -> str:
        return f"Transport(endpoint={self.endpoint.public()!r}, model={self.model!r})"

    def _timeouts(self, remaining: float) -> dict[str, Optional[float]]:
        """One attempt's timeouts: reading, writing and waiting for a
        connection within what is left of the deadline; connecting within
        that too; and the deadline itself, which the pool's connections keep
        for the whole response (a body that trickles in, each read in time,
        still ends there)."""
        read, connect = self._read_and_connect(remaining)
        deadline = time.monotonic() + remaining
        return {"connect": connect, "read": read, "write": read, "pool": read, "deadline": deadline}

    def _timeout(self, remaining: float) -> httpx.Timeout:
        """httpx's timeouts of a caller's own client (it has no deadline)."""
        read, connect = self._read_and_connect(remaining)
        return httpx.Timeout(read, connect=connect)

    def _read_and_connect(self, remaining: float) -> tuple[float, float]:
        """An attempt's read (also write and pool) and connect timeouts."""
        read = max(0.001, min(self.policy.timeout, remaining))
        return read, min(self.policy.connect_timeout, read)

    def _request(
        self, method: str, path: str, json_body: Any, params: Params, remaining: float
    ) -> httpx.Request | PreparedRequest:
        """The request to send. A body, header or parameter that cannot be
        encoded is the caller's error, raised before anything is sent: an
        :class:`InvalidRequestError` (not retryable) naming the field, never a
        failure of the model."""
        try:
            return self._build(method, path, json_body, params, remaining)
        except UnicodeEncodeError as exc:
            where = _unencodable_field(json_body) or "a header or query parameter"
            raise InvalidRequestError(
                f"invalid request: {where} cannot be encoded ({exc.encoding}: {exc.reason})",
                model=self.model,
            ) from None

    def _build(
        self, method: str, path: str, json_body: Any, params: Params, remaining: float
    ) -> httpx.Request | PreparedRequest:
        if self.http_client is not None:  # the caller's client builds its own requests
            return self.http_client.build_request(
                method,
                self._url(path, params),
                json=json_body,
                headers=self._request_headers(),
                timeout=self._timeout(remaining),
            )
        content = None
        if json_body is not None:
            content = _JSON_ENCODER.encode(json_body).encode("utf-8")
            prepared = self._prepared(method, path, content, params, remaining)
            if prepared is not None:
                return prepared
        return httpx.Request(
            method,
            self._url(path, params),
            headers=self._pooled_headers(json_body is not None),
            content=content,
            extensions={"timeout": self._timeouts(remaining)},
        )

    def _prepared(
        self, method: str, path: str, content: bytes, params: Params, remaining: float
    ) -> Optional[PreparedRequest]:
        """A JSON request for the pool's own connections, built to bytes from
        a head kept while this model's headers do not change: the bytes
        httpx would write (``Host`` first, ``Content-Length`` last) without
        its request and header objects. ``None`` where httpx must build it:
        query parameters, a proxy, or headers that frame the request."""
        via = None if params else self.pool.direct(self.endpoint.url)
        if via is None:
            return None
        headers = self._pooled_headers(True)
        kept = self._heads.get((method, path))
        if kept is None or kept[0] is not headers:
            kept = (headers, self._prepared_head(method, path, headers))
            self._heads[(method, path)] = kept
        if kept[1] is None:
            return None
        origin, head = kept[1]
        return PreparedRequest(via, method, origin, head, content, self._timeouts(remaining))

    def _prepared_head(
        self, method: str, path: str, headers: httpx.Headers
    ) -> Optional[tuple[Origin, bytes]]:
        if any(name.lower() in _FRAMING for name, _ in headers.raw):
            return None
        url = self._url(path, None)
        try:
            return origin_of(url), request_head(method, url, [(b"Host", url.netloc), *headers.raw])
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol):
            return None  # httpx's request, sent, raises it as before

    def _pooled_headers(self, with_json: bool) -> httpx.Headers:
        """A pooled request's headers, normalized once while this model's
        headers do not change (``httpx.Request`` copies them)."""
        model_headers = self._request_headers()
        built = self._pooled
        if built is None or built[0] is not model_headers or built[1] != with_json:
            items = [*_POOLED_HEADERS, *model_headers, *([_JSON_HEADER] if with_json else [])]
            built = self._pooled = (model_headers, with_json, httpx.Headers(items))
        return built[2]

    def _request_headers(self) -> list[tuple[str, str]]:
        """This model's headers (and the endpoint's basic auth), rebuilt only
        when ``headers()`` returns other values (a key changed)."""
        items = tuple(self.headers().items())
        if self._built_headers is not None and self._built_headers[0] == items:
            return self._built_headers[1]
        headers = dict(items)
        auth = self.endpoint.basic_auth
        if auth is not None and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = auth
        built = list(headers.items())
        self._built_headers = (items, built)
        return built

    def _url(self, path: str, params: Params) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            query = list(self.endpoint.params())
            url = httpx.URL(self.endpoint.url + path, params=query or None)
            self._urls[path] = url
        return url.copy_merge_params(dict(params)) if params else url

    async def _send(
        self, request: httpx.Request | PreparedRequest
    ) -> httpx.Response | StreamedResponse:
        """Send through the caller's client, or the pool's transport itself
        (its client when a proxy applies); the body streams."""
        if isinstance(request, PreparedRequest):
            return await request.via.send_prepared(request)
        if self.http_client is not None:
            return await self.http_client.send(request, stream=True)
        direct = self.pool.direct(self.endpoint.url)
        if direct is None:
            return await self.pool.get(self.endpoint.url).send(request, stream=True)
        response = await direct.handle_async_request(request)
        response.request = request
        return response

    async def _fetch(self, request: httpx.Request | PreparedRequest) -> WholeResponse:
        """Send as :meth:`_send` does, and read the response to its end (the
        connection released)."""
        if isinstance(request, PreparedRequest):
            return await request.via.fetch_prepared(request)
        response = await self._send(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return WholeResponse(response.status_code, _raw_headers(response), content)

    def _observe(self, response: httpx.Response | PooledResponse) -> None:
        """Pass on what the response's rate-limit headers reported."""
        if self.on_rate_limits is not None and names_rate_limits(_raw_headers(response)):
            reported = rate_limits_of(response.headers)
            if reported:
                self.on_rate_limits(reported)

    def _status_error(self, response: httpx.Response | PooledResponse, body: bytes) -> ModelError:
        try:
            decoded: Any = _json.loads(body) if body else None
        except _json.NOT_JSON:
            decoded = None
        detail = self.parse_error(decoded)
        if not detail.message and body and decoded is None:
            detail.message = body[:200].decode("utf-8", "replace")
        return error_for_payload(
            detail,
            status=response.status_code,
            model=self.model,
            retry_after=retry_after_of(response.headers),
            cap=self._cap,
            max_retry_after=self.policy.max_retry_after,
        )

    async def call(self, attempt: Callable[[float], Awaitable[T]], *, what: str = "request") -> T:
        """Run ``attempt(remaining_seconds)`` with retries for retryable
        :class:`ModelError`s, waiting ``Retry-After`` or a backoff, never past
        the deadline. Errors leave redacted."""
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
                scrub_exception(exc)
                if exc.retry_after and self.on_retry_after is not None:
                    self.on_retry_after(exc.retry_after)
                if not exc.retryable or tries >= policy.max_retries:
                    raise
                delay = policy.backoff(tries)
                if exc.retry_after is not None:
                    if caller_waits():  # failover: another model, or its own wait
                        logger.info(
                            "%s for %s: %s with a Retry-After of %.2fs, left to failover",
                            what,
                            self.model,
                            exc.error_class,
                            exc.retry_after,
                        )
                        raise
                    delay = exc.retry_after + random.uniform(0.0, 0.1 * max(exc.retry_after, 0.1))
                if delay >= deadline - time.monotonic():
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

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Params = None,
        parse: Optional[Callable[[Any], T]] = None,
        retry: bool = True,
    ) -> T:
        """Send a request and return its decoded JSON body, passed through
        ``parse`` (which validates it, raising :class:`ModelError`s) inside the
        same attempt, so a retryable validation failure is retried too."""

        async def attempt(remaining: float) -> T:
            request = self._request(method, path, json_body, params, remaining)
            try:
                response = await self._fetch(request)
            except httpx.HTTPError as exc:
                raise transport_error(exc, self.model, False) from None
            self._observe(response)
            body = response.content
            if response.status_code >= 400:
                raise self._status_error(response, body)
            try:
                decoded = _json.loads(body)
            except _json.NOT_JSON:
                raise MalformedResponseError(
                    redact(f"invalid JSON in response to {method} {path}: {body[:80]!r}"),
                    model=self.model,
                    status_code=response.status_code,
                ) from None
            if parse is None:
                return decoded  # type: ignore[no-any-return]
            try:
                return parse(decoded)
            except ModelError:
                raise
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise MalformedResponseError(
                    redact(f"unexpected response shape ({type(exc).__name__}: {exc})"),
                    model=self.model,
                ) from None

        if not retry:
            try:
                return await attempt(self.policy.deadline)
            except ModelError as exc:
                raise scrub_exception(exc) from None
        return await self.call(attempt, what=f"{method} {path}")

    async def stream_lines(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Params = None,
    ) -> AsyncGenerator[str, None]:
        """Open a streaming request (with retries until the response starts) and
        yield its body's text lines. A connection lost mid-body raises
        :class:`StreamCutError`; the deadline :class:`ProviderTimeoutError`.
        The response is always closed, so the pool stays healthy."""
        started = time.monotonic()
        holder: list[httpx.Response | StreamedResponse] = []

        async def attempt(remaining: float) -> None:
            request = self._request(method, path, json_body, params, remaining)
            try:
                response = await self._send(request)
            except httpx.HTTPError as exc:
                raise transport_error(exc, self.model, False) from None
            self._observe(response)
            if response.status_code >= 400:
                try:
                    body = await response.aread()
                except httpx.HTTPError as exc:
                    raise transport_error(exc, self.model, False) from None
                finally:
                    await response.aclose()
                raise self._status_error(response, body)
            holder.append(response)

        await self.call(attempt, what=f"{method} {path} (stream)")
        response = holder[0]
        try:
            lines = _lines_of(response)
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
                    raise transport_error(exc, self.model, True) from None
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
        params: Params = None,
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
        params: Params = None,
    ) -> AsyncIterator[Any]:
        """Objects of an NDJSON response (see :func:`iter_ndjson`)."""
        lines = self.stream_lines(method, path, json_body=json_body, params=params)
        try:
            async for item in iter_ndjson(lines, is_end=is_end, model=self.model):
                yield item
            await drain(lines)
        finally:
            await lines.aclose()
