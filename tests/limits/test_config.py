"""``rpm``/``tpm`` in a ``[[models]]`` table: range-checked like every other
number (``file:line: key: problem``), strict (``true`` is not a count), and
passed to the model the table builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.models.model_registry import ModelRegistry

pytestmark = pytest.mark.timeout(30)

MODEL = '[[models]]\nprovider = "{provider}"\nname = "m"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("rpm = 0", "models[0].rpm: must be in [1, 1000000] requests per minute (got 0)"),
        ("rpm = 1000001",
         "models[0].rpm: must be in [1, 1000000] requests per minute (got 1000001)"),
        ("tpm = 0", "models[0].tpm: must be in [1, 1099511627776] tokens per minute (got 0)"),
        ("tpm = 99999999999999999",
         "models[0].tpm: must be in [1, 1099511627776] tokens per minute (got 99999999999999999)"),
        ("rpm = true", "models[0].rpm: must be an integer (got true)"),
        ("rpm = 1.5", "models[0].rpm: must be an integer (got 1.5)"),
        ('tpm = "100"', "models[0].tpm: must be an integer (got '100')"),
    ],
)  # fmt: skip
def test_bad_limits_are_named_with_their_line(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path, MODEL.format(provider="simulated") + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:4: {problem}"]


@pytest.mark.parametrize("provider", ["simulated", "openai", "ollama"])
def test_limits_reach_the_built_model(tmp_path: Path, provider: str) -> None:
    text = MODEL.format(provider=provider) + "rpm = 60\ntpm = 90000\n"
    if provider == "openai":
        text += 'base_url = "http://127.0.0.1:9/v1"\n'
    registry = ModelRegistry.from_config(write(tmp_path, text))
    model = registry.get_model("m")
    assert (model.rpm, model.tpm) == (60, 90_000)
    limits = registry.rate_limits("m")
    assert (limits["rpm"], limits["tpm"]) == (60, 90_000)
