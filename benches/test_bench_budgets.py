"""What spend budgets cost selection: ``select_model`` at 100 models with no
limits, and with ``rpm``/``tpm`` on every model plus 3 budgets (the fleet's
provider, one model, and the request's tenant) active, in the same run,
beside the plain-Python baseline with the same limits and budgets.

Group ``select n=100 budgets``. Limits and budgets are the largest allowed,
so none refuses and what is timed is every model's check plus the chosen
one's reservations. The target (issue 14): ≤ +0.3 µs over no limits. Each
``select_model`` runs in a fresh context; its ticket (and budget hold) stays
pending, as under real traffic.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench_common import BENCH_LIMITS, REQUEST, build_baseline, build_registry, in_fresh_context
from orchestrator import _core
from orchestrator.core.budgets import BudgetScope

N = 100
LIMIT_USD = _core.MAX_BUDGET_LIMIT_USD
#: ``(scope, value)`` of the 3 budgets; the tenant's applies through ``tenant=``.
BUDGETS = [("provider", "bench"), ("model", "model-00000"), ("tenant", "acme")]
CASES = ["no limits", "rpm/tpm on every model + 3 budgets"]


@pytest.mark.parametrize("case", CASES)
def test_select_with_budgets_orchestrator(benchmark: Any, case: str) -> None:
    limited = case != "no limits"
    registry = build_registry(N, limits=BENCH_LIMITS if limited else (None, None))
    request: dict[str, Any] = dict(REQUEST)
    if limited:
        for scope, value in BUDGETS:
            registry.add_budget(BudgetScope(**{scope: value}), LIMIT_USD, "day")
        request["tenant"] = "acme"
    benchmark.group = f"select n={N} budgets"
    benchmark.extra_info.update(contender=f"orchestrator select_model, {case}", models=N)
    model = benchmark(in_fresh_context, registry.select_model, **request)
    assert model.capabilities.code_generation
    if limited:
        assert all(b.reserved_nanos > 0 for b in registry.budgets()[::2])


@pytest.mark.parametrize("case", CASES)
def test_select_with_budgets_plain_python(benchmark: Any, case: str) -> None:
    limited = case != "no limits"
    registry = build_baseline(N, limits=BENCH_LIMITS if limited else (None, None))
    request: dict[str, Any] = dict(REQUEST)
    if limited:
        for scope, value in BUDGETS:
            registry.add_budget(scope, value, LIMIT_USD)
        request["tenant"] = "acme"
    benchmark.group = f"select n={N} budgets"
    benchmark.extra_info.update(contender=f"plain-Python baseline select, {case}", models=N)
    selection = benchmark(registry.select, **request)
    assert "code_generation" in selection.model.capabilities
