"""The gateway's JSON encoder (orjson, and the standard library for what
orjson refuses) and its request parser (read as the standard library reads it, bounded in depth)."""

from __future__ import annotations

import json

import pytest

from orchestrator.server.errors import GatewayError
from orchestrator.server.wire import (
    MAX_JSON_DEPTH,
    ChunkWriter,
    completion,
    dumps,
    parse_json,
    usage_of,
)

pytestmark = pytest.mark.timeout(30)


def test_a_completion_is_the_same_json_as_the_standard_librarys() -> None:
    body = completion("req_1", 1700000000, "mini", "The answer is forty-two.", usage_of(12, 8))
    assert dumps(body) == json.dumps(body, separators=(",", ":")).encode()
    text = {"content": "déjà vu, 日本語, 🙂"}
    assert dumps(text) == json.dumps(text, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(dumps(text)) == text


def test_a_lone_surrogate_from_a_provider_goes_on_as_its_escape() -> None:
    body = {"content": "half a pair: \ud83d"}
    assert dumps(body) == b'{"content":"half a pair: \\ud83d"}'
    assert json.loads(dumps(body)) == body
    event = ChunkWriter("req_1", 0, "mini", include_usage=False).delta("\udc00")
    assert event.startswith(b"data: ") and json.loads(event[6:])["choices"][0]["delta"] == {
        "content": "\udc00"
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"auto","messages":[{"role":"user","content":"6 x 7?"}]}',
        b'{"temperature": NaN, "top_p": Infinity, "seed": -Infinity}',
        b'{"seed": 123456789012345678901234567890}',  # beyond 64 bits: still an integer
        b'{"content": "\\ud800 alone"}',  # a lone surrogate escape
        '{"content": "utf-16"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"content": "a byte order mark"}',
        b'{"text": "' + b"[{" * 40 + b'"}',  # brackets inside a string are no nesting
        b'{"a":' * (MAX_JSON_DEPTH - 1) + b"{}" + b"}" * (MAX_JSON_DEPTH - 1),
    ],
)
def test_a_body_parses_as_the_standard_library_parses_it(body: bytes) -> None:
    assert parse_json(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":' * MAX_JSON_DEPTH + b"{}" + b"}" * MAX_JSON_DEPTH,
        b"[" * 2000 + b"]" * 2000,
        b"[" * 100_000 + b"]" * 100_000,  # beyond the interpreter's recursion limit
        b'{"a": 1,}',
        b"\xff\xfe{}",
        b"[1, 2]",
    ],
)
def test_a_body_too_deep_invalid_or_not_an_object_is_a_400_naming_the_body(body: bytes) -> None:
    with pytest.raises(GatewayError) as raised:
        parse_json(body)
    assert raised.value.status == 400 and raised.value.body()["error"]["param"] == "body"
