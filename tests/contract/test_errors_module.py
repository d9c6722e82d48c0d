"""One exception module: every public exception class of the package is
defined in ``orchestrator.errors`` (issue 11, "One exception module"), each
keeps its old import path, and ``orchestrator.errors`` imports nothing else
of the package (so it can never be part of an import cycle)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import orchestrator
from orchestrator import errors

pytestmark = pytest.mark.timeout(60)

#: Exceptions that never leave the module that raises them: private control
#: flow, each with where it is caught. Anything else must be in errors.py.
INTERNAL_SIGNALS = {
    "orchestrator._core.NoEligible": "the core's carrier, turned into NoEligibleModelsError",
    "orchestrator.server.app.ClientGone": "caught by the gateway's request loop",
    "orchestrator.server.errors.GatewayError": "rendered by the gateway as an HTTP answer",
    "orchestrator.server.feedback.FeedbackAlreadyGiven": "rendered by the gateway as a 409",
    "orchestrator.server.feedback_relay.RelayUnavailable": "rendered by the gateway as a 503",
}

#: Every class that moved into errors.py, and the modules it used to live in.
OLD_PATHS = {
    "ConfigError": "orchestrator.config.errors",
    "ConfigProblem": "orchestrator.config.errors",
    "SharedStateError": "orchestrator.models.shared_state",
    "StateVersionError": "orchestrator.models.shared_state",
    "CLIError": "orchestrator.cli.app",
    "ServeError": "orchestrator.server.command",
    "EvalError": "orchestrator.evaluation.table",
    "KeyConfigurationError": "orchestrator.server.auth",
    "BackendUnavailable": "orchestrator.core.cache_backends.base",
    "CorruptEntry": "orchestrator.core.cache_backends.codec",
    "CountIncomplete": "orchestrator.core.cache_backends.base",
}


def every_module() -> list[ModuleType]:
    """Every module of the package (``__main__`` modules run a command: skipped)."""
    names = [m.name for m in pkgutil.walk_packages(orchestrator.__path__, "orchestrator.")]
    return [importlib.import_module(n) for n in names if not n.endswith("__main__")]


def test_every_public_exception_class_is_defined_in_orchestrator_errors() -> None:
    defined_elsewhere = {
        f"{value.__module__}.{value.__name__}"
        for module in every_module()
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__.startswith("orchestrator.")
        and value.__module__ != "orchestrator.errors"
        and not value.__name__.startswith("_")
    }
    assert defined_elsewhere == set(INTERNAL_SIGNALS)


@pytest.mark.parametrize(("name", "old_module"), sorted(OLD_PATHS.items()))
def test_a_moved_error_keeps_its_old_import_path(name: str, old_module: str) -> None:
    assert getattr(importlib.import_module(old_module), name) is getattr(errors, name)
    assert getattr(errors, name).__module__ == "orchestrator.errors"


def loaded_by(statement: str) -> set[str]:
    """The package's modules a fresh interpreter has loaded after ``statement``."""
    code = (
        f"import sys; {statement}; print(*(m for m in sys.modules if m.startswith('orchestrator')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    return set(run.stdout.split())


def test_errors_imports_nothing_else_of_the_package() -> None:
    extra = loaded_by("import orchestrator.errors") - loaded_by("import orchestrator")
    assert extra <= {"orchestrator.errors"}


def test_errors_that_were_value_errors_still_are() -> None:
    for name in ("EvalError", "KeyConfigurationError"):
        assert issubclass(getattr(errors, name), ValueError)
        assert issubclass(getattr(errors, name), errors.OrchestratorError)
    assert issubclass(errors.StateVersionError, errors.SharedStateError)
    assert errors.CLIError("x").code == 1
