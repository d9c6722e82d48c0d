"""Every problem of a configuration file is reported, one line each, as
``file:line: key: problem`` in the project's words, with "did you mean" for
enumerated values and every number range-checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config, parse_config

SIM = '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problem lines of ``text`` written to bad.toml, without the folder."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = info.value.problems
    assert str(info.value) == "\n".join(lines)
    assert all(line.startswith(f"{path}") for line in lines), lines
    return [line.removeprefix(f"{tmp_path}/") for line in lines]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[selection]\nexploration_factor = inf\n" + SIM,
         "bad.toml:2: selection.exploration_factor: must be a finite number in [0, 100] (got inf)"),
        ("[selection]\npending_timeout = nan\n" + SIM,
         "bad.toml:2: selection.pending_timeout: must be a finite number in (0, 86400] seconds"
         " (got nan)"),
        ("[selection]\nmax_waiting = -1\n" + SIM,
         "bad.toml:2: selection.max_waiting: must be in [0, 1000000] (got -1)"),
        ("[selection.reward]\nlatency = inf\n" + SIM,
         "bad.toml:2: selection.reward.latency: must be a finite number in [0, 1000] (got inf)"),
        ("[health]\nbase_cooldown = inf\n" + SIM,
         "bad.toml:2: health.base_cooldown: must be a finite number in (0, 86400] seconds"),
        ("[health]\nfailure_threshold = 99999999999\n" + SIM,
         "bad.toml:2: health.failure_threshold: must be in [1, 1000000] (got 99999999999)"),
        (SIM + "context_length = 1099511627776\n",
         "bad.toml:4: models[0].context_length: must be in [1, 100000000] tokens"
         " (got 1099511627776)"),
        (SIM + "cost = { input_per_million = -1 }\n",
         "bad.toml:4: models[0].cost.input_per_million: must be in [0, 100000] USD (got -1)"),
        ("[health]\nfailure_threshold = 3.5\n" + SIM,
         "bad.toml:2: health.failure_threshold: must be an integer (got 3.5)"),
        ('[health]\nfailure_threshold = "3"\n' + SIM,
         "bad.toml:2: health.failure_threshold: must be an integer (got '3')"),
        ("[cache]\nenabled = 1\n" + SIM,
         "bad.toml:2: cache.enabled: must be true or false (got 1)"),
        (SIM + "options = { success_rate = 2 }\n",
         "bad.toml:4: models[0].options.success_rate: must be in [0, 1] (got 2)"),
        ("[selection]\ndiscount = 1e-320\n" + SIM,
         "bad.toml:2: selection.discount: must be in [0.5, 1] (got 1e-320)"),
    ],
    ids=[
        "inf-selection", "nan-selection", "negative-max-waiting", "inf-reward", "inf-health",
        "huge-threshold",
        "huge-context", "negative-price", "float-for-int", "string-for-int", "int-for-bool",
        "simulated-option", "underflowing-discount",
    ],
)  # fmt: skip
def test_every_number_is_finite_and_in_its_documented_range(
    tmp_path: Path, text: str, expected: str
) -> None:
    lines = problems(tmp_path, text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines


def test_every_problem_is_listed_in_file_order(tmp_path: Path) -> None:
    text = (
        '[selection]\nstrategy = "thompsen"\n'
        "[health]\nfailure_threshold = 0\nmax_cooldown = inf\n"
        '[cache]\nbackend = "dsk"\n'
        '[[models]]\nprovider = "openia"\nname = "a"\n'
        '[[models]]\nprovider = "simulated"\nname = "b"\ncapabilities = ["chta", "vision"]\n'
        "capabilties = 3\n"
    )
    assert problems(tmp_path, text) == [
        "bad.toml:2: selection.strategy: unknown strategy 'thompsen' (did you mean 'thompson'?);"
        " choose one of ucb, discounted_ucb, thompson, discounted_thompson, cost, performance,"
        " contextual",
        "bad.toml:4: health.failure_threshold: must be in [1, 1000000] (got 0)",
        "bad.toml:5: health.max_cooldown: must be a finite number in (0, 86400] seconds (got inf)",
        "bad.toml:7: cache.backend: unknown cache backend 'dsk' (did you mean 'disk'?);"
        " choose one of memory, disk, redis",
        "bad.toml:9: models[0].provider: unknown provider 'openia' (did you mean 'openai'?);"
        " choose one of openai, anthropic, google, gemini, ollama, huggingface, simulated",
        "bad.toml:14: models[1].capabilities[0]: unknown capability 'chta' (did you mean 'chat'?);"
        " choose one of " + ", ".join(__import__("orchestrator").core.model.CAPABILITY_NAMES),
        "bad.toml:15: models[1].capabilties: unknown key (did you mean 'capabilities'?); known"
        " keys: provider,"
        " name, model_id, base_url, api_key_env, cost, capabilities, context_length, max_tokens,"
        " speed, rpm, tpm, tags, deployment, timeout, optional, options",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[selection]\nstrategy = "cost_based"\n' + SIM,
         "bad.toml:2: selection.strategy: unknown strategy 'cost_based' (did you mean 'cost'?)"),
        ("[helth]\n" + SIM, "bad.toml:1: helth: unknown section (did you mean 'health'?)"),
        ("[selection]\nexploraton_factor = 1\n" + SIM,
         "bad.toml:2: selection.exploraton_factor: unknown key (did you mean"
         " 'exploration_factor'?)"),
        (SIM + "cost = { input_per_milion = 1 }\n",
         "bad.toml:4: models[0].cost.input_per_milion: unknown key (did you mean"
         " 'input_per_million'?)"),
        ('[selection]\nstrategy = "cost"\nexploration_factor = 1\n' + SIM,
         "bad.toml:3: selection.exploration_factor: does not apply to strategy 'cost'; remove it"),
        ("[health]\nbase_cooldown = 60\nmax_cooldown = 30\n" + SIM,
         "bad.toml:3: health.max_cooldown: must be >= base_cooldown (60); got 30"),
        ("[cache]\nenabled = true\nbackend = \"redis\"\n" + SIM,
         "bad.toml:1: cache.redis_url: backend 'redis' needs one of redis_url or redis_url_env"),
        ('[state]\nurl = "http://localhost"\n' + SIM, "bad.toml:2: state.url: state URL"),
        ('[state]\nnamespace = "a b"\n' + SIM, "bad.toml:2: state.namespace: state_namespace"),
        (SIM + 'base_url = "ftp://host"\n',
         "bad.toml:4: models[0].base_url: must be an http:// or https:// URL"),
        (SIM + SIM, "bad.toml:6: models[1].name: duplicate model name 'sim-a' (also models[0])"),
        ("[cache]\nenabled = true\n", "bad.toml: models: no models declared"),
        ('selection = "ucb"\n' + SIM, "bad.toml:1: selection: must be a table [selection]"),
        ("models = 3\n", "bad.toml:1: models: must be [[models]] tables"),
        ('[[models]]\nprovider = "simulated"\n', "bad.toml:1: models[0].name: required key is"
         " missing"),
    ],
    ids=[
        "undocumented-alias", "section-typo", "key-typo", "nested-key-typo", "param-for-strategy",
        "cooldowns", "redis-cache-url", "state-url", "state-namespace", "base-url-scheme",
        "duplicate", "no-models", "section-not-table", "models-not-tables", "missing-name",
    ],
)  # fmt: skip
def test_each_rule_is_one_line_in_our_words(tmp_path: Path, text: str, expected: str) -> None:
    lines = problems(tmp_path, text)
    assert any(line.startswith(expected) for line in lines), lines
    assert not any("Input should" in line or "Value error" in line for line in lines)


def test_strings_are_never_numbers_and_numbers_too_big_for_a_float(tmp_path: Path) -> None:
    lines = problems(tmp_path, f"[selection]\nexploration_factor = {10**30}\n" + SIM)
    assert lines == ["bad.toml:2: selection.exploration_factor: must be in [0, 100] (got 1e+30)"]


def test_a_valid_file_loads_and_a_problem_has_its_parts() -> None:
    loaded = parse_config('[selection]\nstrategy = "thompson"\n' + SIM, "ok.toml")
    assert loaded.config.selection.strategy == "thompson"
    with pytest.raises(ConfigError) as info:
        parse_config("[health]\nfailure_threshold = 0\n" + SIM, "x.toml")
    error = info.value
    assert (error.path, error.line, error.key) == ("x.toml", 2, "health.failure_threshold")
    assert error.problem == "must be in [1, 1000000] (got 0)"
