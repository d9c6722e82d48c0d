"""The library is usable without the ``[cli]`` extra: importing any of its modules
never imports typer, rich or matplotlib, and the console script says which extra
to install when they are missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CLI_PACKAGES = ("typer", "rich", "matplotlib", "click")

# Runs in a fresh interpreter: hides the CLI packages as if they were not installed
# (the path finder no longer sees them), then does what the test asks.
HIDE_CLI_PACKAGES = textwrap.dedent(
    """
    import importlib.machinery, sys

    HIDDEN = set(sys.argv[1].split(","))


    class WithoutCli(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name.partition(".")[0] in HIDDEN:
                return None
            return importlib.machinery.PathFinder.find_spec(name, path, target)


    sys.meta_path = [
        WithoutCli if finder is importlib.machinery.PathFinder else finder
        for finder in sys.meta_path
    ]
    """
)

IMPORT_EVERY_LIBRARY_MODULE = textwrap.dedent(
    """
    import json, pkgutil, importlib, orchestrator

    names = sorted(
        info.name
        for info in pkgutil.walk_packages(orchestrator.__path__, "orchestrator.")
        # command-line entry points: the CLI package, `python -m` mains, the
        # `command` modules the CLI dispatches to (`orchestrator eval`, `serve`)
        # and the eval command's plot (matplotlib, the [cli] extra), and the
        # uvicorn protocol only `serve` loads (uvicorn needs click)
        if not info.name.startswith("orchestrator.cli")
        and info.name.rpartition(".")[2] not in ("__main__", "command")
        and info.name not in ("orchestrator.evaluation.plot", "orchestrator.server.protocol")
    )
    for name in names:
        importlib.import_module(name)
    loaded = sorted({m.partition(".")[0] for m in sys.modules} & HIDDEN)
    print(json.dumps({"modules": names, "cli_packages_loaded": loaded}))
    """
)


def run_python(source: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter with the CLI packages hidden."""
    return subprocess.run(
        [sys.executable, "-c", HIDE_CLI_PACKAGES + source, ",".join(CLI_PACKAGES), *argv],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.timeout(110)
def test_every_library_module_imports_without_the_cli_stack() -> None:
    result = run_python(IMPORT_EVERY_LIBRARY_MODULE)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cli_packages_loaded"] == []
    for expected in (
        "orchestrator.models.model_registry",
        "orchestrator.simulation",
        "orchestrator.integrations.openai_model",
        "orchestrator.integrations.anthropic_model",
        "orchestrator.integrations.simulated_model",
        "orchestrator.config",
    ):
        assert expected in report["modules"]


@pytest.mark.timeout(110)
def test_the_public_api_does_not_load_typer_or_matplotlib_even_when_installed() -> None:
    # (rich and click are left out here: httpx imports its own command line tool,
    # which uses them, whenever they are installed. The test above hides them.)
    source = textwrap.dedent(
        """
        import json, sys
        import orchestrator, orchestrator.models.model_registry, orchestrator.simulation
        import orchestrator.config, orchestrator.core.cache, orchestrator.integrations
        from orchestrator.integrations import openai_model, anthropic_model, simulated_model
        names = ("typer", "matplotlib")
        print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules} & set(names))))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=100, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.timeout(110)
def test_the_command_without_the_cli_extra_says_what_to_install() -> None:
    result = run_python("from orchestrator.cli import main\nmain(['simulate'])\n")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'orchestrator-router[cli]'" in lines[0]
    assert "typer" in lines[0] and "rich" in lines[0] and "matplotlib" in lines[0]


def test_version_comes_from_the_distribution_metadata() -> None:
    from importlib.metadata import version

    import orchestrator

    assert orchestrator.__version__ == version("orchestrator-router")
    assert orchestrator.DISTRIBUTION == "orchestrator-router"
