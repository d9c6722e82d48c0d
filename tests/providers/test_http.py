"""The shared transport: retry-after parsing, error mapping, stream parsers,
pooling, retry policy, secrets."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.errors import (
    AuthenticationError,
    ContentFilteredError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamCutError,
    is_retryable,
)
from orchestrator.integrations import set_pool_limits
from orchestrator.integrations._http import (
    DEFAULT_POOL,
    Endpoint,
    RetryPolicy,
    Secret,
    Transport,
    error_detail,
    error_for_payload,
    iter_ndjson,
    iter_sse,
    iter_sse_json,
    parse_retry_after,
    redact,
    same_model,
)
from orchestrator.integrations._http._streams import split_lines
from tests.servers import OpenAIServer


async def lines_of(text: str) -> AsyncIterator[str]:
    for line in text.splitlines():
        yield line


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-2") == 0.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    for bad in (None, "", "soon", "nan"):
        assert parse_retry_after(bad) is None


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            401,
            {"error": {"message": "bad key", "type": "invalid_request_error"}},
            AuthenticationError,
        ),
        (
            403,
            {"type": "error", "error": {"type": "permission_error", "message": "no"}},
            AuthenticationError,
        ),
        (404, {"error": "model not found"}, NotFoundError),
        (
            429,
            {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "x"}},
            RateLimitError,
        ),
        (500, None, ServerError),
        (503, {"error": {"message": "unavailable"}}, ServerError),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "o"}},
            ServerError,
        ),
        (408, None, ProviderTimeoutError),
        (422, {"error": "bad input", "error_type": "validation"}, InvalidRequestError),
        (
            400,
            {
                "error": {
                    "message": "maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                }
            },
            ContextLengthExceededError,
        ),
        (
            400,
            {"type": "error", "error": {"message": "prompt is too long: 1 > 0"}},
            ContextLengthExceededError,
        ),
        (
            400,
            {"error": {"code": "content_policy_violation", "message": "x"}},
            ContentFilteredError,
        ),
        (400, {"error": {"message": "bad"}}, InvalidRequestError),
        (
            None,
            {"type": "error", "error": {"type": "overloaded_error", "message": "o"}},
            ServerError,
        ),
        (
            None,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "r"}},
            RateLimitError,
        ),
    ],
)
def test_error_mapping(status: int, body: object, cls: type) -> None:
    exc = error_for_payload(error_detail(body), status=status, model="m")
    assert type(exc) is cls
    assert exc.status_code == status and exc.model == "m"


def test_google_retry_delay_and_spent_quota() -> None:
    body = {
        "error": {"code": 429, "details": [{"retryDelay": "7s"}], "status": "RESOURCE_EXHAUSTED"}
    }
    exc = error_for_payload(error_detail(body), status=429, model=None)
    assert exc.retry_after == 7.0 and exc.retryable
    spent = {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}
    exc = error_for_payload(error_detail(spent), status=429, model=None)
    assert isinstance(exc, RateLimitError) and not is_retryable(exc)


async def test_sse_parser_follows_the_spec() -> None:
    text = (
        ": comment\n"
        "event: a\ndata: one\ndata: two\nid: 7\n\n"
        "data:no-space\r\n\r\n"
        'data: {"x": 1}\n\n'
        "data: unterminated"
    )
    events = [e async for e in iter_sse(lines_of(text))]
    assert [(e.event, e.data) for e in events] == [
        ("a", "one\ntwo"),
        ("message", "no-space"),
        ("message", '{"x": 1}'),
    ]
    assert events[0].id == "7"


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


_LINE = st.text(
    alphabet=st.sampled_from(list('ab :{}"\x0b\x0c\x1c\x85\u2028\u2029é€😀')), max_size=12
)


def _unambiguous(lines: list[tuple[str, str]]) -> bool:
    """No CR end followed by an empty line ended by LF: that is a CRLF."""
    return not any(
        end == "\r" and text == "" and nxt == "\n"
        for (_, end), (text, nxt) in itertools.pairwise(lines)
    )


@given(
    st.lists(st.tuples(_LINE, st.sampled_from(["\n", "\r\n", "\r"])), max_size=8).filter(
        _unambiguous
    ),
    st.lists(st.integers(min_value=0, max_value=120), max_size=8),
)
@example([("data: a", "\r\n"), ("", "\r\n"), ("data: b", "\r\n")], [8, 10])  # CRLF cut in two
@example([("é€", "\n"), ("😀", "\n")], [1, 3, 7])  # characters cut in the middle
@example([('data: {"t":"a\u2028b"}', "\n"), ("", "\n")], [])  # U+2028 inside JSON
@settings(max_examples=400)
def test_split_lines_ends_lines_as_sse_and_ndjson_do(
    lines: list[tuple[str, str]], cuts: list[int]
) -> None:
    """However the body is cut into chunks, every line comes back whole:
    ended by LF, CRLF or CR (a CRLF cut in two is one end), and never at
    U+2028, NEL, VT, FF or the other breaks ``str.splitlines`` knows."""
    body = "".join(text + end for text, end in lines).encode()
    points = sorted({min(c, len(body)) for c in cuts})
    parts = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]

    async def run() -> list[str]:
        return [line async for line in split_lines(_Chunks(parts))]

    assert asyncio.run(run()) == [text for text, _ in lines]


def test_split_lines_keeps_an_unended_last_line_and_replaces_bad_utf8() -> None:
    async def run(parts: list[bytes]) -> list[str]:
        return [line async for line in split_lines(_Chunks(parts))]

    assert asyncio.run(run([b"a\n", b"tail"])) == ["a", "tail"]
    assert asyncio.run(run([b"a\r"])) == ["a"]
    assert asyncio.run(run([b"\xff\xfe\n\xe2\x82"])) == ["\ufffd\ufffd", "\ufffd"]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), max_size=6))
def test_sse_json_round_trip(payloads: list[dict[str, int]]) -> None:
    text = "".join(f"data: {json.dumps(p)}\n\n" for p in payloads) + "data: [DONE]\n\n"

    async def run() -> list[object]:
        return [
            p
            async for _, p in iter_sse_json(
                lines_of(text), is_end=lambda _: False, sentinel="[DONE]"
            )
        ]

    assert asyncio.run(run()) == payloads


async def test_sse_json_closes_its_event_parser_when_the_end_comes_first() -> None:
    """Ended by its sentinel or end marker, the parser of events is closed
    at once, not left to the garbage collector (whose finalizer hook would
    schedule an extra task through the loop's thread-safe wake-up)."""
    finalized: list[str] = []
    hooks = sys.get_asyncgen_hooks()

    def record(agen: Any) -> None:
        finalized.append(agen.ag_code.co_name)
        if hooks.finalizer is not None:
            hooks.finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=record)
    try:
        by_sentinel = iter_sse_json(
            lines_of("data: {}\n\ndata: [DONE]\n\ndata: {}\n\n"),
            is_end=lambda _: False,
            sentinel="[DONE]",
        )
        by_end_marker = iter_sse_json(lines_of("data: {}\n\ndata: {}\n\n"), is_end=lambda _: True)
        for events in (by_sentinel, by_end_marker):
            assert [p async for _, p in events] == [{}]
        gc.collect()
    finally:
        sys.set_asyncgen_hooks(*hooks)
    assert "iter_sse" not in finalized


async def test_stream_parsers_raise_on_cut_and_malformed() -> None:
    with pytest.raises(StreamCutError):
        async for _ in iter_sse_json(
            lines_of("data: {}\n\n"), is_end=lambda p: False, sentinel="[DONE]"
        ):
            pass
    with pytest.raises(MalformedResponseError):
        async for _ in iter_sse_json(lines_of("data: {oops\n\n"), is_end=lambda p: True):
            pass
    got = [
        p
        async for p in iter_ndjson(
            lines_of('{"a":1}\n\n{"done":true}\n{"late":1}'), is_end=lambda p: p.get("done")
        )
    ]
    assert got == [{"a": 1}, {"done": True}]
    with pytest.raises(StreamCutError):
        async for _ in iter_ndjson(lines_of('{"a":1}\n'), is_end=lambda p: False):
            pass
    with pytest.raises(MalformedResponseError):
        async for _ in iter_ndjson(lines_of('{"a":\n'), is_end=lambda p: False):
            pass


def test_same_model() -> None:
    assert same_model("gpt-4", "gpt-4-0613")
    assert same_model("gpt-4o", "gpt-4o-2024-08-06")
    assert same_model("gemini-1.5-flash", "gemini-1.5-flash-002")
    assert same_model("models/gemini-2.0-flash", "gemini-2.0-flash")
    assert same_model("llama3.2", "llama3.2:latest")
    assert same_model("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022")
    assert not same_model("gpt-4", "gpt-4o")
    assert not same_model("gpt-4", "gpt-4-turbo")
    assert not same_model("gpt-4o", "gpt-4o-mini")
    assert not same_model("llama3.2", "mistral:latest")


def test_secrets_and_urls() -> None:
    secret = Secret("sk-abcdef123456")
    assert "abcdef" not in repr(secret) and "abcdef" not in str(secret) and secret.get()
    assert redact("key sk-abcdef123456 here") == "key *** here"
    assert redact("https://h/x?key=AIzaXYZ&alt=sse") == "https://h/x?key=***&alt=sse"
    shown = Endpoint.parse("https://user:pw@example.com:8443/v1/?q=1&key=AIzaXYZ#f").public()
    assert shown == "https://example.com:8443/v1?q=1&key=***"


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 4.0)]:
        delays = [policy.backoff(attempt) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(set(delays)) > 1  # jitter


async def test_one_pooled_client_per_base_url() -> None:
    a = DEFAULT_POOL.get("http://127.0.0.1:1/v1")
    assert DEFAULT_POOL.get("http://127.0.0.1:1/v1") is a
    assert DEFAULT_POOL.get("http://127.0.0.1:2") is not a


async def test_keep_alive_and_concurrency_share_the_pool() -> None:
    with OpenAIServer() as server:
        transport = Transport(Endpoint.parse(server.url), "gpt-4")
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}
        for _ in range(5):
            await transport.request_json("POST", "/chat/completions", json_body=body)
        assert server.connections == 1
        await asyncio.gather(
            *(
                transport.request_json("POST", "/chat/completions", json_body=body)
                for _ in range(20)
            )
        )
        assert server.connections <= 21


async def test_deadline_bounds_all_attempts() -> None:
    with OpenAIServer() as server:
        server.add_fault(delay=0.5, times=-1)
        transport = Transport(
            Endpoint.parse(server.url),
            "gpt-4",
            policy=RetryPolicy(max_retries=10, base_delay=0.01, timeout=5, deadline=0.3),
        )
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError):
            await transport.request_json("GET", "/models")
        # Ten retries of a 0.5 s answer would take 5 s; the 0.3 s deadline stops them.
        assert time.monotonic() - started < 3.0


def test_pool_limits_are_validated_and_apply_to_new_clients() -> None:
    before = DEFAULT_POOL.limits
    try:
        with pytest.raises(ValueError, match="invalid max_keepalive_connections: 0"):
            set_pool_limits(max_keepalive_connections=0)
        set_pool_limits(max_connections=10, max_keepalive_connections=5)
        limits = DEFAULT_POOL.limits
        assert (limits.max_connections, limits.max_keepalive_connections) == (10, 5)
    finally:
        DEFAULT_POOL.limits = before


async def test_an_unencodable_body_is_the_callers_error_and_is_never_sent() -> None:
    """A lone surrogate cannot be encoded as UTF-8: the transport raises a
    non-retryable InvalidRequestError naming the field, before any request."""
    with OpenAIServer() as server:
        transport = Transport(Endpoint.parse(server.url), "gpt-4")
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": "\ud800"}]}
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content") as caught:
            await transport.request_json("POST", "/chat/completions", json_body=body)
        assert not is_retryable(caught.value)
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content"):
            async for _ in transport.stream_lines("POST", "/chat/completions", json_body=body):
                pass
        assert server.requests == []
