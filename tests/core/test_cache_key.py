"""The Rust cache key: stable, order-independent, and distinct for every
part of a request."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator._core import cache_key

MESSAGES = [{"role": "user", "content": "What is AI?"}]


def test_keyword_order_does_not_matter() -> None:
    a = cache_key("gpt-4", "openai", MESSAGES, {"temperature": 0.2, "max_tokens": 10})
    b = cache_key("gpt-4", "openai", MESSAGES, {"max_tokens": 10, "temperature": 0.2})
    assert a == b and len(a) == 32


@pytest.mark.parametrize(
    "other",
    [
        ("gpt-4o", "openai", MESSAGES, {"temperature": 0.2}, ""),
        ("gpt-4", "azure", MESSAGES, {"temperature": 0.2}, ""),
        ("gpt-4", "openai", "What is AI?", {"temperature": 0.2}, ""),
        ("gpt-4", "openai", MESSAGES, {"temperature": 0.3}, ""),
        ("gpt-4", "openai", MESSAGES, {"temperature": 0.2, "stop": ["\n"]}, ""),
        ("gpt-4", "openai", MESSAGES, {"temperature": 0.2}, "tenant-b"),
    ],
)
def test_every_part_of_the_request_is_in_the_key(other: tuple[object, ...]) -> None:
    base = cache_key("gpt-4", "openai", MESSAGES, {"temperature": 0.2}, "")
    assert cache_key(*other) != base  # type: ignore[arg-type]


def test_types_are_kept_apart() -> None:
    assert cache_key("m", "p", "x", {"n": 1}) != cache_key("m", "p", "x", {"n": 1.0})
    assert cache_key("m", "p", "x", {"n": True}) != cache_key("m", "p", "x", {"n": 1})
    assert cache_key("m", "p", "x", {"n": [1, 2]}) == cache_key("m", "p", "x", {"n": (1, 2)})
    assert cache_key("m", "p", "x", {"t": 0.0}) == cache_key("m", "p", "x", {"t": -0.0})
    assert cache_key("m", "p", "x", {"big": 2**80}) != cache_key("m", "p", "x", {"big": 2**81})


def test_unhashable_values_name_their_path() -> None:
    with pytest.raises(
        ValueError, match=r'params\["tools"\]\[0\]\["t"\] for a cache key: NaN is not'
    ):
        cache_key("m", "p", "x", {"tools": [{"t": float("nan")}]})
    with pytest.raises(TypeError, match=r'params\["when"\].*type object'):
        cache_key("m", "p", "x", {"when": object()})
    with pytest.raises(TypeError, match="non-string key"):
        cache_key("m", "p", "x", {1: "a"})
    deep: list[object] = []
    cur = deep
    for _ in range(100):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(ValueError, match="nested deeper"):
        cache_key("m", "p", deep)


def test_pydantic_models_hash_as_their_json() -> None:
    from orchestrator.core.model import ModelCost

    cost = ModelCost(input_per_million=1)
    assert cache_key("m", "p", "x", {"c": cost}) == cache_key(
        "m", "p", "x", {"c": cost.model_dump(mode="json")}
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_key_is_independent_of_insertion_order(params: dict[str, object]) -> None:
    reordered = dict(reversed(list(params.items())))
    assert cache_key("m", "p", "x", params) == cache_key("m", "p", "x", reordered)
