"""Helpers for driving the ``orchestrator`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "orchestrator.toml"
PROVIDER_KEYS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_BASE_URL",
    "OLLAMA_HOST",
)

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no provider key, a private HOME and no local Ollama."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
    home = tmp_path / "home"
    home.mkdir()
    env.update(
        HOME=str(home),
        OLLAMA_HOST="http://127.0.0.1:9",  # discard port: nothing answers
        COLUMNS="160",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
    )
    return env


@pytest.fixture
def run(tmp_path: Path, cli_env: dict[str, str]) -> Run:
    """``run(*args, env=None, cwd=None)``: ``python -m orchestrator args``."""

    def runner(
        *args: str,
        env: Optional[dict[str, str]] = None,
        cwd: Optional[Path] = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            capture_output=True,
            text=True,
            env={**cli_env, **(env or {})},
            cwd=cwd or tmp_path,
            timeout=timeout,
            check=False,
        )

    return runner


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of stderr (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def args_with_config(config: Path, *args: str) -> Sequence[str]:
    return ["--config", str(config), *args]
