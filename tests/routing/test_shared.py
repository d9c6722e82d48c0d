"""Shared learning across two processes through a real redis-server: what
one worker learns reaches the other, both ways, and mismatched workers are
refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from orchestrator.routing import ContextualRouter, ContextualSelector
from orchestrator.routing.shared import SharedRouter

pytestmark = pytest.mark.timeout(60)

MODELS = ["small", "large"]
COSTS = {"small": 0.001, "large": 0.01}
HARD = "compute the integral of x squared"
EASY = "say hello to my friend"

WORKER = textwrap.dedent(
    """
    import sys
    from orchestrator.routing import ContextualRouter, ContextualSelector
    from orchestrator.routing.shared import SharedRouter

    router = ContextualRouter(
        ["small", "large"], costs={"small": 0.001, "large": 0.01},
        selector=ContextualSelector(hash_bits=12),
    )
    with SharedRouter(router, sys.argv[1], name="test").start(background=False) as shared:
        before = router.predict("say hello to my friend")[0].quality
        for _ in range(20):
            router.learn("compute the integral of x squared", "large", 1.0)
            router.learn("compute the integral of x squared", "small", 0.0)
        shared.sync()
        after = router.predict("say hello to my friend")[0].quality
    print(before, after)
    """
)


def router() -> ContextualRouter:
    return ContextualRouter(MODELS, costs=COSTS, selector=ContextualSelector(hash_bits=12))


def test_two_processes_learn_together(redis_url: str) -> None:
    here = router()
    with SharedRouter(here, redis_url, name="test").start(background=False) as shared:
        fresh = here.predict(HARD)
        for _ in range(20):
            here.learn(EASY, "small", 1.0)
        shared.sync()
        worker = subprocess.run(
            [sys.executable, "-c", WORKER, redis_url],
            capture_output=True,
            text=True,
            timeout=50,
            check=True,
        )
        # The other process saw this one's lesson on EASY when it started.
        worker_before, _ = (float(v) for v in worker.stdout.split())
        assert worker_before > 0.8
        shared.sync()
        learned = here.predict(HARD)
        # And this one now has the other's lesson on HARD.
        assert learned[1].quality > fresh[1].quality + 0.3
        assert learned[0].quality < fresh[0].quality - 0.3
        assert here.decide(HARD, willingness_to_pay=0.02).model == "large"
        assert here.decide(EASY, willingness_to_pay=0.02).model == "small"


def test_background_sync_and_mismatched_workers(redis_url: str) -> None:
    first = router()
    with SharedRouter(first, redis_url, name="bg", interval_s=0.05).start():
        pass
    other_models = ContextualRouter(["small", "medium"], selector=ContextualSelector(hash_bits=12))
    with pytest.raises(ValueError, match="models"):
        SharedRouter(other_models, redis_url, name="bg").start()
    other_size = ContextualRouter(MODELS, selector=ContextualSelector(hash_bits=13))
    with pytest.raises(ValueError, match="dim"):
        SharedRouter(other_size, redis_url, name="bg").start()
    with pytest.raises(ValueError, match="name"):
        SharedRouter(first, redis_url, name="a:b")
    with pytest.raises(ValueError, match="interval_s"):
        SharedRouter(first, redis_url, interval_s=0)
    with pytest.raises(ValueError, match="models"):
        first.add_model("late")  # the model list is fixed while sharing
