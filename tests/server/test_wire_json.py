"""The gateway's JSON encoder: orjson, and the standard library for what
orjson refuses."""

from __future__ import annotations

import json

import pytest

from orchestrator.server.wire import ChunkWriter, completion, dumps, usage_of

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
