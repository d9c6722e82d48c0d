"""The dependency direction is one way: the base ``Model`` reports through the
``OutcomeSink`` protocol and never imports the registry; these modules import
at the top (no imports inside functions dodging cycles); every public error
lives in ``orchestrator.errors`` and keeps its old import path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import orchestrator
from orchestrator import errors
from orchestrator.core import model as model_module
from orchestrator.models import failover, model_registry

pytestmark = pytest.mark.timeout(30)

PACKAGE = Path(orchestrator.__file__).parent
OWNED = [
    "core/model.py",
    "errors.py",
    "models/explanation.py",
    "models/failover.py",
    "models/model_registry.py",
    "models/selectors.py",
]


def imported_modules(path: Path) -> set[str]:
    """Modules imported at run time (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("relative", OWNED)
def test_no_imports_inside_functions(relative: str) -> None:
    tree = ast.parse((PACKAGE / relative).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                assert not isinstance(inner, (ast.Import, ast.ImportFrom)), (
                    f"{relative}:{inner.lineno} imports inside {node.name}()"
                )


def test_the_base_model_does_not_know_the_registry() -> None:
    imports = imported_modules(PACKAGE / "core/model.py")
    assert not any(m.startswith("orchestrator.models") for m in imports)
    assert "_record_outcome" not in (PACKAGE / "core/model.py").read_text()
    assert set(model_module.OutcomeSink.__dict__) >= {"record", "release"}


def test_selectors_and_errors_do_not_import_the_registry() -> None:
    for relative in ("models/selectors.py", "errors.py", "models/explanation.py"):
        imports = imported_modules(PACKAGE / relative)
        assert "orchestrator.models.model_registry" not in imports, relative


def test_every_public_error_lives_in_errors_and_keeps_its_old_path() -> None:
    for name in ("ModelNotFoundError", "DuplicateModelError", "NoEligibleModelsError"):
        assert getattr(model_registry, name) is getattr(errors, name)
    for name in ("FailoverError", "FailoverExhaustedError", "FailoverTimeoutError"):
        assert getattr(failover, name) is getattr(errors, name)
    assert issubclass(errors.StaleTicketError, ValueError)
    assert issubclass(errors.StaleTicketError, errors.OrchestratorError)
