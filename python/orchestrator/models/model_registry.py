"""The model registry: registration, selection and learning.

``select_model`` crosses into the Rust core once: the core filters every
registered model by the request's constraints and scores the eligible ones
(UCB, cost or performance) in one pass, marks the winner pending under a
ticket, and returns the model object. When the model is then called, the
measured outcome is reported back under that ticket, so each outcome is
counted exactly once.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import numpy as np
import numpy.typing as npt

from orchestrator import _core
from orchestrator.core.model import (
    CAPABILITY_NAMES,
    ERROR_CLASS_INDEX,
    Binding,
    Model,
    ModelConstraints,
    ModelMetrics,
    check_capability_names,
    hold_ticket,
)
from orchestrator.errors import OrchestratorError
from orchestrator.models.health_monitor import TRANSITIONS
from orchestrator.models.selectors import (
    SELECTORS,
    CoreSelector,
    CostBasedSelector,
    ModelSelector,
    PerformanceSelector,
    RewardWeights,
    ThompsonSelector,
    UCBModelSelector,
    selector_for,
)

if TYPE_CHECKING:
    from orchestrator.core.cache import ModelCache
    from orchestrator.core.model import Prompt
    from orchestrator.models.failover import FailoverStream, GenerationResult
    from orchestrator.models.health_monitor import HealthStatus, ModelHealthMonitor
    from orchestrator.models.shared_state import SharedState

logger = logging.getLogger(__name__)

__all__ = [
    "SELECTORS",
    "CandidateExplanation",
    "CoreSelector",
    "CostBasedSelector",
    "DuplicateModelError",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelSelector",
    "NoEligibleModelsError",
    "PerformanceSelector",
    "RewardWeights",
    "Selection",
    "SelectionExplanation",
    "ThompsonSelector",
    "UCBModelSelector",
    "selector_for",
]


#: Core argument names that differ from the registry's keywords.
_KEYWORD_OF = {"exclude": "exclude_models"}


def _naming_the_field(exc: TypeError, values: dict[str, Any]) -> TypeError:
    """The core's type error, rewritten to name the keyword and its value
    (PyO3 puts the argument's name in a note)."""
    for note in getattr(exc, "__notes__", ()):
        match = re.fullmatch(r"while processing '(\w+)'", note)
        if match:
            field = _KEYWORD_OF.get(match.group(1), match.group(1))
            return TypeError(f"invalid {field}: {values.get(field)!r} ({exc})")
    return exc


class ModelNotFoundError(OrchestratorError, KeyError):
    """No model of that name is registered; the message suggests close names."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        self.name = name
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if not known:
            hint = "; the registry is empty"
        super().__init__(f"no model named {name!r} is registered{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateModelError(OrchestratorError, ValueError):
    """A model of that name is already registered."""


class NoEligibleModelsError(OrchestratorError):
    """No registered model satisfies the request. ``reasons`` maps each
    model's name to the constraint that excluded it."""

    def __init__(self, explanation: SelectionExplanation) -> None:
        self.explanation = explanation
        self.reasons = {c.name: f"{c.constraint}: {c.reason}" for c in explanation.candidates}
        if not explanation.candidates:
            message = "no models are registered"
        else:
            lines = "; ".join(f"{name} ({why})" for name, why in self.reasons.items())
            message = f"no registered model satisfies the request: {lines}"
        super().__init__(message)


@dataclass(frozen=True)
class CandidateExplanation:
    """One model's verdict for a request."""

    name: str
    provider: str
    eligible: bool
    constraint: Optional[str] = None
    reason: Optional[str] = None
    estimate: Optional[float] = None
    exploration_bonus: Optional[float] = None
    score: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    trials: int = 0
    pending: int = 0
    forced: bool = False
    expected_cost: Optional[float] = None

    def describe(self) -> str:
        if not self.eligible:
            return f"{self.name}: rejected by {self.constraint} ({self.reason})"
        cost = "unpriced" if self.expected_cost is None else f"${self.expected_cost:.6f}"
        if self.forced:
            return f"{self.name}: forced trial ({self.trials} outcomes so far), cost {cost}"
        return (
            f"{self.name}: score {self.score:.4f} = estimate {self.estimate:.4f} "
            f"+ bonus {self.exploration_bonus:.4f}; "
            f"CI [{self.ci_low:.3f}, {self.ci_high:.3f}] over {self.trials} outcomes, "
            f"{self.pending} pending, cost {cost}"
        )


@dataclass(frozen=True)
class SelectionExplanation:
    """Why a request would go to ``chosen``: every candidate's verdict."""

    strategy: str
    constraints: ModelConstraints
    chosen: Optional[str]
    candidates: list[CandidateExplanation]
    all_breakers_open: bool = False

    def __str__(self) -> str:
        head = f"strategy {self.strategy}: " + (
            f"chose {self.chosen}" if self.chosen else "no eligible model"
        )
        if self.all_breakers_open:
            head += " (every eligible model's circuit is open; probing the soonest to recover)"
        return "\n".join([head, *("  " + c.describe() for c in self.candidates)])


class Selection(NamedTuple):
    """A selected model and the ticket its outcome must be reported under
    (a tuple: it is built on every selection)."""

    model: Model
    ticket: int
    slot: int


class ModelRegistry:
    """Registered models and the selector that picks among them.

    Args:
        selection_strategy: ``"ucb"`` (default), ``"discounted_ucb"``,
            ``"thompson"``, ``"discounted_thompson"``, ``"cost"`` or
            ``"performance"``.
        model_selector: a :class:`ModelSelector` instance.
        health_monitor: a :class:`~orchestrator.models.health_monitor.ModelHealthMonitor`;
            one with ``check_interval=health_check_interval`` is created if omitted.
        health_check_interval: seconds between active health checks.
        cache_responses: ``True`` for an in-memory :class:`ModelCache`, or a
            cache instance, enabled on every registered model without one.
        reward_weights: how outcomes become rewards (:class:`RewardWeights`).
        pending_timeout: seconds after which a selection never reported stops
            counting as in flight.
        state: ``"local"`` (default: statistics live in this process) or a
            ``redis://``/``rediss://`` URL: workers sharing it add their outcomes
            to shared totals and read back everyone's every ``sync_interval``
            seconds, off the selection path (see :mod:`orchestrator.models.shared_state`).
        state_namespace: separates registries sharing one Redis.
    """

    def __init__(
        self,
        selection_strategy: Optional[str] = None,
        model_selector: Optional[ModelSelector] = None,
        health_monitor: Optional[ModelHealthMonitor] = None,
        health_check_interval: float = 300,
        cache_responses: Union[bool, ModelCache] = False,
        *,
        reward_weights: Optional[RewardWeights] = None,
        pending_timeout: float = 600.0,
        state: str = "local",
        state_namespace: str = "default",
        sync_interval: float = 0.5,
    ) -> None:
        if model_selector is not None and not isinstance(model_selector, ModelSelector):
            kind = type(model_selector).__name__
            raise TypeError(f"invalid model_selector: expected a ModelSelector, got {kind}")
        if (
            model_selector is not None
            and selection_strategy is not None
            and model_selector.strategy != selection_strategy
        ):
            raise ValueError(
                f"selection_strategy={selection_strategy!r} conflicts with "
                f"model_selector={model_selector!r}; pass one of them"
            )
        if selection_strategy is not None and not isinstance(selection_strategy, str):
            raise TypeError(f"invalid selection_strategy: {selection_strategy!r}")
        selector = model_selector or selector_for(selection_strategy or "ucb")
        if (
            not isinstance(health_check_interval, (int, float))
            or isinstance(health_check_interval, bool)
            or not 0 < health_check_interval < float("inf")
        ):
            raise ValueError(
                f"invalid health_check_interval: {health_check_interval!r} (seconds, > 0)"
            )
        self._core = _core.SelectionCore()
        self._selector = selector
        self._custom = selector.strategy is None
        if not self._custom:
            self._core.configure_strategy(**selector.core_config())
            seed = getattr(selector, "seed", None)
            if seed is not None:
                self._core.seed(seed)
        weights = reward_weights or RewardWeights()
        if not isinstance(weights, RewardWeights):
            raise TypeError(f"invalid reward_weights: expected RewardWeights, got {weights!r}")
        self._core.configure_reward(**weights.__dict__)
        self._core.set_pending_timeout(pending_timeout)
        self.reward_weights = weights
        self.health_check_interval = float(health_check_interval)
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()  # registration only; never on the selection path
        self._cache = self._make_cache(cache_responses)
        self.health_monitor = self._attach_monitor(health_monitor)
        self._shared = self._connect_state(state, state_namespace, sync_interval)

    @classmethod
    def from_config(cls, path: Union[str, os.PathLike[str]]) -> ModelRegistry:
        """Build a registry, with its models, from a TOML configuration file
        (see :mod:`orchestrator.config`)."""
        from orchestrator.config import registry_from_config

        return registry_from_config(path)

    # ----- configuration ------------------------------------------------------

    @staticmethod
    def _make_cache(cache_responses: Union[bool, ModelCache]) -> Optional[ModelCache]:
        if cache_responses is False or cache_responses is None:
            return None
        from orchestrator.core.cache import ModelCache

        if cache_responses is True:
            return ModelCache()
        if isinstance(cache_responses, ModelCache):
            return cache_responses
        raise TypeError(
            f"invalid cache_responses: expected bool or ModelCache, got {cache_responses!r}"
        )

    def _attach_monitor(self, monitor: Optional[ModelHealthMonitor]) -> ModelHealthMonitor:
        from orchestrator.models.health_monitor import ModelHealthMonitor

        if monitor is None:
            monitor = ModelHealthMonitor(check_interval=self.health_check_interval)
        elif not isinstance(monitor, ModelHealthMonitor):
            raise TypeError(
                f"invalid health_monitor: expected ModelHealthMonitor, got {type(monitor).__name__}"
            )
        monitor.attach(self)
        return monitor

    def _connect_state(
        self, state: str, namespace: str, sync_interval: float
    ) -> Optional[SharedState]:
        if state == "local":
            return None
        from orchestrator.models.shared_state import SharedState, check_url

        if not isinstance(state, str):
            raise TypeError(f'invalid state: {state!r}; use "local" or a Redis URL')
        check_url(state)

        return SharedState(self, state, namespace=namespace, sync_interval=sync_interval)

    @property
    def shared_state(self) -> Optional[SharedState]:
        """The Redis-backed shared state, when ``state`` is a Redis URL."""
        return self._shared

    def _transition(self, model: Model, state: str) -> None:
        """One breaker transition: tell the monitor and the other workers."""
        self.health_monitor.transition(model, state)
        if self._shared is not None:
            self._shared.publish_transition(model, state)

    def seed(self, seed: int) -> None:
        """Seed the random draws of sampling strategies (Thompson), for
        reproducible runs."""
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"invalid seed: {seed!r} (an integer >= 0)")
        self._core.seed(seed)

    @property
    def model_selector(self) -> ModelSelector:
        return self._selector

    @property
    def strategy(self) -> str:
        return self._selector.strategy or type(self._selector).__name__

    @property
    def cache(self) -> Optional[ModelCache]:
        return self._cache

    # ----- registration -------------------------------------------------------

    def register_model(self, model: Model) -> Model:
        """Register ``model``; a second model with the same name is an error."""
        if not isinstance(model, Model):
            raise TypeError(f"invalid model: expected a Model, got {type(model).__name__}")
        caps = model.capabilities
        cost = model.cost
        with self._lock:
            if model.name in self._models:
                raise DuplicateModelError(f"a model named {model.name!r} is already registered")
            try:
                slot = self._core.register(
                    model,
                    model.name,
                    model.provider,
                    caps.names(),
                    caps.context_length,
                    cost.input_per_million if cost else 0.0,
                    cost.output_per_million if cost else 0.0,
                    cost.per_request if cost else 0.0,
                    cost is not None,
                    model.speed,
                )
            except ValueError as exc:
                raise ValueError(f"cannot register {model.name!r}: {exc}") from None
            self._models[model.name] = model
            model._bindings.append(Binding(self, self._core, slot))
        if self._shared is not None:
            self._shared.model_added(model)
        if self._cache is not None and model.cache is None:
            model.enable_caching(self._cache)
        return model

    def update_model(self, model: Model) -> None:
        """Push a registered model's changed capabilities, cost or speed to the core."""
        binding = self._binding(model)
        caps, cost = model.capabilities, model.cost
        self._core.update(
            binding.slot,
            model.name,
            model.provider,
            caps.names(),
            caps.context_length,
            cost.input_per_million if cost else 0.0,
            cost.output_per_million if cost else 0.0,
            cost.per_request if cost else 0.0,
            cost is not None,
            model.speed,
        )

    def unregister_model(self, name: str) -> Model:
        """Remove a model; its statistics are dropped."""
        with self._lock:
            model = self.get_model(name)
            self._core.unregister(name)
            del self._models[name]
            model._bindings = [b for b in model._bindings if b.registry is not self]
        if self._shared is not None:
            self._shared.model_removed(name)
        return model

    def get_model(self, name: str) -> Model:
        try:
            return self._models[name]
        except KeyError:
            raise ModelNotFoundError(name, list(self._models)) from None
        except TypeError:
            raise TypeError(f"invalid name: {name!r} (a string is required)") from None

    def list_models(
        self,
        provider: Optional[str] = None,
        capabilities: Optional[Sequence[str]] = None,
    ) -> list[Model]:
        """Registered models, optionally only one provider's or those with
        every listed capability."""
        wanted = check_capability_names(capabilities or [])
        return [
            m
            for m in self._models.values()
            if (provider is None or m.provider == provider)
            and all(getattr(m.capabilities, c) for c in wanted)
        ]

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[Model]:
        return iter(list(self._models.values()))

    def _binding(self, model: Model) -> Binding:
        for b in model._bindings:
            if b.registry is self:
                return b
        raise ModelNotFoundError(model.name, list(self._models))

    # ----- selection ----------------------------------------------------------

    def select_model(
        self,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        constraints: Optional[ModelConstraints] = None,
    ) -> Model:
        """The best registered model for a request.

        Args:
            capabilities: capability names the model must have
                (see :class:`~orchestrator.core.model.ModelCapabilities`).
            max_cost: most USD one request may cost, priced from
                ``input_tokens``/``output_tokens``, or from 100 input and 100
                output tokens (a short chat turn) when they are not given;
                unpriced models are excluded.
            min_speed: least output tokens per second, observed, else declared.
            context_length: context window (tokens) the request needs.
            exclude_models: names never to choose (for example after a failure).
            constraints: all of the above as one :class:`ModelConstraints`.

        Raises:
            NoEligibleModelsError: naming, for every model, what excluded it.
        """
        if constraints is not None or self._custom:
            selection = self.select(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                constraints=constraints,
            )
            if selection.ticket:
                hold_ticket(self._core, selection.slot, selection.ticket)
            return selection.model
        # The hot path: one call into the core, nothing allocated but the ticket.
        model, slot, ticket = self._pick(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens,
            output_tokens,
        )
        hold_ticket(self._core, slot, ticket)
        return model

    def _pick(
        self,
        capabilities: Optional[Sequence[str]],
        max_cost: Optional[float],
        min_speed: Optional[float],
        context_length: Optional[int],
        exclude_models: Optional[Sequence[str]],
        input_tokens: Optional[int],
        output_tokens: Optional[int],
    ) -> tuple[Model, int, int]:
        """The core's choice for a request, as ``(model, slot, ticket)``;
        raises ``NoEligibleModelsError`` naming each model's reason."""
        try:
            picked = self._core.select(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens,
                output_tokens,
            )
        except TypeError as exc:
            raise _naming_the_field(exc, locals()) from None
        if picked is None:
            raise NoEligibleModelsError(
                self.explain_selection(
                    capabilities,
                    max_cost,
                    min_speed,
                    context_length,
                    exclude_models,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                )
            )
        model, slot, ticket, flags = picked
        if flags & 6:
            self.health_monitor.selected_open(model, all_open=bool(flags & 2))
        return model, slot, ticket

    def select(
        self,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        constraints: Optional[ModelConstraints] = None,
    ) -> Selection:
        """Like :meth:`select_model`, returning the model with its ticket, for
        callers that report outcomes themselves (:meth:`report_outcome`).
        Calls of the model do not consume this ticket."""
        if constraints is not None:
            return self.select(**constraints.model_dump(exclude_defaults=True))
        if self._custom:
            return self._select_custom(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens,
                output_tokens,
            )
        model, slot, ticket = self._pick(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens,
            output_tokens,
        )
        return Selection(model, ticket, slot)

    def _select_custom(
        self,
        capabilities: Optional[Sequence[str]],
        max_cost: Optional[float],
        min_speed: Optional[float],
        context_length: Optional[int],
        exclude_models: Optional[Sequence[str]],
        input_tokens: Optional[int],
        output_tokens: Optional[int],
    ) -> Selection:
        explanation = self.explain_selection(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        eligible = [self._models[c.name] for c in explanation.candidates if c.eligible]
        if not eligible:
            raise NoEligibleModelsError(explanation)
        model = self._selector.choose(eligible, explanation.constraints, self)
        if model not in eligible:
            raise ValueError(
                f"{type(self._selector).__name__}.choose returned {model!r}, "
                "which is not one of the eligible candidates"
            )
        binding = self._binding(model)
        return Selection(model, 0, binding.slot)

    def select_many(
        self,
        count: int,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> list[Selection]:
        """Select for ``count`` requests at once in one core call; each
        selection counts the earlier ones as in flight. Report the outcomes
        with :meth:`report_many`."""
        if self._custom:
            raise NotImplementedError("select_many needs a built-in selector")
        picked = self._core.select_many(
            count,
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens,
            output_tokens,
        )
        return [Selection(model, ticket, slot) for model, slot, ticket in picked]

    def explain_selection(
        self,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> SelectionExplanation:
        """Every candidate's verdict for a request, and the model that
        :meth:`select_model` would choose, without selecting it."""
        constraints = ModelConstraints(
            capabilities=list(capabilities or []),
            max_cost=max_cost,
            min_speed=min_speed,
            context_length=context_length,
            exclude_models=list(exclude_models or []),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        rows, chosen_slot, all_open = self._core.explain(**constraints.core_kwargs())
        candidates = []
        chosen = None
        for row in rows:
            slot = row.pop("slot")
            model: Model = self._core.model(slot)
            if slot == chosen_slot:
                chosen = model.name
            candidates.append(CandidateExplanation(name=model.name, provider=model.provider, **row))
        return SelectionExplanation(
            strategy=self.strategy,
            constraints=constraints,
            chosen=chosen if not self._custom else None,
            candidates=candidates,
            all_breakers_open=all_open,
        )

    # ----- outcomes -----------------------------------------------------------

    def report_outcome(
        self,
        selection: Union[Selection, str],
        success: bool,
        latency: float,
        *,
        error_class: str = "none",
        time_to_first_token: Optional[float] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Optional[float] = None,
        quality: Optional[float] = None,
        retry_after: float = 0.0,
    ) -> None:
        """Report an outcome for a :class:`Selection` (or a model name, for a
        call that was not selected). Model calls report themselves; use this
        when you call the provider yourself. ``cost`` defaults to the model's
        price for the token counts."""
        if type(selection) is Selection:
            model, ticket, slot = selection
        else:
            model, ticket = self.get_model(selection), 0  # type: ignore[arg-type]
            slot = self._binding(model).slot
        code = ERROR_CLASS_INDEX.get(error_class)
        if code is None:
            raise ValueError(
                f"invalid error_class: {error_class!r}; known: {', '.join(ERROR_CLASS_INDEX)}"
            )
        if not success and code == 0:
            code = ERROR_CLASS_INDEX["other"]
        try:
            transition = self._core.report(
                slot,
                ticket,
                bool(success),
                code,
                latency,
                time_to_first_token,
                input_tokens,
                output_tokens,
                cost,
                quality,
                None,
                retry_after,
            )
        except TypeError as exc:
            raise _naming_the_field(exc, locals()) from None
        if not success:
            self.health_monitor.record_failure(model, None, retry_after)
        if transition:
            self._transition(model, TRANSITIONS[transition])

    def cancel(self, selection: Selection) -> None:
        """Release a selection that will get no outcome (for example, the
        answer came from a cache), so it stops counting as in flight."""
        self._core.cancel(selection.slot, selection.ticket)

    def report_many(
        self,
        selections: Sequence[Selection],
        successes: Sequence[bool],
        latencies: Sequence[float],
        *,
        error_classes: Optional[Sequence[str]] = None,
        input_tokens: Optional[Sequence[int]] = None,
        output_tokens: Optional[Sequence[int]] = None,
        costs: Optional[Sequence[float]] = None,
        qualities: Optional[Sequence[float]] = None,
    ) -> None:
        """Report many outcomes in one core call. All are validated before
        any is applied, so a bad value changes nothing."""
        classes = None
        if error_classes is not None:
            try:
                classes = [ERROR_CLASS_INDEX[c] for c in error_classes]
            except KeyError as exc:
                raise ValueError(
                    f"invalid error_classes: {exc.args[0]!r}; known: {', '.join(ERROR_CLASS_INDEX)}"
                ) from None
        codes = self._core.report_many(
            [s.slot for s in selections],
            [s.ticket for s in selections],
            [bool(x) for x in successes],
            [float(x) for x in latencies],
            classes,
            None if input_tokens is None else [int(x) for x in input_tokens],
            None if output_tokens is None else [int(x) for x in output_tokens],
            None if costs is None else [float(x) for x in costs],
            None if qualities is None else [float(x) for x in qualities],
        )
        for selection, code in zip(selections, codes):
            if code:
                self._transition(selection.model, TRANSITIONS[code])

    def _record_outcome(
        self,
        model: Model,
        binding: Binding,
        ticket: int,
        *,
        success: bool,
        error_class: int,
        latency: float,
        time_to_first_token: Optional[float],
        input_tokens: int,
        output_tokens: int,
        cost: float,
        quality: Optional[float],
        retry_after: float,
        error: Optional[BaseException],
    ) -> None:
        """Fold a model call's outcome into the core. A call whose ticket
        expired while it ran still counts (without the ticket)."""
        args = (
            success,
            error_class,
            latency,
            time_to_first_token,
            input_tokens,
            output_tokens,
            cost,
            quality,
            None,
            retry_after,
        )
        try:
            code = self._core.report(binding.slot, ticket, *args)
        except ValueError as exc:
            if not ticket or "ticket" not in str(exc):
                raise
            # The ticket expired while the call ran: still count the outcome.
            code = self._core.report(binding.slot, 0, *args)
        if not success:
            self.health_monitor.record_failure(model, error, retry_after)
        if code:
            self._transition(model, TRANSITIONS[code])

    # ----- reading ------------------------------------------------------------

    def get_metrics(self, name: str) -> ModelMetrics:
        """What this registry observed of a model."""
        model = self.get_model(name)
        return ModelMetrics.from_snapshot(self._core.snapshot(self._binding(model).slot))

    def statistics(self) -> dict[str, Any]:
        """Every model's statistics as numpy arrays, one per column, aligned
        with the ``"name"`` list; unknown values are NaN."""
        raw, rows, columns = self._core.stats_matrix()
        matrix = np.frombuffer(raw, dtype="<f8").reshape(rows, len(columns))
        names = self._slot_names(rows)
        active = matrix[:, 0] == 1.0
        out: dict[str, Any] = {"name": [n for n, a in zip(names, active) if a]}
        for i, column in enumerate(columns[1:], start=1):
            out[column] = matrix[active, i].copy()
        return out

    def scores(
        self,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
    ) -> tuple[list[str], npt.NDArray[np.float64]]:
        """Every model's current score for a request as a numpy array
        (``-inf`` where the model is not eligible), with the names."""
        raw = self._core.scores(capabilities, max_cost, min_speed, context_length, exclude_models)
        values = np.frombuffer(raw, dtype="<f8")
        names = self._slot_names(len(values))
        keep = [i for i, n in enumerate(names) if n is not None]
        return [names[i] for i in keep], values[keep].copy()  # type: ignore[misc]

    def _slot_names(self, rows: int) -> list[Optional[str]]:
        names: list[Optional[str]] = [None] * rows
        for model in self._models.values():
            slot = self._binding(model).slot
            if slot < rows:
                names[slot] = model.name
        return names

    # ----- health -------------------------------------------------------------

    async def get_model_health(self, name: str) -> HealthStatus:
        """The health of a registered model (see ``ModelHealthMonitor``)."""
        return await self.health_monitor.get_status(self.get_model(name))

    @staticmethod
    def capability_names() -> tuple[str, ...]:
        return CAPABILITY_NAMES

    # ----- lifecycle and failover ---------------------------------------------

    async def start(self) -> None:
        """Start the health monitor's background checks."""
        await self.health_monitor.start()

    def close(self) -> None:
        """Flush and stop the shared-state sync, if any (blocks up to about a
        second). Use :meth:`aclose` from async code."""
        if self._shared is not None:
            self._shared.close()

    async def aclose(self) -> None:
        """Stop the health monitor and the shared-state sync; no task or
        thread of this registry keeps running."""
        await self.health_monitor.stop()
        if self._shared is not None:
            await asyncio.to_thread(self._shared.close)

    async def __aenter__(self) -> ModelRegistry:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def generate(
        self,
        prompt: Prompt,
        *,
        retry_budget: int = 2,
        deadline: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        **kwargs: Any,
    ) -> GenerationResult:
        """Select a model and call it; on a retryable failure try the
        next-best eligible model (each at most once), up to ``retry_budget``
        retries and within ``deadline`` seconds in total (``attempt_timeout``
        caps each try). Keyword arguments of :meth:`select_model` constrain
        selection; the rest go to ``generate_response``. A non-retryable error
        is raised at once, with ``.attempts``; giving up raises
        :class:`~orchestrator.models.failover.FailoverError`."""
        from orchestrator.models import failover

        return await failover.generate(
            self,
            prompt,
            retry_budget=retry_budget,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            **kwargs,
        )

    def stream(
        self,
        prompt: Prompt,
        *,
        retry_budget: int = 2,
        deadline: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        **kwargs: Any,
    ) -> FailoverStream:
        """Like :meth:`generate`, as an async iterator of text chunks; fails
        over only until the first chunk has reached the caller."""
        from orchestrator.models import failover

        return failover.stream(
            self,
            prompt,
            retry_budget=retry_budget,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            **kwargs,
        )
