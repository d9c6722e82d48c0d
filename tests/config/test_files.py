"""Only a regular configuration file of bounded size and nesting is read:
directories, FIFOs, devices, huge files and pathological nesting are refused
up front, with one clear line (and never a hang or a RecursionError)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.config import MAX_CONFIG_BYTES, MAX_NESTING, ConfigError, load_config

SIM = '[[models]]\nprovider = "simulated"\nname = "sim-a"\n'


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(str(path))
    return info.value


@pytest.mark.timeout(10)
def test_dev_zero_is_refused_at_once() -> None:
    assert "not a regular file" in refused(Path("/dev/zero")).problem


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in refused(fifo).problem


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert "is a directory" in refused(tmp_path).problem


def test_a_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    assert "--config" in refused(tmp_path / "nowhere.toml").problem


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)  # sparse: nothing is written
    assert f"at most {MAX_CONFIG_BYTES} bytes" in refused(big).problem


@pytest.mark.parametrize(
    "value",
    ["[" * 100_000 + "]" * 100_000, "{a = " * 5_000 + "1" + "}" * 5_000],
    ids=["arrays", "inline-tables"],
)
def test_pathological_nesting_is_refused_with_its_line(tmp_path: Path, value: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(SIM + f"options = {{ x = 1 }}\nweird = {value}\n")
    error = refused(path)
    assert error.line == 5
    assert f"nested more than {MAX_NESTING} deep" in error.problem


def test_brackets_inside_strings_and_comments_are_not_nesting(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    deep = "[" * (MAX_NESTING + 5)
    path.write_text(
        f'# {deep}\n[[models]]\nprovider = "simulated"\nname = "{deep}"\nmodel_id = \'{deep}\'\n'
    )
    assert load_config(path).config.models[0].name == deep


def test_a_utf8_byte_order_mark_is_skipped_and_lines_still_count(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SIM.encode() + b'model_id = "\xff"\n')
    error = refused(path)
    assert (error.line, error.problem) == (4, "is not UTF-8 text")
    path.write_bytes(b"\xef\xbb\xbf" + SIM.encode())
    assert load_config(path).config.models


def test_invalid_toml_and_non_utf8_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[models]\n")
    assert refused(path).problem.startswith("invalid TOML")
    path.write_bytes(SIM.encode() + b'model_id = "\xff"\n')
    error = refused(path)
    assert (error.line, error.problem) == (4, "is not UTF-8 text")
