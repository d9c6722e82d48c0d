"""Attacks on the configuration file: keys smuggled in, files that hang or
crash, values the schema must range-check, and problems that must each be
one ``file:line: key: problem`` line with exit code 3 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config, registry_parts

pytestmark = pytest.mark.timeout(60)

SECRET = "sk-live-0123456789abcdefghij"
SIMULATED = '[[models]]\nprovider = "simulated"\nname = "s1"\n'


def problems_of(path: Path) -> list[str]:
    """The problem lines of loading ``path`` and building its parts."""
    with pytest.raises(ConfigError) as info:
        registry_parts(load_config(path))
    return [str(p) for p in info.value.problems]


def written(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "url",
    [
        f"https://api.example.com/v1?api_key={SECRET}",
        f"http://127.0.0.1:11434/?token={SECRET}",
        f"https://api.example.com/v1?key={SECRET}&tenant=a",
    ],
)
def test_a_key_in_a_base_url_query_string_is_refused(tmp_path: Path, url: str) -> None:
    """Reproduction: ``base_url = "https://api.example.com/v1?api_key=sk-..."``
    loads without complaint (``orchestrator --config c.toml models`` exits 0),
    although userinfo in the same URL is refused ("never put a password in a
    URL in the file"): the credential rule of config/checks.py does not look
    at credential-named query parameters, which the redactor itself knows
    (``_secrets.SECRET_QUERY_NAMES``)."""
    path = written(tmp_path, f'[[models]]\nprovider = "openai"\nname = "x"\nbase_url = "{url}"\n')
    problems = problems_of(path)
    assert any(":4: models[0].base_url:" in p for p in problems), problems
    assert all(SECRET not in p for p in problems)


@pytest.mark.parametrize(
    "table",
    [
        f'base_url = "https://user:{SECRET}@api.example.com/v1"',
        f'organization = "{SECRET}"',
        f'options = {{ headers = {{ Authorization = "Bearer {SECRET}" }} }}',
        f'options = {{ "API_KEY" = "{SECRET}" }}',
        f'options = {{ extra = ["{SECRET}"] }}',
        f'api_key_env = "{SECRET}"',
    ],
)
def test_a_key_anywhere_else_in_a_model_is_refused_without_echoing_it(
    tmp_path: Path, table: str
) -> None:
    """Keys in userinfo, organization, nested headers, upper-case names,
    lists and api_key_env are refused on line 4, and the problem line does
    not repeat the key (promise kept)."""
    path = written(tmp_path, f'[[models]]\nprovider = "openai"\nname = "x"\n{table}\n')
    problems = problems_of(path)
    assert any(p.startswith(f"{path}:4: models[0].") for p in problems), problems
    assert all(SECRET not in p for p in problems)


@pytest.mark.parametrize(
    "section",
    [
        '[state]\nurl = "redis://:supersecretpassword@127.0.0.1:6379/0"',
        '[cache]\nenabled = true\nbackend = "redis"\n'
        'redis_url = "redis://u:supersecretpassword@127.0.0.1:6379/0"',
        '[server]\nstate = "redis://:supersecretpassword@127.0.0.1:6379/0"',
    ],
)
def test_a_redis_password_in_any_section_is_refused(tmp_path: Path, section: str) -> None:
    """Passwords in [state], [cache] and [server] Redis URLs are refused
    (promise kept)."""
    path = written(tmp_path, f"{section}\n{SIMULATED}")
    problems = problems_of(path)
    assert any("password" in p for p in problems), problems
    assert all("supersecretpassword" not in p for p in problems)


def test_a_file_starting_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    """Reproduction: the same valid file saved by an editor that writes a
    UTF-8 byte-order mark (Windows Notepad) fails with ``c.toml:1: invalid
    TOML: Invalid statement``, which does not say what is wrong. Read it
    (strip the BOM) or say "starts with a byte-order mark"."""
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SIMULATED.encode())
    try:
        parts = registry_parts(load_config(path))
    except ConfigError as exc:
        assert "byte-order mark" in str(exc) or "BOM" in str(exc)
        return
    assert [m.name for m in parts.models] == ["s1"]


def test_an_out_of_range_port_names_its_range(tmp_path: Path) -> None:
    """Reproduction: ``[server] port = 99999`` says only ``server.port: has
    an invalid value (99999)``; every other range problem says its range
    ("must be in [0, 65535]"): the [server] schema's pydantic errors fall
    through the config's translation."""
    path = written(tmp_path, f"[server]\nport = 99999\n{SIMULATED}")
    problems = problems_of(path)
    assert any("server.port" in p and "65535" in p for p in problems), problems


def test_every_problem_is_listed_with_file_line_and_a_suggestion(tmp_path: Path) -> None:
    """Seven problems in one file are seven ``file:line: key: problem`` lines,
    with "did you mean" for misspelt strategy, provider and capability
    (promise kept)."""
    text = (
        '[selection]\nstrategy = "thomson"\nexploration_factor = inf\n'
        "[health]\nfailure_threshold = 99999999999\nmax_cooldown = -1\n"
        '[[models]]\nprovider = "simulted"\nname = "s1"\ncontext_length = 1099511627776\n'
        'capabilities = ["chatt"]\n'
    )
    problems = problems_of(written(tmp_path, text))
    assert len(problems) == 7, problems
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == [2, 3, 5, 6, 8, 10, 11]
    assert sum("did you mean" in p for p in problems) == 3


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero", "deep", "huge"])
def test_files_that_could_hang_or_exhaust_memory_are_refused_up_front(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO, a directory, a symlink to /dev/zero, 400-deep nesting and a
    20 MB file each give one clear ConfigError (promise kept)."""
    path = tmp_path / "c.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "deep":
        path.write_text("a = " + "[" * 400 + "]" * 400 + "\n")
    else:
        path.write_text(SIMULATED + "# " + "y" * 20_000_000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_the_cli_prints_problems_one_per_line_and_exits_3(tmp_path: Path) -> None:
    """``orchestrator --config bad.toml models``: exit 3, each problem on its
    own ``error:`` line, no traceback, the key not echoed (promise kept)."""
    path = written(
        tmp_path,
        f'[selection]\nstrategy = "thomson"\n[[models]]\nprovider = "openai"\nname = "x"\n'
        f'organization = "{SECRET}"\n',
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--config", str(path), "models"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "Traceback" not in output
    assert SECRET not in output
    assert len([line for line in output.splitlines() if line.startswith("error:")]) == 2
