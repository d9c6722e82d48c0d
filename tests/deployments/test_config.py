"""``[[models]] tags``/``deployment`` and ``[[aliases]]`` in the TOML
configuration: each problem as ``file:line: key: problem``."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.models.model_registry import ModelRegistry

MODELS = """
[[models]]
provider = "simulated"
name = "gpt-4o"
deployment = "openai"
tags = ["us"]

[[models]]
provider = "simulated"
name = "gpt-4o"
deployment = "azure-eu"
tags = ["eu", "zero-retention"]

[[models]]
provider = "simulated"
name = "small"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orchestrator.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return [line.removeprefix(f"{tmp_path}/") for line in caught.value.problems]


def test_a_file_declares_deployments_tags_and_aliases(tmp_path: Path) -> None:
    text = MODELS + '\n[[aliases]]\nname = "cheap"\nmodels = ["small", "gpt-4o@openai"]\n'
    text += '\n[[aliases]]\nname = "fast"\nmodels = ["gpt-4o"]\n'
    registry = ModelRegistry.from_config(write(tmp_path, text))
    assert [m.name for m in registry] == ["gpt-4o@openai", "gpt-4o@azure-eu", "small"]
    assert registry.get_model("gpt-4o@azure-eu").tags == ("eu", "zero-retention")
    assert registry.aliases() == {"cheap": ["small", "gpt-4o@openai"], "fast": ["gpt-4o"]}
    assert registry.select_model(alias="fast", tags=["eu"]).name == "gpt-4o@azure-eu"
    assert {registry.select_model(alias="cheap").name for _ in range(10)} == {
        "small",
        "gpt-4o@openai",
    }


def test_every_alias_problem_is_one_line(tmp_path: Path) -> None:
    text = MODELS + (
        '\n[[aliases]]\nname = "gpt-4o"\nmodels = ["smal", "nope@x"]\n'
        '\n[[aliases]]\nname = "cheap"\nmodels = []\n'
        '\n[[aliases]]\nname = "cheap"\nmodels = ["small"]\n'
        '\n[[aliases]]\nname = "cheap"\nmodels = ["small"]\n'
    )
    assert problems(tmp_path, text) == [
        "orchestrator.toml:19: aliases[0].name: 'gpt-4o' is a model's name; aliases need their own",
        "orchestrator.toml:20: aliases[0].models: unknown model 'smal' (did you mean 'small'?)",
        "orchestrator.toml:20: aliases[0].models: unknown model 'nope@x'",
        "orchestrator.toml:24: aliases[1].models: must name 1 to 10000 models (got 0)",
        "orchestrator.toml:31: aliases[3].name: duplicate alias 'cheap' (also aliases[2])",
    ]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('tags = ["EU"]', 'models[0].tags[0]: "EU" (a tag is 1 to 64 characters'),
        ('tags = "eu"', "models[0].tags: must be a list"),
        ("tags = [1]", "models[0].tags[0]: must be a string"),
        ('deployment = "a@b"', "models[0].deployment: \"a@b\" (without '@'"),
        ('deployment = ""', "models[0].deployment: must be 1 to 256 characters (got 0)"),
    ],
)
def test_bad_tags_and_deployments_name_the_key(tmp_path: Path, entry: str, expected: str) -> None:
    text = f'[[models]]\nprovider = "simulated"\nname = "m"\n{entry}\n'
    (line,) = problems(tmp_path, text)
    assert line.startswith("orchestrator.toml:4: "), line
    assert expected in line, line


def test_two_entries_of_one_deployment_are_duplicates(tmp_path: Path) -> None:
    text = MODELS + '\n[[models]]\nprovider = "simulated"\nname = "gpt-4o"\ndeployment = "openai"\n'
    (line,) = problems(tmp_path, text)
    assert line == (
        "orchestrator.toml:20: models[3].name: "
        "duplicate model name 'gpt-4o@openai' (also models[0])"
    )
