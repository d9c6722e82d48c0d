"""The model registry: registration, selection and learning.

``select_model`` crosses into the Rust core once: the core filters every
registered model by the request's constraints and scores the eligible ones
(UCB, Thompson, cost, performance, or the contextual router's prediction for
the prompt) in one pass, marks the winner pending under a ticket, and returns
the model object. When the model is then called, the measured outcome is
reported back under that ticket, so each outcome is counted exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import numpy as np
import numpy.typing as npt

from orchestrator import _core
from orchestrator.config import RegistryParts, load_config, registry_parts
from orchestrator.core.budgets import BudgetPeriod, BudgetScope, BudgetState
from orchestrator.core.cache import ModelCache
from orchestrator.core.model import (
    CAPABILITY_NAMES,
    Binding,
    Model,
    ModelConstraints,
    ModelMetrics,
    Prompt,
    Usage,
    check_capability_names,
)
from orchestrator.errors import (
    AmbiguousModelError,
    DuplicateModelError,
    ModelNotFoundError,
    NoEligibleModelsError,
    StaleTicketError,
    UnknownRequestError,
)
from orchestrator.models import failover
from orchestrator.models.explanation import (
    CandidateExplanation,
    SelectionExplanation,
    explanation_of,
)
from orchestrator.models.fallbacks import check_chain, check_name
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.selectors import (
    SELECTORS,
    ContextualSelector,
    CoreSelector,
    CostBasedSelector,
    ModelSelector,
    PerformanceSelector,
    RewardWeights,
    ThompsonSelector,
    UCBModelSelector,
    calibration_table,
    selector_for,
)
from orchestrator.models.shared_budgets import current_periods
from orchestrator.models.shared_state import SharedState, check_url

if TYPE_CHECKING:
    from orchestrator.models.failover import FailoverStream, GenerationResult
    from orchestrator.models.health_monitor import HealthStatus

logger = logging.getLogger(__name__)

__all__ = [
    "SELECTORS",
    "CandidateExplanation",
    "ContextualSelector",
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
    "UnknownRequestError",
    "selector_for",
]

Embedding = npt.NDArray[np.float32]
"""A caller's dense embedding of the prompt: a 1-D float32 array of
``ContextualSelector.embedding_dim`` finite values."""


class Selection(NamedTuple):
    """A selected model and the ticket its outcome must be reported under
    (a tuple: it is built on every selection). ``request_id``: under the
    contextual strategy, the id its quality feedback is reported under
    (:meth:`ModelRegistry.report_quality`); ``None`` otherwise."""

    model: Model
    ticket: int
    slot: int
    request_id: Optional[int] = None


class ModelRegistry:
    """Registered models and the selector that picks among them.

    Args:
        selection_strategy: ``"ucb"`` (default), ``"discounted_ucb"``,
            ``"thompson"``, ``"discounted_thompson"``, ``"cost"``,
            ``"performance"`` or ``"contextual"`` (prompt-aware routing:
            :class:`ContextualSelector`).
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
        state_spool_dir: where the shared state spools outcomes while Redis is
            unreachable (``SharedState(spool_dir=...)``); ``None``: its default.
        session_ttl: seconds a ``session_id`` stays bound to its model without
            a selection (default 3600; finite, > 0, at most 30 days).
        max_sessions: sessions held at most (default 100,000; 1 to 10**7);
            beyond it the least recently used is forgotten.
        max_waiting: requests ``generate``/``stream`` keep waiting for a
            rate-limit slot at most (default 1,024; 0 to 10**6, 0: never
            wait); beyond it a request fails at once with its ``retry_in``.
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
        state_spool_dir: Optional[str] = None,
        session_ttl: float = _core.DEFAULT_SESSION_TTL_S,
        max_sessions: int = _core.DEFAULT_MAX_SESSIONS,
        max_waiting: int = failover.DEFAULT_MAX_WAITING,
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
        selector.configure(self._core)
        self._core.set_listener(self)
        weights = reward_weights or RewardWeights()
        if not isinstance(weights, RewardWeights):
            raise TypeError(f"invalid reward_weights: expected RewardWeights, got {weights!r}")
        self._core.configure_reward(**weights.__dict__)
        self._core.set_pending_timeout(pending_timeout)
        self._core.configure_sessions(session_ttl, max_sessions)
        self.slot_waiters = failover.SlotWaiters(max_waiting)
        self.session_ttl = float(session_ttl)
        self.max_sessions = int(max_sessions)
        self.reward_weights = weights
        self.health_check_interval = float(health_check_interval)
        # Replaced, never mutated, under ``_lock``: readers iterate a snapshot.
        self._models: dict[str, Model] = {}
        self._fallbacks: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()  # registration only; never on the selection path
        self._cache = self._make_cache(cache_responses)
        self.health_monitor = self._attach_monitor(health_monitor)
        self._shared = self._connect_state(state, state_namespace, sync_interval, state_spool_dir)
        if not self._custom:
            # The hot path: the core's method itself, with the same signature
            # and rules as the method below (one crossing, no Python frame).
            self.select_model = self._core.select_model  # type: ignore[method-assign]

    @classmethod
    def from_config(cls, path: Union[str, os.PathLike[str]]) -> ModelRegistry:
        """Build a registry, with its models, from a TOML configuration file
        (see :mod:`orchestrator.config`)."""
        return cls.from_parts(registry_parts(load_config(path)))

    @classmethod
    def from_parts(cls, parts: RegistryParts) -> ModelRegistry:
        """A registry with the settings and models a validated configuration
        built (:func:`orchestrator.config.registry_parts`)."""
        registry = cls(**parts.registry_kwargs())
        for model in parts.models:
            registry.register_model(model)
        for name, chain in parts.fallbacks.items():
            registry.set_fallbacks(name, chain)
        for alias, members in parts.aliases.items():
            registry.add_alias(alias, members)
        for budget in parts.budgets:
            registry.add_budget(
                budget.scope(), budget.limit_usd, budget.checked_period, name=budget.name
            )
        return registry

    # ----- configuration ------------------------------------------------------

    @staticmethod
    def _make_cache(cache_responses: Union[bool, ModelCache]) -> Optional[ModelCache]:
        if cache_responses is False or cache_responses is None:
            return None
        if cache_responses is True:
            return ModelCache()
        if isinstance(cache_responses, ModelCache):
            return cache_responses
        raise TypeError(
            f"invalid cache_responses: expected bool or ModelCache, got {cache_responses!r}"
        )

    def _attach_monitor(self, monitor: Optional[ModelHealthMonitor]) -> ModelHealthMonitor:
        if monitor is None:
            monitor = ModelHealthMonitor(check_interval=self.health_check_interval)
        elif not isinstance(monitor, ModelHealthMonitor):
            raise TypeError(
                f"invalid health_monitor: expected ModelHealthMonitor, got {type(monitor).__name__}"
            )
        monitor.attach(self)
        return monitor

    def _connect_state(
        self, state: str, namespace: str, sync_interval: float, spool_dir: Optional[str]
    ) -> Optional[SharedState]:
        if state == "local":
            if spool_dir is not None:
                raise ValueError(
                    f'invalid state_spool_dir: {spool_dir!r} (only with a Redis state, not "local")'
                )
            return None
        if not isinstance(state, str):
            raise TypeError(f'invalid state: {state!r}; use "local" or a Redis URL')
        check_url(state)
        return SharedState(
            self, state, namespace=namespace, sync_interval=sync_interval, spool_dir=spool_dir
        )

    @property
    def core(self) -> _core.SelectionCore:
        """The Rust selection core of this registry: the public interface the
        health monitor, shared state and simulator drive (breakers, clock,
        deltas). Selection and reporting go through the registry."""
        return self._core

    @property
    def shared_state(self) -> Optional[SharedState]:
        """The Redis-backed shared state, when ``state`` is a Redis URL."""
        return self._shared

    def _transition(self, model: Model, state: str) -> None:
        """One breaker transition: tell the monitor and the other workers."""
        self.health_monitor.transition(model, state)
        if self._shared is not None:
            self._shared.publish_transition(model, state)

    def _on_probe(self, model: Model, all_open: bool) -> None:
        """The core sent a probe to a half-open model (called by the core
        after its lock is released)."""
        self.health_monitor.selected_open(model, all_open=all_open)

    def _no_eligible_error(
        self, core_explanation: _core.Explanation, request: _core.Request
    ) -> NoEligibleModelsError:
        """The error for a request no model satisfies, explained from the
        snapshot of the failed selection (called by the core after its lock
        is released)."""
        return NoEligibleModelsError(
            explanation_of(core_explanation, self.strategy, request, not self._custom)
        )

    def seed(self, seed: int) -> None:
        """Seed the random draws of sampling strategies (Thompson), for
        reproducible runs (an integer from 0 to 2**64 - 1)."""
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
        """Register ``model``; a second model with the same name (for a
        deployment, ``"<model>@<deployment>"``), or a name that is a routing
        alias, is a :class:`DuplicateModelError`."""
        if not isinstance(model, Model):
            raise TypeError(f"invalid model: expected a Model, got {type(model).__name__}")
        with self._lock:
            if model.name in self._models:
                raise DuplicateModelError(f"a model named {model.name!r} is already registered")
            try:
                slot = self._core.register(model, *self._spec(model))
            except DuplicateModelError:
                raise
            except ValueError as exc:
                raise ValueError(f"cannot register {model.name!r}: {exc}") from None
            self._models = {**self._models, model.name: model}
            model._bindings = [*model._bindings, Binding(self, self._core, slot)]
        if self._shared is not None:
            self._shared.model_added(model)
        if self._cache is not None and model.cache is None:
            model.enable_caching(self._cache)
        return model

    @staticmethod
    def _spec(model: Model) -> tuple[Any, ...]:
        """What the core is told about a model, in ``register``'s order."""
        caps, cost = model.capabilities, model.cost
        return (
            model.model_name,
            model.provider,
            caps.names(),
            caps.context_length,
            cost.input_per_million if cost else 0.0,
            cost.output_per_million if cost else 0.0,
            cost.per_request if cost else 0.0,
            cost is not None,
            model.speed,
            model.rpm,
            model.tpm,
            model.tags,
            model.deployment,
        )

    def update_model(self, model: Model) -> None:
        """Push a registered model's changed capabilities, cost, speed or
        rate limits to the core (and, with a shared state, share new limits)."""
        self._core.update(self._binding(model).slot, *self._spec(model))
        if self._shared is not None:
            self._shared.model_updated(model)

    def unregister_model(self, name: str) -> Model:
        """Remove a model (named as :meth:`get_model` finds it); its
        statistics are dropped, its outstanding selections here are released
        and it drops out of every routing alias."""
        with self._lock:
            model = self.get_model(name)
            self._core.unregister(model.name)
            self._models = {n: m for n, m in self._models.items() if m is not model}
            model._bindings = [b for b in model._bindings if b.sink is not self]
        if self._shared is not None:
            self._shared.model_removed(model.name)
        return model

    def get_model(self, name: str) -> Model:
        """The model registered as ``name``. A deployment's name is
        ``"<model>@<deployment>"``; a logical model's name finds its only
        deployment, and one with several deployments is an
        :class:`AmbiguousModelError` listing them (see :meth:`deployments`)."""
        # Checked first: a hashable non-string (5) would reach the close-name
        # search of ModelNotFoundError and fail there, naming nothing.
        if not isinstance(name, str):
            raise TypeError(f"invalid name: {name!r} (a string is required)")
        models = self._models
        model = models.get(name)
        if model is not None:
            return model
        deployments = [m for m in models.values() if m.model_name == name]
        if len(deployments) == 1:
            return deployments[0]
        if deployments:
            raise AmbiguousModelError(name, [m.name for m in deployments])
        raise ModelNotFoundError(name, list(models))

    def deployments(self, name: str) -> list[Model]:
        """Every registered deployment of the logical model ``name`` (a
        model registered without a deployment is its own only one), in
        registration order; empty when there is none."""
        if not isinstance(name, str):
            raise TypeError(f"invalid name: {name!r} (a string is required)")
        return [m for m in self._models.values() if m.model_name == name]

    # ----- routing aliases ----------------------------------------------------

    def add_alias(self, name: str, members: Sequence[str]) -> None:
        """Add the routing alias ``name`` for ``members``: logical model
        names (every deployment of the model, including later ones) or
        registered names (``"gpt-4o@azure-eu"``). ``select_model(alias=name)``
        then chooses among them. Aliases and models share one namespace (a
        clash is :class:`DuplicateModelError`); an unknown member is
        :class:`ModelNotFoundError`; an unregistered model drops out."""
        if isinstance(members, (str, bytes)):
            raise TypeError(f"invalid members: {members!r} (a list of model names, not a string)")
        try:
            members = list(members)  # read once, before any lock: it may be a generator
        except TypeError:
            raise TypeError(f"invalid members: {members!r} (a list of model names)") from None
        with self._lock:
            aliases = self.aliases()
            for member in members:
                if isinstance(member, str) and not (
                    member in self._models or member in aliases or self.deployments(member)
                ):
                    raise ModelNotFoundError(member, list(self._models))
            self._core.add_alias(name, members)  # checks the rest (types, aliases, clashes)

    def remove_alias(self, name: str) -> list[str]:
        """Remove the routing alias ``name``; returns its members (``KeyError``
        when there is no such alias)."""
        with self._lock:
            return self._core.remove_alias(name)

    def aliases(self) -> dict[str, list[str]]:
        """Every routing alias and its members (as given, less those that
        were unregistered), by alias name."""
        return dict(self._core.aliases())

    def alias_members(self, name: str) -> list[str]:
        """The registered models an alias (or a logical model's name) stands
        for now, in registration-slot order."""
        members = self._core.group_members(name)
        if members is None:
            raise ValueError(f"invalid alias: no routing alias or model named {name!r}")
        return members

    def list_models(
        self,
        provider: Optional[str] = None,
        capabilities: Optional[Sequence[str]] = None,
    ) -> list[Model]:
        """Registered models, optionally only one provider's or those with
        every listed capability."""
        wanted = check_capability_names(capabilities or [])
        if provider is not None and not isinstance(provider, str):
            raise TypeError(f"invalid provider: {provider!r} (a string or None)")
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
            if b.sink is self:
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
        prompt: Optional[Prompt] = None,
        embedding: Optional[Embedding] = None,
        willingness_to_pay: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        session_id: Optional[str] = None,
        alias: Optional[str] = None,
        tenant: Optional[str] = None,
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
            input_tokens, output_tokens: the request's size, for pricing and
                rate-limit reservations; with ``input_tokens`` given, a model
                whose known context window cannot hold them (plus the
                ``output_tokens`` given) is not eligible.
            exclude_models: names never to choose (for example after a failure).
            constraints: all of the above as one :class:`ModelConstraints`.
            prompt: the request's text or chat messages (their ``content``
                joined by newlines; the first ``MAX_ROUTED_PROMPT_BYTES``,
                64 KiB, are read). The contextual strategy predicts each
                model's quality for it; without a prompt it uses each model's
                prompt-independent mean quality. Other strategies validate
                it and do not change their pick.
            embedding: a 1-D float32 array of the prompt's embedding
                (``ContextualSelector.embedding_dim`` finite values).
            willingness_to_pay: USD the caller would pay for +1.0 of expected
                quality (finite, > 0; default the selector's,
                ``DEFAULT_WILLINGNESS_TO_PAY`` = 1.0): the contextual strategy
                maximises quality − expected cost / willingness_to_pay among
                the models ``max_cost`` and the other constraints allow.
            tags: tags the model must all have (``Model(tags=...)``); a tag no
                registered model has leaves no model eligible.
            session_id: a conversation's id (a ``str`` of 1 to 256 bytes, no
                control characters): the request goes to the model the
                session is bound to while that model passes every check
                above (breaker, rate limits, constraints); otherwise the
                pick is fresh and the session is bound to it. Sessions
                expire after ``session_ttl`` idle seconds; at most
                ``max_sessions`` are held (see "Session affinity" in the README).
            alias: choose only among a routing alias's members
                (:meth:`add_alias`), or among the deployments of the logical
                model of that name.
            tenant: whose spend budgets apply besides the models' own (see
                :meth:`add_budget`).

        Raises:
            NoEligibleModelsError: naming, for every model, what excluded it.
            TypeError, ValueError: an argument of the wrong type or range,
                naming it (the same rules at every entry point).
        """
        if self._custom:
            return self.select(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                constraints=constraints,
                prompt=prompt,
                embedding=embedding,
                willingness_to_pay=willingness_to_pay,
                tags=tags,
                session_id=session_id,
                alias=alias,
                tenant=tenant,
            ).model
        # One call into the core, which converts the arguments, selects and
        # holds the ticket for this task (built-in selectors bind the core's
        # method directly in __init__, skipping even this frame).
        model: Model = self._core.select_model(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            constraints=constraints,
            prompt=prompt,
            embedding=embedding,
            willingness_to_pay=willingness_to_pay,
            tags=tags,
            session_id=session_id,
            alias=alias,
            tenant=tenant,
        )
        return model

    def select_for_call(
        self,
        constraints: ModelConstraints,
        prompt: Optional[Prompt] = None,
        *,
        embedding: Optional[Embedding] = None,
        willingness_to_pay: Optional[float] = None,
    ) -> tuple[Model, Optional[int]]:
        """:meth:`select_model` for a call made next in this task (what
        :meth:`generate` and :meth:`stream` use): the model, with its ticket
        held for that call, and the contextual decision's request id
        (``None`` under other strategies)."""
        if self._custom:
            model = self.select_model(
                constraints=constraints,
                prompt=prompt,
                embedding=embedding,
                willingness_to_pay=willingness_to_pay,
            )
            return model, None
        request = _request_of(constraints)
        model, request_id = self._core.select_held(
            request, prompt=prompt, embedding=embedding, willingness_to_pay=willingness_to_pay
        )
        return model, request_id

    def _request(
        self,
        capabilities: Optional[Sequence[str]],
        max_cost: Optional[float],
        min_speed: Optional[float],
        context_length: Optional[int],
        exclude_models: Optional[Sequence[str]],
        input_tokens: Optional[int],
        output_tokens: Optional[int],
        constraints: Optional[ModelConstraints] = None,
        *,
        tags: Optional[Sequence[str]] = None,
        session_id: Optional[str] = None,
        alias: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> _core.Request:
        """The core's typed request: every entry point converts through here
        (or, on the hot path, through the same conversion inside the core)."""
        if constraints is None:
            return _core.Request(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                tags=tags,
                session_id=session_id,
                alias=alias,
                tenant=tenant,
            )
        request = _request_of(constraints)
        given = (capabilities, max_cost, min_speed, context_length, exclude_models)
        extra = (input_tokens, output_tokens, tags, alias, session_id, tenant)
        if any(v is not None for v in (*given, *extra)):
            raise TypeError("pass either constraints or the individual keyword arguments")
        return request

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
        prompt: Optional[Prompt] = None,
        embedding: Optional[Embedding] = None,
        willingness_to_pay: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        session_id: Optional[str] = None,
        alias: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> Selection:
        """Like :meth:`select_model`, returning the model with its ticket (and,
        under the contextual strategy, the request id), for callers that
        report outcomes themselves (:meth:`report_outcome`). Calls of the
        model do not consume this ticket."""
        if self._custom:
            request = self._request(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens,
                output_tokens,
                constraints,
                tags=tags,
                alias=alias,
                session_id=session_id,
                tenant=tenant,
            )
            _core.check_routed_input(prompt, embedding, willingness_to_pay)
            return self._choose(request)
        model, slot, ticket, request_id = self._core.select(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            constraints=constraints,
            prompt=prompt,
            embedding=embedding,
            willingness_to_pay=willingness_to_pay,
            tags=tags,
            session_id=session_id,
            alias=alias,
            tenant=tenant,
        )
        return Selection(model, ticket, slot, request_id)

    def _choose(self, request: _core.Request) -> Selection:
        """A user-written selector's pick among the core's eligible models (a
        session's model, while the core keeps it); the request's session is
        then bound to the pick."""
        core_explanation = self._core.explain(request)
        explanation = explanation_of(core_explanation, self.strategy, request, False)
        eligible = [self._models[c.name] for c in explanation.candidates if c.eligible]
        if not eligible:
            raise NoEligibleModelsError(explanation)
        model = core_explanation.kept_model
        if model is None:
            model = self._selector.choose(eligible, explanation.constraints, self)
            if model not in eligible:
                raise ValueError(
                    f"{type(self._selector).__name__}.choose returned {model!r}, "
                    "which is not one of the eligible candidates"
                )
        slot = self._binding(model).slot
        self._core.bind_session(model, slot, request)
        return Selection(model, 0, slot)

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
        prompt: Optional[Prompt] = None,
        embedding: Optional[Embedding] = None,
        willingness_to_pay: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        session_id: Optional[str] = None,
        alias: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> list[Selection]:
        """Select for ``count`` requests at once (at most
        ``orchestrator._core.MAX_SELECT_MANY``, 10,000) in one core call; each
        selection counts the earlier ones as in flight (under the contextual
        strategy each is its own decision for ``prompt``, with its own request
        id). Report the outcomes with :meth:`report_many`.

        Raises:
            NoEligibleModelsError: no model satisfies the request.
            ValueError: ``count`` (named ``n``) is negative or above the maximum.
        """
        if self._custom:
            raise NotImplementedError("select_many needs a built-in selector")
        request = self._request(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens,
            output_tokens,
            tags=tags,
            session_id=session_id,
            alias=alias,
            tenant=tenant,
        )
        picked = self._core.select_many(
            count,
            request,
            prompt=prompt,
            embedding=embedding,
            willingness_to_pay=willingness_to_pay,
        )
        return [
            Selection(model, ticket, slot, request_id) for model, slot, ticket, request_id in picked
        ]

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
        prompt: Optional[Prompt] = None,
        embedding: Optional[Embedding] = None,
        willingness_to_pay: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        session_id: Optional[str] = None,
        alias: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> SelectionExplanation:
        """Every candidate's verdict for a request, and the model that
        :meth:`select_model` would choose, without selecting it: no ticket,
        no random draw (a Thompson explanation shows the draws the next
        selection will use), one consistent snapshot. Under the contextual
        strategy each eligible candidate shows its predicted quality for the
        prompt (``estimate``), its ``uncertainty``, the exploration rule's
        quality minus the cost penalty (``score``, what is maximised), the
        expected cost and the ``top_features`` that moved the prediction."""
        return self._explain(
            self._request(
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens,
                output_tokens,
                tags=tags,
                session_id=session_id,
                alias=alias,
                tenant=tenant,
            ),
            prompt=prompt,
            embedding=embedding,
            willingness_to_pay=willingness_to_pay,
        )

    def _explain(self, request: _core.Request, **routed: Any) -> SelectionExplanation:
        return explanation_of(
            self._core.explain(request, **routed), self.strategy, request, not self._custom
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
        price for the token counts; ``success`` must be a bool, numbers real
        and finite (a failure with ``error_class="none"`` counts as
        ``"other"``). Under the contextual strategy, a ``quality`` for a
        selection with a ``request_id`` also teaches the router (in the same
        step; without a quality the decision waits for
        :meth:`report_quality`).

        Raises:
            StaleTicketError: the selection was already reported, released,
                expired, or came from another registry.
            UnknownRequestError: the selection's request id no longer accepts
                feedback (nothing is counted).
        """
        request_id = 0
        if type(selection) is Selection:
            model, ticket, slot, given_id = selection
            request_id = given_id or 0
        else:
            model, slot, ticket = self._selected(selection)
        transition = self._core.report(
            model,
            slot,
            ticket,
            success,
            latency,
            error_class=error_class,
            time_to_first_token=time_to_first_token,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            quality=quality,
            retry_after=retry_after,
            request_id=request_id,
        )
        if transition is not None or not success:  # success is a bool: the core checked it
            self._counted(model, transition, success, retry_after or 0.0, None)

    def _selected(self, selection: Union[Selection, str]) -> tuple[Model, int, int]:
        """``(model, slot, ticket)`` of a selection of this registry, or of a
        registered model's name (no ticket)."""
        if isinstance(selection, Selection):
            model = selection.model
            binding = next((b for b in model._bindings if b.sink is self), None)
            if binding is None:  # unregistered since (a model of its name may be new)
                raise StaleTicketError(
                    f"the selection of {model.name!r} is stale: that model was unregistered"
                )
            if binding.slot != selection.slot:
                raise StaleTicketError(f"the selection of {model.name!r} is not from this registry")
            return model, selection.slot, selection.ticket
        if not isinstance(selection, str):
            raise TypeError(
                f"invalid selection: {selection!r} (a Selection or a registered model's name)"
            )
        model = self.get_model(selection)
        return model, self._binding(model).slot, 0

    def _counted(
        self,
        model: Model,
        transition: Optional[_core.Transition],
        success: bool,
        retry_after: float,
        error: Optional[BaseException],
    ) -> None:
        """After the core counted an outcome: tell the monitor and the other
        workers. A ``Retry-After`` beyond ``max_cooldown`` was capped by the
        core's breaker; say so."""
        if not success:
            cap = self.health_monitor.max_cooldown
            if retry_after > cap:
                logger.warning(
                    "%s asked to retry after %.0f s; capped at max_cooldown = %.0f s",
                    model.name,
                    retry_after,
                    cap,
                )
            self.health_monitor.record_failure(model, error, min(retry_after, cap))
        if transition is not None:
            self._transition(model, transition.state)

    def cancel(self, selection: Selection) -> None:
        """Release a selection that will get no outcome (for example, the
        answer came from a cache), so it stops counting as in flight."""
        _, slot, ticket = self._selected(selection)
        self._core.cancel(slot, ticket)

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
        """Report many outcomes in one core call, by the same rules as
        :meth:`report_outcome` (under the contextual strategy a selection's
        quality also teaches the router, closing its ``request_id``). All are
        validated before any is applied, so a bad value changes nothing."""
        if isinstance(selections, (str, bytes)) or not isinstance(selections, Sequence):
            raise TypeError(f"invalid selections: {selections!r} (a list of Selection)")
        for s in selections:
            if not isinstance(s, Selection):
                raise TypeError(f"invalid selections: {s!r} is not a Selection")
        picked = [self._selected(s) for s in selections]
        transitions = self._core.report_many(
            [slot for _, slot, _ in picked],
            [ticket for _, _, ticket in picked],
            successes,
            latencies,
            error_classes=error_classes,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            costs=costs,
            qualities=qualities,
            request_ids=[s.request_id or 0 for s in selections],
        )
        for (model, _, _), transition in zip(picked, transitions):
            if transition is not None:
                self._transition(model, transition.state)

    def report_quality(self, request_id: int, quality: float) -> str:
        """Delayed feedback for a contextual decision: its quality in [0, 1]
        (a user's thumbs-up, an LLM judge), reported under the
        ``request_id`` of its :class:`Selection` or
        :class:`~orchestrator.models.failover.GenerationResult`, within
        ``ContextualSelector.feedback_ttl_s``. Returns the model's name.

        Raises:
            UnknownRequestError: the id is unknown, already reported, was
                dropped for newer decisions, or expired.
            ValueError: the registry's strategy is not contextual, or
                ``quality`` is outside [0, 1].
        """
        return self._core.report_quality(request_id, quality)

    def calibrate(
        self,
        prompts: Sequence[Prompt],
        qualities: Mapping[str, Sequence[float]],
        costs: Optional[Mapping[str, float]] = None,
    ) -> None:
        """Fit the contextual router from an evaluation table (in Rust):
        ``qualities`` maps a registered model's name to one quality in
        [0, 1] per prompt; ``costs`` (name → USD per call) price models
        registered without a price. Online learning continues from the
        result; models registered later start at the prior.

        Raises:
            ModelNotFoundError: ``qualities`` or ``costs`` names a model that
                is not registered.
        """
        table = calibration_table(prompts, qualities, costs)
        names = [*table[1], *(table[2] or {})]
        for name in names:
            self.get_model(name)
        try:
            self._core.calibrate(*table)
        except KeyError:
            # Unregistered since the check (another thread, or a prompt's own
            # callback while the core read it): the documented error, by name.
            gone = next(name for name in names if name not in self._models)
            raise ModelNotFoundError(gone, list(self._models)) from None

    def router_state(self) -> bytes:
        """The contextual router's learned state, in the checksummed binary
        format documented in ``rust/orchestrator-core/src/contextual/persist.rs``
        (weights, featurizer version and settings, model names, counts)."""
        return self._core.router_state()

    def load_router_state(self, state: bytes) -> None:
        """Load :meth:`router_state` bytes: registered models found in the
        state keep what it learned, the others start at the prior; pending
        decisions are forgotten. A damaged state, another featurizer
        version or featurizer settings (``hash_bits``, n-grams,
        ``embedding_dim``) other than this registry's selector's is a
        ``ValueError`` and changes nothing."""
        self._core.load_router_state(state)

    def save_router(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write :meth:`router_state` to ``path``."""
        Path(path).write_bytes(self.router_state())

    def load_router(self, path: Union[str, os.PathLike[str]]) -> None:
        """Load a state written by :meth:`save_router`."""
        self.load_router_state(Path(path).read_bytes())

    # ----- the outcome sink of registered models ------------------------------

    def record(
        self,
        model: Model,
        slot: int,
        ticket: int,
        outcome: _core.Outcome,
        error: Optional[BaseException],
    ) -> None:
        """Count a measured call of ``model`` (see
        :class:`~orchestrator.core.model.OutcomeSink`). A call whose ticket
        expired while it ran still counts, without the ticket."""
        transition = self._core.record(slot, ticket, outcome)
        self._counted(model, transition, outcome.success, outcome.retry_after, error)

    def release(
        self, slot: int, ticket: int, sent: bool = False, usage: Optional[Usage] = None
    ) -> None:
        """Release a ticket for which no outcome is owed (see
        :class:`~orchestrator.core.model.OutcomeSink`)."""
        try:
            if usage is None:
                self._core.cancel(slot, ticket, sent)
            else:
                self._core.cancel(
                    slot,
                    ticket,
                    sent,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost=usage.cost,
                )
        except StaleTicketError:
            logger.debug("ticket %s had already expired", ticket)

    # ----- budgets ------------------------------------------------------------

    def add_budget(
        self,
        scope: BudgetScope,
        limit_usd: float,
        period: BudgetPeriod,
        *,
        name: Optional[str] = None,
    ) -> str:
        """Cap spend: at most ``limit_usd`` per calendar ``period`` (``"minute"``,
        ``"hour"``, ``"day"``, ``"month"``, UTC) for what ``scope`` covers. A
        request whose expected cost does not fit what is left is not eligible;
        every call path counts its cost. ``name`` defaults to
        ``"<scope> <value> <period>"``; returns it.

        Raises:
            TypeError, ValueError: a wrong type, a limit that is not a finite
                number above 0 (at most ``MAX_BUDGET_LIMIT_USD``), an unknown
                period, or a name already used, naming the field and value.
        """
        if not isinstance(scope, BudgetScope):
            raise TypeError(f"invalid scope: expected BudgetScope, got {scope!r}")
        label = f"{scope} {period}" if name is None else name
        self._core.add_budget(label, scope.kind, scope.value, limit_usd, period)
        if self._shared is not None:
            self._shared.budget_added(label)
        return label

    def remove_budget(self, name: str) -> None:
        """Remove a budget; calls already selected under it finish unaffected."""
        self._core.remove_budget(name)

    def budgets(self, fleet: bool = False) -> list[BudgetState]:
        """Every budget now, in the order added: spent, reserved, remaining,
        limit, period and when it resets, as this registry counts them.
        ``fleet=True`` (with ``state="redis://..."``) also reads the whole
        fleet's spend in each period from Redis (one round trip; a ``redis``
        error when it is down) into ``fleet_nanos``/``fleet_usd``; the read
        takes no lease (this registry leases as a worker of the fleet anyway)."""
        if not isinstance(fleet, bool):
            raise TypeError(f"invalid fleet: {fleet!r} (True or False)")
        raws = self._core.budgets()
        totals = (
            self._shared.fleet_budget_totals(current_periods(raws))
            if fleet and self._shared is not None
            else {}
        )
        return [BudgetState.of(raw, totals.get(raw["name"])) for raw in raws]

    # ----- reading ------------------------------------------------------------

    def rate_limits(self, name: str) -> dict[str, Any]:
        """A model's rate-limit window now: its ``rpm``/``tpm`` (``None``:
        unlimited), the ``requests``/``tokens`` reserved in the last minute,
        and what its provider's headers reported, as ``(remaining,
        resets_in)`` or ``None`` (``provider_requests``/``provider_tokens``)."""
        return self._core.rate_limits(self._binding(self.get_model(name)).slot)

    def get_metrics(self, name: str) -> ModelMetrics:
        """What this registry observed of a model (looked up and read in one
        step of the core, so a concurrent unregister is ModelNotFoundError)."""
        self.get_model(name)  # the name's type, and close names when unknown
        try:
            snapshot = self._core.snapshot_of(name)
        except KeyError:
            raise ModelNotFoundError(name, list(self._models)) from None
        return ModelMetrics.from_snapshot(snapshot)

    def statistics(self, scope: str = "local") -> dict[str, Any]:
        """Every model's statistics as numpy arrays, one per column, aligned
        with the ``"name"`` list; unknown values are NaN. One snapshot.
        ``scope="fleet"``: the totals of every worker sharing this registry's
        Redis state (:meth:`SharedState.fleet_statistics`)."""
        if scope == "fleet":
            if self._shared is None:
                raise ValueError(
                    'invalid scope: "fleet" needs a shared state (state="redis://..."); '
                    'this registry\'s state is "local"'
                )
            return self._shared.fleet_statistics()
        if scope != "local":
            raise ValueError(f'invalid scope: {scope!r} (use "local" or "fleet")')
        raw, names = self._core.stats_matrix()
        columns = _core.STATS_COLUMNS
        matrix = np.frombuffer(raw, dtype="<f8").reshape(len(names), len(columns))
        out: dict[str, Any] = {"name": names}
        for i, column in enumerate(columns[1:], start=1):
            out[column] = matrix[:, i].copy()
        return out

    def scores(
        self,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        prompt: Optional[Prompt] = None,
        embedding: Optional[Embedding] = None,
        willingness_to_pay: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        session_id: Optional[str] = None,
        alias: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> tuple[list[str], npt.NDArray[np.float64]]:
        """Every model's current score for a request as a numpy array
        (``-inf`` where the model is not eligible), with the names; one
        snapshot, changing nothing. Under the contextual strategy the score
        is the value the next selection maximises for ``prompt``. A
        ``session_id`` is checked like everywhere else; a session changes
        which model is taken (:meth:`explain_selection` says), not the scores."""
        request = self._request(
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude_models,
            input_tokens,
            output_tokens,
            tags=tags,
            session_id=session_id,
            alias=alias,
            tenant=tenant,
        )
        names, raw = self._core.scores(
            request, prompt=prompt, embedding=embedding, willingness_to_pay=willingness_to_pay
        )
        return names, np.frombuffer(raw, dtype="<f8").copy()

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
        second), and close the response cache's connections, files and
        threads (it reopens them if used again, so a cache shared with
        another registry keeps working). Use :meth:`aclose` from async code."""
        if self._shared is not None:
            self._shared.close()
        if self._cache is not None:
            self._cache.close()

    async def aclose(self) -> None:
        """Stop the health monitor and the shared-state sync, and close the
        response cache's connections and files (it reopens them if used
        again, so a cache shared with another registry keeps working); no
        task, thread or socket of this registry is left."""
        await self.health_monitor.stop()
        if self._shared is not None:
            await asyncio.to_thread(self._shared.close)
        if self._cache is not None:
            await self._cache.aclose()

    async def __aenter__(self) -> ModelRegistry:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----- fallback chains ------------------------------------------------------

    def set_fallbacks(self, name: str, chain: Optional[Sequence[str]]) -> None:
        """Fall back from model (or alias) ``name`` along ``chain``: when a
        :meth:`generate`/:meth:`stream` request's first failure is on
        ``name`` and the request gives no ``fallbacks=`` of its own, its next
        attempts are taken from ``chain``'s entries in order (model or alias
        names, resolved at call time; see :mod:`orchestrator.models.fallbacks`).
        ``None`` or an empty chain removes ``name``'s chain."""
        key = check_name(name, "name")
        checked = () if chain is None else check_chain(chain)
        if key in checked:
            raise ValueError(f"invalid fallbacks for {key!r}: a chain cannot name its own key")
        with self._lock:
            chains = dict(self._fallbacks)
            if checked:
                chains[key] = checked
            else:
                chains.pop(key, None)
            self._fallbacks = chains

    @property
    def fallbacks(self) -> dict[str, tuple[str, ...]]:
        """Every configured fallback chain, by the model or alias it falls back from."""
        return dict(self._fallbacks)

    def fallbacks_for(self, name: str) -> Optional[tuple[str, ...]]:
        """The configured chain of model or alias ``name``, if any."""
        return self._fallbacks.get(name)

    def fallback_members(self, name: str) -> list[str]:
        """The registered models a chain entry names now: a model, or a
        routing alias's or logical model's members (none when it names
        nothing registered any more)."""
        if name in self._models:
            return [name]
        try:
            return self.alias_members(name)
        except ValueError:
            return []

    def check_fallbacks(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        """A request's ``fallbacks=``, each entry naming a registered model
        or alias (a typo is the caller's error, raised before any call)."""
        for i, name in enumerate(chain):
            if not self.fallback_members(name):
                close = ModelNotFoundError(name, list(self._models))
                raise ValueError(f"invalid fallbacks[{i}]: {close}")
        return chain

    async def generate(
        self,
        prompt: Prompt,
        *,
        retry_budget: int = 2,
        deadline: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        max_wait: Optional[float] = None,
        fallbacks: Optional[Sequence[str]] = None,
        **kwargs: Any,
    ) -> GenerationResult:
        """Select a model and call it; on a failure another model may not
        repeat, try the next-best eligible model (each at most once), up to
        ``retry_budget`` retries and within ``deadline`` seconds in total
        (``attempt_timeout`` caps each try). When every eligible model is
        rate limited or inside a provider's ``Retry-After``, it waits for the
        soonest slot if that comes within the deadline and ``max_wait``
        seconds (``None``: any the deadline leaves room for; ``0``: never
        wait); a ``Retry-After`` is never slept on in place, so another model
        that can answer now is tried first. A context-length error moves to
        a model with a larger known window, a content-filter error to another
        provider; ``fallbacks`` (model or alias names, in order) replaces the
        configured chain of the model that failed (``[]``: no chain, any
        eligible model); see :mod:`orchestrator.models.fallbacks`. Keyword
        arguments of :meth:`select_model` constrain selection; the rest go to
        ``generate_response``. Any other error is raised at once, with
        ``.attempts``; giving up raises :class:`~orchestrator.errors.FailoverError`."""
        return await failover.generate(
            self,
            prompt,
            retry_budget=retry_budget,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            max_wait=max_wait,
            fallbacks=fallbacks,
            **kwargs,
        )

    def stream(
        self,
        prompt: Prompt,
        *,
        retry_budget: int = 2,
        deadline: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        max_wait: Optional[float] = None,
        fallbacks: Optional[Sequence[str]] = None,
        **kwargs: Any,
    ) -> FailoverStream:
        """Like :meth:`generate`, as an async iterator of text chunks; falls
        back only until the first chunk has reached the caller."""
        return failover.stream(
            self,
            prompt,
            retry_budget=retry_budget,
            deadline=deadline,
            attempt_timeout=attempt_timeout,
            max_wait=max_wait,
            fallbacks=fallbacks,
            **kwargs,
        )


def _request_of(constraints: object) -> _core.Request:
    """``constraints`` (a :class:`ModelConstraints`) as the core's typed request."""
    if not isinstance(constraints, ModelConstraints):
        raise TypeError(f"invalid constraints: expected ModelConstraints, got {constraints!r}")
    return constraints.request()
