"""SSE and NDJSON stream parsers: :class:`StreamCutError` when a stream ends
before its end marker, :class:`MalformedResponseError` on a malformed event
(its text redacted)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Optional

from orchestrator import _json
from orchestrator._secrets import redact
from orchestrator.errors import MalformedResponseError, StreamCutError

EndPredicate = Callable[[Any], bool]

#: The longest line of a stream (an event's data line, an NDJSON object):
#: longer, and the stream is malformed rather than held in memory unbounded.
MAX_LINE_BYTES = 16 * 1024 * 1024


async def split_lines(chunks: AsyncIterable[bytes]) -> AsyncGenerator[str, None]:
    """The lines of an event stream or NDJSON body, ended as both formats
    end them: LF, CRLF or CR (a CR closing a chunk waits for the next, which
    may begin with its LF), never at other characters ``str.splitlines``
    breaks at, such as U+2028 inside a JSON string. Each line is decoded as
    UTF-8, which both formats are, undecodable bytes becoming U+FFFD.

    A line arriving over many chunks is joined once, when it ends (linear in
    its length). Raises :class:`MalformedResponseError` for a line over
    :data:`MAX_LINE_BYTES`."""
    parts: list[bytes] = []  # the line not ended yet, without line breaks
    size = 0
    held = False  # the last chunk ended with a CR, whose LF may open the next
    async for chunk in chunks:
        if not held and b"\n" not in chunk and b"\r" not in chunk:
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        else:
            data = b"".join((*parts, b"\r" if held else b"", chunk)) if parts or held else chunk
            held = data.endswith(b"\r")
            if held:
                data = data[:-1]
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = data.split(b"\n")
            rest = lines.pop()
            parts, size = ([rest] if rest else []), len(rest)
            for line in lines:
                yield line.decode("utf-8", "replace")
        if size > MAX_LINE_BYTES:
            raise MalformedResponseError(f"a stream line is over {MAX_LINE_BYTES} bytes")
    if parts or held:
        yield b"".join(parts).decode("utf-8", "replace")


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event`` name (``message`` when unnamed) and data."""

    event: str
    data: str
    id: Optional[str] = None


async def iter_sse(lines: AsyncIterator[str]) -> AsyncGenerator[SSEEvent, None]:
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
    :class:`StreamCutError` if the stream ends first. The event parser is
    closed here when the end comes before its input's end: left to the
    garbage collector, it would be closed by an extra task scheduled through
    the event loop's thread-safe wake-up (two system calls per stream)."""
    async with aclosing(iter_sse(lines)) as events:
        async for ev in events:
            if sentinel is not None and ev.data.strip() == sentinel:
                return
            try:
                payload = _json.loads(ev.data)
            except _json.NOT_JSON:
                raise MalformedResponseError(
                    redact(f"malformed stream event {ev.event!r}: {ev.data[:120]!r}"), model=model
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
            payload = _json.loads(line)
        except _json.NOT_JSON:
            raise MalformedResponseError(
                redact(f"malformed stream line: {line[:120]!r}"), model=model
            ) from None
        yield payload
        if is_end(payload):
            return
    raise StreamCutError("stream ended before its end marker", model=model)


async def drain(iterator: AsyncIterator[Any], limit: int = 10_000) -> None:
    """Consume what is left of a stream (so its connection returns to the pool)."""
    count = 0
    async for _ in iterator:
        count += 1
        if count >= limit:
            return
