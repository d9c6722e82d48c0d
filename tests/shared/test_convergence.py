"""Four workers sharing statistics find the best model in fewer total
requests than four workers learning alone.

"Requests to find the best model" counts, over the four workers together,
the requests sent to any other model (the exploration the group paid for)
during 1,500 rounds each. Also reported: the round after which each worker's
best-model share in every later window of 100 picks stays >= 60%, summed.
"""

from __future__ import annotations

import logging

from tests.redis_server import RedisServer
from tests.shared.helpers import run_workers
from tests.shared.workers import BEST, convergence_worker

logger = logging.getLogger(__name__)

ROUNDS = 1_500
WINDOW = 100
SHARE = 0.6


def settled_at(chosen: list[str]) -> int:
    """The first round after which every window of ``WINDOW`` picks is at
    least ``SHARE`` best model (``len(chosen)`` if never)."""
    settled = len(chosen)
    for end in range(len(chosen), WINDOW - 1, -1):
        if chosen[end - WINDOW : end].count(BEST) < SHARE * WINDOW:
            break
        settled = end - WINDOW
    return settled


def exploration(runs: list[list[str]]) -> int:
    return sum(len(c) - c.count(BEST) for c in runs)


def test_sharing_finds_the_best_model_sooner(redis_server: RedisServer, namespace: str) -> None:
    for seed in range(2):
        kwargs = {
            "state": redis_server.url,
            "namespace": f"{namespace}-{seed}",
            "rounds": ROUNDS,
            "pace": 0.002,
            "seed": seed,
            "sync_every": 25,  # what the 50 ms sync thread does at this pace, on any machine
        }
        shared = run_workers("convergence_worker", [kwargs] * 4)
        # Learning alone needs no Redis and no pacing: run it here.
        alone = [
            convergence_worker(lambda: None, i, "local", "alone", ROUNDS, pace=0.0, seed=seed)
            for i in range(4)
        ]
        logger.warning(
            "seed %d: requests to other models: shared %d, alone %d; "
            "settled after (sum of 4 workers) shared %d, alone %d",
            seed,
            exploration(shared),
            exploration(alone),
            sum(map(settled_at, shared)),
            sum(map(settled_at, alone)),
        )
        assert exploration(shared) < 0.6 * exploration(alone)
        assert all(len(c) == ROUNDS for c in shared)
