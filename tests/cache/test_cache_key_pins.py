"""Cache keys are pinned: the keys of these requests were computed before the
canonical walk moved from the binding into the Rust core, and must never change
(a changed key silently empties every deployed cache). A deliberate change of
the encoding bumps ``KEY_FORMAT_VERSION`` and these pins together."""

from __future__ import annotations

from typing import Any, Optional

import pydantic
import pytest

from orchestrator import _core

pytestmark = pytest.mark.timeout(30)


class Message(pydantic.BaseModel):
    """A pydantic value, hashed as its ``model_dump(mode="json")``."""

    role: str
    content: str
    weight: float = 0.5


def nested_lists(depth: int) -> list[Any]:
    """``[[[...]]]`` with ``depth`` levels below the outer list."""
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


EVERY_SCALAR = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "neg_zero": -0.0,
    "pi": 3.141592653589793,
    "min_i64": -(2**63),
    "max_i64": 2**63 - 1,
    "big": 2**63,
    "neg_big": -(2**63) - 1,
    "huge": 10**40,
    "bytes": b"\x00\xff",
    "unicode": "h\u00e9llo \U0001f600",
    "empty_list": [],
    "empty_map": {},
    "tuple": (1, 2.5, "three"),
}

PINNED: list[tuple[str, tuple[str, str, Any, Optional[Any], str], str]] = [
    ("plain prompt", ("gpt-4o", "openai", "hello", None, ""), "0ea4d4c299049ea6719ffca7174c3e5f"),
    (
        "namespace",
        ("gpt-4o", "openai", "hello", None, "tenant-a"),
        "09658ab1713aba67a5ba098476de51f7",
    ),
    (
        "messages",
        (
            "claude",
            "anthropic",
            [{"role": "user", "content": "hi"}, {"content": "ok", "role": "assistant"}],
            {"temperature": 0.2, "max_tokens": 256},
            "",
        ),
        "c660c3fda7ae5a8039d3caf81eabfd25",
    ),
    ("every scalar", ("m", "p", "x", EVERY_SCALAR, "ns"), "c3958f2d8e6ea05dfc415c0bdb051555"),
    (
        "nested",
        ("m", "p", {"a": {"b": [{"c": [1, [2, [3]]]}]}}, {"stop": ["\n", "END"], "seed": 7}, ""),
        "def321eea10646c4a34e73b73463f5eb",
    ),
    (
        "pydantic",
        ("m", "p", [Message(role="user", content="hi")], None, ""),
        "3881a765a472234ea7a70c2db9c1be2b",
    ),
    ("64 levels deep", ("m", "p", nested_lists(64), None, ""), "e2b61fa8a545a5b1cf1e3c4372a35a50"),
]


@pytest.mark.parametrize(
    ("args", "key"), [(a, k) for _, a, k in PINNED], ids=[n for n, _, _ in PINNED]
)
def test_a_request_keeps_its_key(args: tuple[str, str, Any, Optional[Any], str], key: str) -> None:
    assert _core.KEY_FORMAT_VERSION == 1
    assert _core.cache_key(*args) == key


def test_equal_requests_share_a_key_whatever_their_spelling() -> None:
    reordered = dict(reversed(list(EVERY_SCALAR.items())))
    as_lists = {**EVERY_SCALAR, "tuple": [1, 2.5, "three"], "neg_zero": 0.0}
    expected = _core.cache_key("m", "p", "x", EVERY_SCALAR, "ns")
    assert _core.cache_key("m", "p", "x", reordered, "ns") == expected
    assert _core.cache_key("m", "p", "x", as_lists, "ns") == expected
    dumped = [Message(role="user", content="hi").model_dump(mode="json")]
    assert _core.cache_key("m", "p", dumped) == "3881a765a472234ea7a70c2db9c1be2b"


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        (
            {"k": [float("nan")]},
            ValueError,
            'params["k"][0] for a cache key: NaN is not a finite number',
        ),
        (
            {"k": [{"a": float("inf")}]},
            ValueError,
            'params["k"][0]["a"] for a cache key: inf is not',
        ),
        ({"k": [{1: 2}]}, TypeError, 'params["k"][0] for a cache key: has a non-string key 1'),
        (
            {"k": [object()]},
            TypeError,
            'params["k"][0] for a cache key: has a value of type object',
        ),
        ({"k": nested_lists(70)}, ValueError, "for a cache key: nested deeper than 64 levels"),
    ],
)
def test_an_unhashable_value_is_named_by_its_path(
    params: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        _core.cache_key("m", "p", "x", params)
    assert message in str(raised.value)
    assert str(raised.value).startswith("cannot hash params[")
