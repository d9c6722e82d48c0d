"""What session affinity costs selection: ``select_model`` at 100 models
without a session, with a session that is kept (a hit: the bound model is
checked first and taken), and with a session seen for the first time (a
fresh pick, then bound; the ids cycle through twice ``max_sessions``, so
every one was evicted and each selection also evicts the least recently
used), in the same run, beside the plain-Python baseline doing the same.

Group ``select n=100 session``. Each ``select_model`` runs in a fresh
context, like ``test_bench_selection``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bench_common import REQUEST, build_baseline, build_registry, in_fresh_context

N = 100
#: Distinct first-seen ids, twice the default ``max_sessions``.
FIRST_SEEN_IDS = [f"conversation-{i:06d}" for i in range(200_000)]
CASES = ("no session", "session kept", "session first seen")


def session_ids(case: str) -> Any:
    """The ``session_id`` of each round of ``case`` (``None``: no session)."""
    if case == "no session":
        return itertools.repeat(None)
    if case == "session kept":
        return itertools.repeat("conversation-kept")
    return itertools.cycle(FIRST_SEEN_IDS)


@pytest.mark.parametrize("case", CASES)
def test_select_with_session_orchestrator(benchmark: Any, case: str) -> None:
    registry = build_registry(N)
    ids = session_ids(case)
    benchmark.group = f"select n={N} session"
    benchmark.extra_info.update(contender=f"orchestrator select_model, {case}", models=N)

    def select() -> Any:
        return in_fresh_context(registry.select_model, session_id=next(ids), **REQUEST)

    model = benchmark(select)
    assert model.capabilities.code_generation
    held = registry.core.session_counts()[0]
    assert held == {"no session": 0, "session kept": 1}.get(case, held)


@pytest.mark.parametrize("case", CASES)
def test_select_with_session_plain_python(benchmark: Any, case: str) -> None:
    registry = build_baseline(N)
    ids = session_ids(case)
    benchmark.group = f"select n={N} session"
    benchmark.extra_info.update(contender=f"plain-Python baseline select, {case}", models=N)

    def select() -> Any:
        return registry.select(session_id=next(ids), **REQUEST)

    selection = benchmark(select)
    assert "code_generation" in selection.model.capabilities
