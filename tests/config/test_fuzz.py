"""Any value in any place of a file gives either a configuration or a
ConfigError whose every line names the file: never another exception."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config import ConfigError, parse_config, registry_parts
from orchestrator.config.schema import SECTIONS, STRATEGIES, ModelEntry
from orchestrator.models.model_registry import ModelRegistry

SIM = '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'


def toml_value(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "api_key", "seed"]), scalars, max_size=2),
)
section_keys = [(name, key) for name, cls in SECTIONS.items() for key in cls.model_fields]
model_keys = [key for key in ModelEntry.model_fields if key not in ("provider", "name")]


def check(text: str) -> None:
    try:
        parse_config(text, "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems and all(line.startswith("fuzz.toml") for line in exc.problems)
        assert all("\n" not in line for line in exc.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(section_keys), value=values)
def test_any_value_in_a_section_is_a_config_or_a_config_error(
    place: tuple[str, str], value: Any
) -> None:
    section, key = place
    check(f"[{section}]\n{key} = {toml_value(value)}\n" + SIM)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(model_keys), value=values, provider=st.sampled_from(["simulated", "x"]))
def test_any_value_in_a_model_is_a_config_or_a_config_error(
    key: str, value: Any, provider: str
) -> None:
    check(f'[[models]]\nprovider = "{provider}"\nname = "m"\n{key} = {toml_value(value)}\n')


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet='[]{}="#\n\\ a1.,', max_size=80))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    check(text)


def test_a_valid_file_written_by_the_fuzzer_loads(tmp_path: Path) -> None:
    text = f"[health]\nfailure_threshold = {toml_value(5)}\n" + SIM
    assert parse_config(text).config.health.failure_threshold == 5


numbers = st.one_of(
    st.integers(min_value=0, max_value=10**7),
    st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False),
)
buildable_keys = [
    (section, key)
    for section, key in section_keys
    if section in ("selection", "health")
    or (section, key) in (("cache", "ttl"), ("cache", "max_size"))
]


@settings(max_examples=300, deadline=None)
@given(place=st.sampled_from(buildable_keys), value=numbers, strategy=st.sampled_from(STRATEGIES))
def test_whatever_the_file_accepts_the_registry_accepts(
    place: tuple[str, str], value: Any, strategy: str
) -> None:
    section, key = place
    head = f'[selection]\nstrategy = "{strategy}"\n[cache]\nenabled = true\n'
    body = f"{key} = {toml_value(value)}\n"
    text = (
        head.replace(f"[{section}]\n", f"[{section}]\n{body}")
        if section != "health"
        else (head + f"[health]\n{body}")
    )
    try:
        loaded = parse_config(text + SIM, "fuzz.toml")
    except ConfigError:
        return
    parts = registry_parts(loaded)
    registry = ModelRegistry(**parts.registry_kwargs())
    for model in parts.models:
        registry.register_model(model)
    assert len(registry) == 1
