"""The test run's own settings (pyproject's [tool.pytest.ini_options]) do what they promise:
a hanging test fails on its timeout, and a warning raised from our package is an error
while a third party's warning stays a warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WARNING_PROBES = '''
import types


def warn_from(module_name):
    """Raise a UserWarning from code that lives in a module called ``module_name``."""
    module = types.ModuleType(module_name)
    source = "import warnings\\ndef warn():\\n    warnings.warn('probe', UserWarning)\\n"
    exec(source, module.__dict__)
    module.warn()


def test_warning_from_our_package():
    warn_from("orchestrator._warning_probe")


def test_warning_from_our_top_level_module():
    warn_from("orchestrator")


def test_warning_from_a_third_party():
    warn_from("thirdparty.module")


def test_warning_from_a_lookalike_name():
    warn_from("orchestrator_other")
'''

HANGING_TEST = """
import time


def test_hangs():
    time.sleep(600)
"""


def run_pytest(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    """Run pytest with the repository's configuration on one test file written to ``tmp_path``."""
    test_file = tmp_path / "test_probe.py"
    test_file.write_text(source)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-q",
            *options,
            str(test_file),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=90,
        check=False,
    )


@pytest.mark.timeout(100)
def test_warnings_from_our_package_are_errors_and_others_are_not(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, WARNING_PROBES, "-rA")
    outcomes = {
        line.split(" ", 1)[1].split(" ", 1)[0].rsplit("::", 1)[1]: line.split(" ", 1)[0]
        for line in result.stdout.splitlines()
        if line.startswith(("PASSED ", "FAILED "))
    }
    assert outcomes == {
        "test_warning_from_our_package": "FAILED",
        "test_warning_from_our_top_level_module": "FAILED",
        "test_warning_from_a_third_party": "PASSED",
        "test_warning_from_a_lookalike_name": "PASSED",
    }, result.stdout
    assert "UserWarning: probe" in result.stdout


def test_every_test_has_a_default_timeout(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) == 120


@pytest.mark.timeout(100)
def test_a_hanging_test_fails_on_its_timeout(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, HANGING_TEST, "-o", "timeout=2")
    assert result.returncode == 1, result.stdout
    assert "Timeout (>2.0s) from pytest-timeout" in result.stdout
