"""``[sessions]`` in a configuration file: its values reach the registry, and
each bad one is named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.models.model_registry import ModelRegistry

pytestmark = pytest.mark.timeout(30)

MODELS = """
[[models]]
provider = "simulated"
name = "a"

[[models]]
provider = "simulated"
name = "b"
"""


def write(tmp_path: Path, sessions: str) -> Path:
    path = tmp_path / "sessions.toml"
    path.write_text(f"[sessions]\n{sessions}\n{MODELS}")
    return path


def test_the_sessions_section_reaches_the_registry(tmp_path: Path) -> None:
    registry = ModelRegistry.from_config(write(tmp_path, "ttl = 5.0\nmax_sessions = 2"))
    registry.core.use_virtual_clock()
    for i in range(5):
        registry.cancel(registry.select(session_id=f"s{i}"))
    assert registry.core.session_counts()[0] == 2, "max_sessions = 2"
    first = registry.select_model(session_id="s4").name
    registry.core.advance_clock(5.5)
    explanation = registry.explain_selection(session_id="s4")
    assert explanation.session == "session: new, bound to the pick", f"ttl = 5 ({first})"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ttl = 0", "sessions.ttl: must be in (0, 2592000] seconds (got 0)"),
        ("ttl = -5.0", "sessions.ttl: must be in (0, 2592000] seconds (got -5)"),
        ("ttl = nan", "sessions.ttl: must be a finite number in (0, 2592000] seconds (got nan)"),
        ("ttl = true", "sessions.ttl: must be a number (got true)"),
        ("max_sessions = 0", "sessions.max_sessions: must be in [1, 10000000] (got 0)"),
        ("max_sessions = 1.5", "sessions.max_sessions: must be an integer (got 1.5)"),
        (
            "max_session = 10",
            "sessions.max_session: unknown key (did you mean 'max_sessions'?); "
            "known keys: ttl, max_sessions",
        ),
    ],
)
def test_bad_session_settings_are_named_with_their_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = write(tmp_path, line)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:2: {problem}"]
