"""A contextual registry with ``state="redis://..."`` shares what its router
learns across workers (two processes, a real redis-server): additive sums
of the posterior's natural parameters, pushed and read back in the shared
state's sync cycle, keyed by model name so workers may register their
models in any order (and add models while sharing)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)

HARD = "compute the integral of x squared"

WORKER = textwrap.dedent(
    """
    import json, sys
    from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
    from tests.conftest import ScriptedModel

    registry = ModelRegistry(
        model_selector=ContextualSelector(hash_bits=12, seed=1),
        state=sys.argv[1], state_namespace="ctx", sync_interval=60,
    )
    for name in ("cheap", "strong"):
        registry.register_model(ScriptedModel(name))
    for _ in range(80):
        selection = registry.select(prompt="compute the integral of x squared")
        quality = 1.0 if selection.model.name == "strong" else 0.0
        registry.report_quality(selection.request_id, quality)
    assert registry.shared_state.sync_now()
    explained = registry.explain_selection(prompt="compute the integral of x squared")
    print(json.dumps({c.name: c.estimate for c in explained.candidates}))
    registry.close()
    """
)


def estimates(registry: ModelRegistry) -> dict[str, float]:
    explained = registry.explain_selection(prompt=HARD)
    return {c.name: c.estimate or 0.0 for c in explained.candidates}


def test_two_workers_share_what_the_router_learns(redis_url: str) -> None:
    here = ModelRegistry(
        model_selector=ContextualSelector(hash_bits=12),
        state=redis_url,
        state_namespace="ctx",
        sync_interval=60,
    )
    try:
        # Another registration order than the worker's, and a model it lacks.
        for name in ("strong", "extra", "cheap"):
            here.register_model(ScriptedModel(name))
        assert here.shared_state is not None and here.shared_state.sync_now()
        fresh = estimates(here)
        done = subprocess.run(
            [sys.executable, "-c", WORKER, redis_url],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 0, done.stderr[-2000:]
        there = json.loads(done.stdout.strip().splitlines()[-1])
        assert here.shared_state.sync_now()
        learned = estimates(here)
        for name in ("cheap", "strong"):
            assert learned[name] == pytest.approx(there[name], abs=1e-4), name
        assert learned["strong"] > fresh["strong"] + 0.1
        assert learned["cheap"] < fresh["cheap"]  # tried less: Thompson saw strong win
        assert learned["extra"] == pytest.approx(fresh["extra"])
        # What this worker learns goes the other way, and the sums stay additive.
        for _ in range(20):
            selection = here.select(prompt=HARD, exclude_models=["cheap", "strong"])
            here.report_quality(selection.request_id or 0, 1.0)
        assert here.shared_state.sync_now()
        assert estimates(here)["extra"] > fresh["extra"] + 0.1
    finally:
        here.close()
