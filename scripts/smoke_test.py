"""Smoke test of an installed orchestrator-router wheel (run from outside the repo).

Imports the library, checks it came from site-packages with its metadata, selects
models with constraints through the compiled core, and checks that the base
install did not load the command-line stack. With ``--cli`` it also expects the
``[cli]`` extra to be installed; without, it expects the console script to say
which extra to install. Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import orchestrator
import orchestrator._core as core
from orchestrator.models.model_registry import ModelRegistry, NoEligibleModelsError
from orchestrator.simulation import ModelProfile, SimulatedModel


def check(condition: bool, message: str) -> None:
    """Fail the smoke test with ``message`` unless ``condition`` holds."""
    if not condition:
        sys.exit(f"smoke test failed: {message}")


def selection() -> str:
    """Register three models, select under constraints, call the chosen one."""
    registry = ModelRegistry()
    registry.seed(1)
    for name, price, quality in (("cheap", 0.1, 0.6), ("mid", 1.0, 0.8), ("premium", 20.0, 0.95)):
        profile = ModelProfile(name, input_per_million=price, output_per_million=price * 3,
                               quality=quality)  # fmt: skip
        registry.register_model(SimulatedModel(name, profile, seed=7))
    chosen = registry.select_model(max_cost=0.002, input_tokens=1000, output_tokens=300)
    check(chosen.name in ("cheap", "mid"), f"max_cost not applied: chose {chosen.name}")
    try:
        registry.select_model(capabilities=["vision"])
    except NoEligibleModelsError:
        pass
    else:
        check(False, "a capability no model has was satisfied")
    result = asyncio.run(registry.generate("hello", retry_budget=2))
    check(bool(result.text), "no answer from the registry")
    return chosen.name


def main() -> None:
    with_cli = "--cli" in sys.argv[1:]
    check("site-packages" in orchestrator.__file__, f"imported from {orchestrator.__file__}")
    check(orchestrator.__version__ == version("orchestrator-router"), "version mismatch")
    check(shutil.which("cargo") is None and shutil.which("rustc") is None, "Rust is on PATH")
    chosen = selection()
    loaded = sorted({m.partition(".")[0] for m in sys.modules} & {"typer", "matplotlib"})
    check(loaded == [], f"the library imported {loaded}")
    script = Path(sys.executable).with_name("orchestrator")
    run = subprocess.run([str(script), "--version" if with_cli else "models"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if with_cli:
        check(run.returncode == 0, f"orchestrator --version failed: {run.stderr}")
        check(f"orchestrator-router {orchestrator.__version__}" in run.stdout, run.stdout)
    else:
        check(run.returncode == 2, f"without [cli]: exit {run.returncode}, {run.stderr}")
        check("pip install 'orchestrator-router[cli]'" in run.stderr, run.stderr)
    print(
        f"smoke test OK: orchestrator-router {orchestrator.__version__} (core "
        f"{core.__version__}) on Python {sys.version.split()[0]}, chose {chosen}, "
        f"cli {'installed' if with_cli else 'not installed, says which extra'}"
    )


if __name__ == "__main__":
    main()
