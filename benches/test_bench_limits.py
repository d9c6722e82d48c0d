"""What rate limits cost selection: ``select_model`` at 100 models with no
limits and with ``rpm``/``tpm`` on every model, in the same run, beside the
plain-Python baseline with and without its own sliding-log windows.

Group ``select n=100 limits``. The limits are the largest the core allows
(``bench_common.BENCH_LIMITS``), so no window fills and what is timed is the
check of every model plus the reservation of the chosen one. The target
(issue 14): limits add at most 0.3 µs. Each ``select_model`` runs in a fresh
context, like ``test_bench_selection``; its ticket stays pending, so the
windows hold every reservation of the last minute, as under real traffic.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench_common import BENCH_LIMITS, REQUEST, build_baseline, build_registry, in_fresh_context

N = 100
CASES = {"no limits": (None, None), "rpm/tpm on every model": BENCH_LIMITS}


@pytest.mark.parametrize("case", list(CASES))
def test_select_with_limits_orchestrator(benchmark: Any, case: str) -> None:
    registry = build_registry(N, limits=CASES[case])
    benchmark.group = f"select n={N} limits"
    benchmark.extra_info.update(contender=f"orchestrator select_model, {case}", models=N)
    model = benchmark(in_fresh_context, registry.select_model, **REQUEST)
    assert model.capabilities.code_generation
    assert (model.rpm, model.tpm) == CASES[case]


@pytest.mark.parametrize("case", list(CASES))
def test_select_with_limits_plain_python(benchmark: Any, case: str) -> None:
    registry = build_baseline(N, limits=CASES[case])
    benchmark.group = f"select n={N} limits"
    benchmark.extra_info.update(contender=f"plain-Python baseline select, {case}", models=N)
    selection = benchmark(registry.select, **REQUEST)
    assert "code_generation" in selection.model.capabilities
