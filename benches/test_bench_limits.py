"""What rate limits cost selection: ``select_model`` at 100 models with no
limits, with ``rpm``/``tpm`` on every model, and with those limits shared
across workers, in the same run, beside the plain-Python baseline with and
without its own sliding-log windows.

Group ``select n=100 limits``. The limits are the largest the core allows
(``bench_common.BENCH_LIMITS``), so no window fills and what is timed is the
check of every model plus the reservation of the chosen one. The target
(issue 14): limits add at most 0.3 µs. Each ``select_model`` runs in a fresh
context, like ``test_bench_selection``; its ticket stays pending, so the
windows hold every reservation of the last minute, as under real traffic.

Case ``shared``: the limits enforced across workers (``state="redis://..."``):
every model's window is shared and holds a lease large enough for the run, as
the lease thread would grant it. That is the whole hot path of a shared limit
(the lease thread's Redis exchange runs off it, in the sync thread), so the
case times the lease check and the reservation's take from its grant.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench_common import BENCH_LIMITS, REQUEST, build_baseline, build_registry, in_fresh_context

N = 100
CASES = {
    "no limits": (None, None),
    "rpm/tpm on every model": BENCH_LIMITS,
    "rpm/tpm on every model, shared": BENCH_LIMITS,
}
#: A lease no benchmark run uses up, for a window of one day.
LEASE = 2**53


def share_every_model(registry: Any) -> None:
    """Share every model's window and grant it a lease for the whole run."""
    core = registry.core
    core.set_rate_limit_window(86_400.0)
    for model in registry:
        slot = core.slot_of(model.name)
        core.share_limits(slot, 0.5)
        core.grant_lease(slot, "requests", 1, LEASE, 86_400.0)
        core.grant_lease(slot, "tokens", 1, LEASE, 86_400.0)


@pytest.mark.parametrize("case", list(CASES))
def test_select_with_limits_orchestrator(benchmark: Any, case: str) -> None:
    registry = build_registry(N, limits=CASES[case])
    if case.endswith("shared"):
        share_every_model(registry)
    benchmark.group = f"select n={N} limits"
    benchmark.extra_info.update(contender=f"orchestrator select_model, {case}", models=N)
    model = benchmark(in_fresh_context, registry.select_model, **REQUEST)
    assert model.capabilities.code_generation
    assert (model.rpm, model.tpm) == CASES[case]


@pytest.mark.parametrize("case", [case for case in CASES if not case.endswith("shared")])
def test_select_with_limits_plain_python(benchmark: Any, case: str) -> None:
    registry = build_baseline(N, limits=CASES[case])
    benchmark.group = f"select n={N} limits"
    benchmark.extra_info.update(contender=f"plain-Python baseline select, {case}", models=N)
    selection = benchmark(registry.select, **REQUEST)
    assert "code_generation" in selection.model.capabilities
