"""A validated configuration builds the registry's parts without importing
the registry: exactly the ``ModelRegistry`` keyword arguments and the models."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator.config as config_package
from orchestrator.config import (
    ConfigError,
    load_config,
    parse_config,
    registry_parts,
    state_url_of,
)
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.models.selectors import ContextualSelector, ThompsonSelector

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orchestrator.toml"
OPENAI = '[[models]]\nprovider = "openai"\nname = "gpt"\napi_key_env = "TEST_OPENAI_KEY"\n'


def test_registry_parts_are_exactly_the_registry_keyword_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    monkeypatch.setenv("TEST_STATE_URL", "redis://127.0.0.1:1/0")
    loaded = parse_config(
        '[selection]\nstrategy = "discounted_thompson"\nmin_trials = 2\n'
        "[health]\nfailure_threshold = 4\ncheck_interval = 60\n"
        '[state]\nurl_env = "TEST_STATE_URL"\nnamespace = "team-a"\nsync_interval = 2\n' + OPENAI
    )
    parts = registry_parts(loaded)
    kwargs = parts.registry_kwargs()
    accepted = set(inspect.signature(ModelRegistry.__init__).parameters) - {"self"}
    assert set(kwargs) <= accepted
    assert isinstance(parts.model_selector, ThompsonSelector)
    assert parts.model_selector.discount == 0.999
    assert parts.health_monitor.failure_threshold == 4
    assert parts.health_check_interval == 60
    assert (kwargs["state"], kwargs["state_namespace"], kwargs["sync_interval"]) == (
        "redis://127.0.0.1:1/0",
        "team-a",
        2.0,
    )
    assert [m.name for m in parts.models] == ["gpt"]


def test_every_model_that_cannot_be_built_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(
        OPENAI.replace("TEST_OPENAI_KEY", "NO_SUCH_KEY_A")
        + OPENAI.replace("TEST_OPENAI_KEY", "NO_SUCH_KEY_B").replace('"gpt"', '"gpt-b"')
        + '[[models]]\nprovider = "openai"\nname = "c"\napi_key_env = "NO_SUCH_KEY_C"\n'
        "optional = true\n"
    )
    loaded = load_config(path)
    with pytest.raises(ConfigError) as info:
        registry_parts(loaded)
    lines = [line.removeprefix(f"{tmp_path}/") for line in info.value.problems]
    assert [line.split(": ")[0:2] for line in lines] == [
        ["keys.toml:4", "models[0].api_key_env"],
        ["keys.toml:8", "models[1].api_key_env"],
    ]
    assert "environment variable NO_SUCH_KEY_A is not set" in lines[0]


def test_the_example_file_builds_a_registry() -> None:
    parts = registry_parts(load_config(EXAMPLE))
    registry = ModelRegistry(**parts.registry_kwargs())
    for model in parts.models:
        registry.register_model(model)
    assert {m.name for m in registry} == {"sim-balanced", "sim-fast", "sim-frontier"}
    assert any("skipped gpt-4o-mini" in note for note in parts.notes)
    assert len(ModelRegistry.from_config(EXAMPLE)) == 3


def test_config_never_imports_the_registry_or_the_simulation() -> None:
    """No module of the package imports them, and loading and building a
    file does not either."""
    folder = Path(config_package.__file__).parent
    for source in sorted(folder.glob("*.py")):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        assert "orchestrator.models.model_registry" not in imported, source.name
        assert "orchestrator.simulation" not in imported, source.name
    code = (
        "import sys, os; os.environ['TEST_OPENAI_KEY'] = 'sk-x'\n"
        "from orchestrator.config import parse_config, registry_parts\n"
        f"registry_parts(parse_config({OPENAI!r}))\n"
        "print(sorted(m for m in sys.modules if m.endswith(('model_registry', 'simulation'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_state_url_comes_from_the_file_or_the_variable_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert state_url_of(parse_config(OPENAI)) == "local"
    direct = parse_config('[state]\nurl = "redis://127.0.0.1:6379/0"\n' + OPENAI)
    assert state_url_of(direct) == "redis://127.0.0.1:6379/0"
    named = parse_config('[state]\nurl_env = "TEST_STATE_URL_X"\n' + OPENAI, "s.toml")
    with pytest.raises(ConfigError, match=r"s.toml:2: state.url_env: environment variable"):
        state_url_of(named)
    monkeypatch.setenv("TEST_STATE_URL_X", "redis://127.0.0.1:1/0")
    assert state_url_of(named) == "redis://127.0.0.1:1/0"


def test_the_contextual_strategy_and_its_parameters_build_a_contextual_selector() -> None:
    loaded = parse_config(
        '[selection]\nstrategy = "contextual"\nhash_bits = 12\nexploration = "greedy"\n'
        'willingness_to_pay = 0.05\nfeedback_ttl_s = 60\n[[models]]\nprovider = "simulated"\n'
        'name = "sim"\n'
    )
    registry = ModelRegistry.from_parts(registry_parts(loaded))
    selector = registry.model_selector
    assert isinstance(selector, ContextualSelector)
    assert (selector.hash_bits, selector.exploration) == (12, "greedy")
    assert registry.core.willingness_to_pay == 0.05
    assert registry.select(prompt="hello").request_id is not None


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('strategy = "contextual"\nhash_bits = 40\n', "selection.hash_bits: must be in [10, 24]"),
        ('strategy = "contextual"\nchar_ngrams = 1\n', "selection.char_ngrams: must be 0"),
        ('strategy = "contextual"\nexploration = "thomson"\n', "did you mean 'thompson'"),
        ('strategy = "contextual"\nwillingness_to_pay = 0\n', "selection.willingness_to_pay"),
        ('strategy = "contextual"\nwillingness_to_pay = inf\n', "selection.willingness_to_pay"),
        # The registry's own minimum (the core's), not just "above 0": a file
        # must not accept what the registry then refuses.
        (
            'strategy = "contextual"\nwillingness_to_pay = 5e-324\n',
            "selection.willingness_to_pay: must be in [1e-12, 1000000] USD",
        ),
        ('strategy = "contextual"\nmin_trials = 3\n', "does not apply to strategy 'contextual'"),
        ('strategy = "ucb"\nhash_bits = 12\n', "does not apply to strategy 'ucb'"),
    ],
)
def test_contextual_parameters_are_range_checked(lines: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[selection]\n" + lines + '[[models]]\nprovider = "simulated"\nname = "s"\n')
    assert problem in str(caught.value)
