"""Selection policies that are not registry strategies: arms index ``scenario.models``.

A :class:`Policy` is any object with ``choose(t) -> arm`` and ``update(arm, reward)``;
:class:`OraclePolicy` knows every model's true expected reward and picks the best
eligible one at each request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from orchestrator.simulation.scenarios import FloatArray


@runtime_checkable
class Policy(Protocol):
    """A non-registry selection policy: arms index ``scenario.models``."""

    def choose(self, t: int) -> int: ...

    def update(self, arm: int, reward: float) -> None: ...


@dataclass
class FunctionPolicy:
    """A :class:`Policy` from two callables."""

    choose_fn: Callable[[int], int]
    update_fn: Callable[[int, float], None]

    def choose(self, t: int) -> int:
        return self.choose_fn(t)

    def update(self, arm: int, reward: float) -> None:
        self.update_fn(arm, reward)


class RandomPolicy:
    """Uniformly random among ``arms``."""

    def __init__(self, arms: Sequence[int], seed: int = 0) -> None:
        self.arms = list(arms)
        self._rng = np.random.default_rng(seed)

    def choose(self, t: int) -> int:
        return self.arms[int(self._rng.integers(len(self.arms)))]

    def update(self, arm: int, reward: float) -> None:
        return None


class OraclePolicy:
    """The best eligible arm by true expected reward (shape of ``expected``: requests x models)."""

    def __init__(self, expected: FloatArray, eligible: Sequence[int]) -> None:
        self._expected = expected[:, list(eligible)]
        self._eligible = list(eligible)

    def choose(self, t: int) -> int:
        return self._eligible[int(np.argmax(self._expected[t]))]

    def update(self, arm: int, reward: float) -> None:
        return None
