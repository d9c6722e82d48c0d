"""A small HTTP/1.1 server on 127.0.0.1 (its own event loop in a background
thread) with keep-alive, chunked streaming, and scripted faults.

Provider servers subclass :class:`LoopbackServer` and implement ``route``;
the base applies faults: delays, error statuses with the provider's error
body and ``Retry-After``, dropped connections, invalid JSON, and for streams
a cut-off connection, a clean end without the end marker, or a malformed event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional, Union

logger = logging.getLogger(__name__)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next ``times`` requests whose
    path contains ``path`` (``times=-1``: every such request).

    * ``status``: answer with this HTTP status and the provider's error body;
      ``kind`` picks the error (``"context_length"``, ``"content_filter"``,
      ``"quota"``) where the status alone does not; ``retry_after`` sets the header.
    * ``delay``: seconds to wait before answering.
    * ``drop``: close the connection without answering.
    * ``invalid_json``: a 200 whose body is not JSON.
    * ``empty``/``wrong_model``: a well-formed answer with no text / another model.
    * ``cut``: a stream whose connection is closed halfway.
    * ``truncate``: a stream that ends cleanly but without its end marker.
    * ``malformed``: a stream with a malformed event halfway.
    * ``stream_error``: an in-stream error event halfway (provider's format).
    * ``headers``: extra response headers (e.g. the provider's rate-limit ones).
    * ``echo``: with ``status``, an error body that echoes every credential
      the request carried (auth headers, ``key`` query value), as the
      provider's JSON error (``"json"``) or as an HTML page (``"html"``), the
      way OpenAI's 401 ("Incorrect API key provided: sk-...") and proxies do.
    """

    status: Optional[int] = None
    kind: Optional[str] = None
    retry_after: Optional[str] = None
    delay: float = 0.0
    drop: bool = False
    invalid_json: bool = False
    empty: bool = False
    wrong_model: bool = False
    cut: bool = False
    truncate: bool = False
    malformed: bool = False
    stream_error: bool = False
    echo: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    path: Optional[str] = None


@dataclass
class Request:
    """What the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class JSONResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A chunked response: ``events`` are sent in order; the last ``end_events``
    of them are the end marker (dropped by the ``truncate`` fault)."""

    events: list[bytes]
    content_type: str
    end_events: int = 1
    malformed_event: bytes = b"data: {not json\n\n"
    error_event: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Response = Union[JSONResponse, StreamResponse]


class _Drop(Exception):
    pass


class LoopbackServer:
    """Base of the fake provider servers. ``start()`` returns the base URL;
    use as a context manager to stop it. ``answer_delay`` delays every answer
    (for benchmarks); ``chunk_delay`` waits between streamed events;
    ``requests`` records what arrived; ``connections`` counts accepted TCP
    connections (to check keep-alive and pool reuse); ``streams_completed``
    and ``streams_abandoned`` count streams sent to their end and streams
    whose client hung up halfway. ``extra_headers`` go on every response;
    :meth:`rate_limit_headers` writes the provider's rate-limit headers.

    Like the real services, a server can refuse a prompt by its content:
    ``context_windows`` maps a model to its window (a chat whose prompt
    tokens, :func:`count_tokens`, plus ``max_tokens`` exceed it gets the
    provider's context-length error), and a prompt holding one of
    ``blocked_words`` gets the provider's content-filter answer
    (:meth:`content_filtered`)."""

    #: Path prefix of the base URL the provider's clients use (e.g. ``/v1``).
    base_path = ""
    provider = "loopback"

    def __init__(
        self,
        *,
        answer_delay: float = 0.0,
        chunk_delay: float = 0.0,
        record: bool = True,
        tls: Optional[ssl.SSLContext] = None,
    ) -> None:
        #: Serve HTTPS with this server-side context (``None``: plain HTTP).
        self.tls = tls
        self.answer_delay = answer_delay
        self.chunk_delay = chunk_delay
        self.streams_completed = 0
        self.streams_abandoned = 0
        self.faults: list[Fault] = []
        self.extra_headers: dict[str, str] = {}
        self.requests: list[Request] = []
        self.context_windows: dict[str, int] = {}
        self.blocked_words: set[str] = set()
        self.record = record
        self.connections = 0
        self.port = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._arrival = threading.Condition()
        self._writers: set[asyncio.StreamWriter] = set()
        self._idle = threading.Event()
        self._idle.set()

    # ----- lifecycle --------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the server's API (with ``base_path``)."""
        return f"{self.root_url}{self.base_path}"

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` requests have arrived (recording must be on);
        whether they did within ``timeout`` seconds."""
        with self._arrival:
            return self._arrival.wait_for(lambda: len(self.requests) >= count, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the server closed its side of every connection (it does so
        after the client); whether it did within ``timeout`` seconds."""
        return self._idle.wait(timeout)

    @property
    def root_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start serving in a background thread; returns :attr:`url`."""
        if self._thread is not None:
            return self.url
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                self._server = await asyncio.start_server(
                    self._handle_connection, "127.0.0.1", 0, backlog=512, ssl=self.tls
                )
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(serve())
            loop.run_forever()
            handlers = asyncio.all_tasks(loop)  # connections still open at stop
            for task in handlers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*handlers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.provider}-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("loopback server did not start")
        return self.url

    def stop(self) -> None:
        """Stop serving and close every connection."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            if self._server is not None:
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- faults -----------------------------------------------------------------

    #: The provider's rate-limit headers: ``(remaining, reset)`` names for
    #: requests, then for tokens; empty for a provider that sends none.
    rate_limit_header_names: tuple[tuple[str, str], ...] = ()

    def rate_limit_reset(self, seconds: float) -> str:
        """A reset ``seconds`` from now, as the provider writes it (a duration)."""
        return f"{seconds:g}s"

    def rate_limit_headers(
        self,
        remaining_requests: Optional[int] = None,
        requests_reset: float = 60.0,
        remaining_tokens: Optional[int] = None,
        tokens_reset: float = 60.0,
    ) -> dict[str, str]:
        """The headers this provider reports its remaining allowance in
        (resets in seconds from now); none for a provider that sends none."""
        headers = {}
        given = ((remaining_requests, requests_reset), (remaining_tokens, tokens_reset))
        for (count_name, reset_name), (remaining, reset) in zip(
            self.rate_limit_header_names, given
        ):
            if remaining is not None:
                headers[count_name] = str(remaining)
                headers[reset_name] = self.rate_limit_reset(reset)
        return headers

    def add_fault(self, fault: Optional[Fault] = None, **kwargs: Any) -> Fault:
        """Script a fault (a :class:`Fault` or its fields as keywords)."""
        fault = fault or Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _take_fault(self, path: str) -> Optional[Fault]:
        with self._lock:
            for fault in self.faults:
                if fault.path is None or fault.path in path:
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # ----- what providers implement ---------------------------------------------------

    async def route(self, request: Request, fault: Fault) -> Response:
        """The answer to ``request`` (``fault`` has ``empty``/``wrong_model`` etc.)."""
        raise NotImplementedError

    def error_response(self, status: int, kind: Optional[str], message: str) -> JSONResponse:
        """The provider's documented error body for ``status``."""
        return JSONResponse(status, {"error": message})

    def content_filtered(self, model: str, stream: bool) -> Response:
        """The provider's answer to a prompt its content filter blocks
        (default: its 400 content-filter error)."""
        return self.error_response(400, "content_filter", "blocked by the content filter")

    def refusal(self, model: str, prompt: Any, max_tokens: Any, stream: bool) -> Optional[Response]:
        """The provider's answer to a prompt it will not take (see the class), or ``None``."""
        window = self.context_windows.get(model)
        wanted = max_tokens if isinstance(max_tokens, int) else 0
        if window is not None and count_tokens(prompt) + wanted > window:
            return self.error_response(400, "context_length", "context length exceeded")
        if self.blocked_words & set(_text_of(prompt).split()):
            return self.content_filtered(model, stream)
        return None

    # ----- HTTP --------------------------------------------------------------------------

    async def _read_request(self, reader: asyncio.StreamReader) -> Optional[Request]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        path, _, qs = target.partition("?")
        query = {}
        for pair in qs.split("&"):
            if pair:
                k, _, v = pair.partition("=")
                query[k] = v
        return Request(method, path, query, headers, body)

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._writers.add(writer)
        self._idle.clear()
        try:
            await self._serve(reader, writer)
        finally:
            self._writers.discard(writer)
            if not self._writers:
                self._idle.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until it ends, then close it."""
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                if self.record:
                    with self._arrival:
                        self.requests.append(request)
                        self._arrival.notify_all()
                keep = await self._respond(request, writer)
                if not keep or request.headers.get("connection", "").lower() == "close":
                    break
        except _Drop:
            writer.transport.abort()
            return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("loopback server failed")
        try:
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def _respond(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        fault = self._take_fault(request.path) or Fault()
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            raise _Drop
        if fault.status is not None and fault.echo == "html":
            page = f"<html><body><h1>{fault.status}</h1><p>{_echoed(request)}</p></body></html>"
            await self._send(writer, fault.status, page.encode(), "text/html", {})
            return True
        if fault.status is not None:
            message = _echoed(request) if fault.echo else _message(fault)
            resp: Response = self.error_response(fault.status, fault.kind, message)
            if fault.retry_after is not None:
                resp.headers["retry-after"] = fault.retry_after
            resp.headers.update(fault.headers)
        elif fault.invalid_json:
            await self._send(writer, 200, b'{"id": "x", "choices": [', "application/json", {})
            return True
        else:
            try:
                resp = await self.route(request, fault)
            except json.JSONDecodeError:
                resp = self.error_response(400, None, "request body is not valid JSON")
            resp.headers.update(fault.headers)
        if isinstance(resp, JSONResponse):
            body = json.dumps(resp.body).encode()
            await self._send(writer, resp.status, body, "application/json", resp.headers)
            return True
        return await self._stream(writer, resp, fault)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
    ) -> None:
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"content-type: {content_type}",
            f"content-length: {len(body)}",
            *(f"{k}: {v}" for k, v in {**self.extra_headers, **headers}.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _stream(
        self, writer: asyncio.StreamWriter, resp: StreamResponse, fault: Fault
    ) -> bool:
        head = [
            "HTTP/1.1 200 OK",
            f"content-type: {resp.content_type}",
            "transfer-encoding: chunked",
            "cache-control: no-cache",
            *(f"{k}: {v}" for k, v in {**self.extra_headers, **resp.headers}.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        events = list(resp.events)
        half = max(1, (len(events) - resp.end_events) // 2)
        if fault.truncate:
            events = events[: len(events) - resp.end_events]
        if fault.malformed:
            events.insert(half, resp.malformed_event)
        if fault.stream_error and resp.error_event:
            events = [*events[:half], resp.error_event]
        try:
            for i, event in enumerate(events):
                if fault.cut and i == half:
                    await writer.drain()
                    await asyncio.sleep(0.01)
                    raise _Drop
                if i and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.streams_abandoned += 1
            raise
        self.streams_completed += 1
        return True


#: Request headers whose values are credentials.
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "openai-organization")


def _echoed(request: Request) -> str:
    """An error message repeating every credential ``request`` carried, bare
    (a bearer token without its ``Bearer``), as OpenAI's 401 does."""
    seen = [request.headers[h] for h in _CREDENTIAL_HEADERS if h in request.headers]
    seen = [v.split(" ", 1)[1] if v.startswith("Bearer ") else v for v in seen]  # the bare key
    seen += [f"{k}={v}" for k, v in request.query.items()]
    return "Incorrect API key provided: " + "; ".join(seen)


def _message(fault: Fault) -> str:
    if fault.kind == "context_length":
        return "context length exceeded"
    return f"scripted fault {fault.status}"


def words(text: str) -> Iterator[str]:
    """``text`` as streaming pieces: each word with its leading space."""
    for i, word in enumerate(text.split(" ")):
        yield word if i == 0 else " " + word


def _text_of(value: Any) -> str:
    """Every prompt string inside ``value``, joined by spaces."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_text_of(v) for k, v in value.items() if k in ("content", "text", "parts"))
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    return ""


def count_tokens(value: Any) -> int:
    """A deterministic token count for usage: words in every string inside ``value``."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(count_tokens(v) for k, v in value.items() if k in ("content", "text", "parts"))
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    return 0


def sse(data: Any, event: Optional[str] = None, newline: str = "\n") -> bytes:
    """One server-sent event."""
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"event: {event}"] if event else []
    lines.append(f"data: {text}")
    return (newline.join(lines) + newline + newline).encode()


def ndjson(data: Any) -> bytes:
    return (json.dumps(data) + "\n").encode()
