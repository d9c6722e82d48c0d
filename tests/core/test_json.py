"""``orchestrator._json.loads`` reads every document as ``json.loads`` does:
the same values of the same types (an integer stays an integer at any size),
and the same errors, whether orjson or the standard library did the reading."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import _json

pytestmark = pytest.mark.timeout(120)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, all the way down (NaN equals NaN; 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans())
def test_any_document_reads_as_the_standard_library_reads_it(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    expected = json.loads(text)
    assert same(_json.loads(text), expected)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # an unescaped lone surrogate has no UTF-8
        return
    assert same(_json.loads(data), json.loads(data))


@pytest.mark.parametrize(
    "document",
    [
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "[1e400, -1e400, 5e-324, 2.2250738585072014e-308, 0.1, 1.7976931348623157e308]",
        "-0",
        "-0.0",
        "1E2",
        "[NaN, Infinity, -Infinity]",
        '"\\ud800 alone"',
        '"\\udc00\\ud83d"',
        '{"a": 1, "a": 2}',
        '{"text": "phone 0123456789012345678 in a prompt"}',
        "  [ ]  ",
        "[1e-400, -1e-400, 4.9e-324, 2.5e-324, 1.7976931348623159e308]",
        '"\\ud83d\\ude00 \\u00e9 \\/ \u2028"',
        '"a\tb"',  # a raw control character in a string
        "[1,]",
        "1.",
        ".5",
        "+1",
    ],
)
def test_the_edges_orjson_reads_otherwise_read_as_the_standard_library(document: str) -> None:
    for form in (document, document.encode()):
        try:
            expected = json.loads(form)
        except ValueError as error:
            with pytest.raises(type(error), match=re.escape(str(error))):
                _json.loads(form)
        else:
            assert same(_json.loads(form), expected)


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"[1, 2",
        b"\xff\xfe{}",
        "\ufeff{}",  # a byte order mark in text (bytes may start with one)
        b'{"a": nan}',
        b"01",
        b'"unterminated',
        b'{"a" 1}',
    ],
)
def test_what_is_not_json_raises_the_standard_librarys_error(document: bytes | str) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(document)
    with pytest.raises(ValueError) as raised:
        _json.loads(document)
    assert type(raised.value) is type(expected.value)
    assert str(raised.value) == str(expected.value)


def test_other_encodings_of_text_read_as_the_standard_library_reads_them() -> None:
    for encoding in ("utf-8-sig", "utf-16", "utf-16-le", "utf-32", "utf-32-be"):
        document = '{"content": "déjà vu"}'.encode(encoding)
        assert _json.loads(document) == json.loads(document) == {"content": "déjà vu"}


def test_nesting_beyond_the_stack_raises_as_the_standard_library_does() -> None:
    document = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        json.loads(document)
    with pytest.raises(RecursionError):
        _json.loads(document)


@pytest.mark.parametrize("depth", [1_000, 1_024])
def test_nesting_the_standard_library_has_no_stack_for_is_read_within_orjsons_bound(
    depth: int,
) -> None:
    """The one documented difference: ``json.loads`` may run out of stack
    here (about 1,000 levels); the document is read, as it is with a higher
    recursion limit."""
    value = _json.loads(b"[" * depth + b"]" * depth)
    for _ in range(depth - 1):
        (value,) = value
    assert value == []


def test_a_bytearray_reads_as_json_loads_reads_it() -> None:
    for document in (bytearray(b'{"a": 1}'), bytearray(b'{"big": 123456789012345678901}')):
        assert same(_json.loads(document), json.loads(document))
