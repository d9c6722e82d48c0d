"""``ContextualRouter``: the core's prompt-aware router with Python results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from orchestrator import _core
from orchestrator.models.selectors import calibration_table
from orchestrator.routing.selector import ContextualSelector

Prompt = Union[str, Sequence[Mapping[str, Any]]]
"""Text, or chat messages whose ``content`` strings are joined by newlines."""


@dataclass(frozen=True)
class Decision:
    """The chosen model; ``request_id`` is what delayed feedback is reported under."""

    model: str
    request_id: Optional[int]
    quality: float
    """The quality the decision used for the chosen model (drawn, under Thompson sampling)."""


@dataclass(frozen=True)
class ModelPrediction:
    """One model's expected quality in [0, 1] for a prompt and its standard deviation."""

    model: str
    quality: float
    uncertainty: float


@dataclass(frozen=True)
class FeatureEffect:
    """A feature (word n-gram, ``#ab`` character n-gram, structure signal,
    ``embedding[i]``) and its contribution to the model's logit."""

    feature: str
    logit: float


@dataclass(frozen=True)
class ModelExplanation:
    """Why a model got its prediction for a prompt."""

    model: str
    quality: float
    uncertainty: float
    expected_cost: Optional[float]
    observations: int
    top_features: tuple[FeatureEffect, ...]


class ContextualRouter:
    """Prompt-aware router over named models.

    ``costs`` are the models' expected USD per call (needed by ``decide``
    unless each call passes its own). Thread-safe: each call takes the core's
    lock for its few microseconds.
    """

    def __init__(
        self,
        models: Sequence[str],
        *,
        costs: Optional[Mapping[str, float]] = None,
        selector: Optional[ContextualSelector] = None,
    ) -> None:
        if isinstance(models, str):
            raise TypeError("models must be a list of model names, not a string")
        self.selector = selector or ContextualSelector()
        self._core = _core.ContextualRouter(
            list(models), costs=dict(costs or {}), **self.selector.core_options()
        )

    @classmethod
    def _wrap(cls, core: _core.ContextualRouter, selector: ContextualSelector) -> ContextualRouter:
        router = cls.__new__(cls)
        router.selector = selector
        router._core = core
        return router

    @property
    def models(self) -> list[str]:
        return self._core.models

    @property
    def pending(self) -> int:
        """Decisions still waiting for delayed feedback."""
        return self._core.pending

    def add_model(self, name: str, cost: Optional[float] = None) -> None:
        self._core.add_model(name, cost)

    def remove_model(self, name: str) -> None:
        self._core.remove_model(name)

    def set_cost(self, name: str, cost: float) -> None:
        self._core.set_cost(name, cost)

    def featurize(self, prompt: Prompt, embedding: Any = None) -> tuple[list[int], list[float]]:
        """The prompt's sparse features (indices may repeat; values add up)."""
        return self._core.featurize(prompt, embedding)

    def predict(self, prompt: Prompt, embedding: Any = None) -> list[ModelPrediction]:
        """Every model's expected quality for the prompt, in model order."""
        return [
            ModelPrediction(name, quality, uncertainty)
            for name, (quality, uncertainty) in zip(
                self.models, self._core.predict(prompt, embedding)
            )
        ]

    def _cost_list(self, costs: Mapping[str, float]) -> list[float]:
        models = self.models
        unknown = set(costs) - set(models)
        if unknown:
            raise KeyError(f"costs names unknown models: {sorted(unknown)}")
        missing = [name for name in models if name not in costs]
        if missing:
            raise ValueError(f"invalid costs: no cost for {missing}")
        return [costs[name] for name in models]

    def decide(
        self,
        prompt: Prompt,
        *,
        willingness_to_pay: Optional[float] = None,
        eligible: Optional[Sequence[str]] = None,
        costs: Optional[Mapping[str, float]] = None,
        embedding: Any = None,
        record: bool = True,
    ) -> Decision:
        """Choose among the ``eligible`` models (default: all) the one maximising quality −
        cost / willingness_to_pay. ``costs`` overrides the stored costs for
        this call. With ``record``, the decision waits for :meth:`report_quality`."""
        wtp = self.selector.willingness_to_pay if willingness_to_pay is None else willingness_to_pay
        model, request_id, quality = self._core.decide(
            prompt,
            wtp,
            eligible=eligible,
            costs=None if costs is None else self._cost_list(costs),
            embedding=embedding,
            record=record,
        )
        return Decision(model, request_id, quality)

    def learn(self, prompt: Prompt, model: str, quality: float, embedding: Any = None) -> None:
        """Learn that ``model`` reached ``quality`` (in [0, 1]) on this prompt."""
        self._core.learn(prompt, model, quality, embedding)

    def report_quality(self, request_id: int, quality: float) -> str:
        """Delayed feedback for a recorded decision; returns the model it was about.
        Unknown, already reported or expired ids raise ``ValueError``."""
        return self._core.report(request_id, quality)

    def calibrate(
        self,
        prompts: Sequence[str],
        qualities: Mapping[str, Sequence[float]],
        costs: Optional[Mapping[str, float]] = None,
    ) -> None:
        """Fit from an evaluation table: ``qualities`` maps model name to one
        quality in [0, 1] per prompt; ``costs`` (USD per call) are stored for
        later decisions. Online learning continues from the result."""
        self._core.calibrate(*calibration_table(prompts, qualities, costs))

    def explain(
        self, prompt: Prompt, embedding: Any = None, top: int = 5
    ) -> list[ModelExplanation]:
        """Per model: predicted quality, uncertainty, expected cost and the
        ``top`` features that moved the prediction most."""
        return [
            ModelExplanation(
                name,
                quality,
                uncertainty,
                cost,
                observations,
                tuple(FeatureEffect(feature, logit) for feature, logit in effects),
            )
            for name, quality, uncertainty, cost, observations, effects in self._core.explain(
                prompt, embedding, top
            )
        ]

    def to_bytes(self) -> bytes:
        """The learned state (binary format of ``contextual/persist.rs``)."""
        return self._core.save()

    @classmethod
    def from_bytes(
        cls, state: bytes, selector: Optional[ContextualSelector] = None
    ) -> ContextualRouter:
        """A router from :meth:`to_bytes` with ``selector``'s hyper-parameters (its
        featurizer settings come from the state); refuses another featurizer version."""
        selector = selector or ContextualSelector()
        settings = _core.ContextualRouter([], **selector.core_options())
        return cls._wrap(_core.ContextualRouter.load(state, settings), selector)

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(
        cls, path: Union[str, Path], selector: Optional[ContextualSelector] = None
    ) -> ContextualRouter:
        return cls.from_bytes(Path(path).read_bytes(), selector)
