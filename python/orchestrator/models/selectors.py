"""Selectors: how the registry chooses among eligible models.

The built-in selectors name a strategy that the Rust core scores (and whose
parameters the core validates); a user-written selector subclasses
:class:`ModelSelector` and picks among the eligible models in Python.
:class:`RewardWeights` says how an outcome becomes the reward the
strategies learn from. This module does not import the registry, so the
configuration loader can build selectors without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from orchestrator import _core
from orchestrator.errors import did_you_mean

if TYPE_CHECKING:
    from orchestrator.core.model import Model, ModelConstraints
    from orchestrator.models.model_registry import ModelRegistry


class ModelSelector:
    """Base class of selectors.

    Built-in selectors name a ``strategy`` that the Rust core scores. A
    user-written selector subclasses this and implements :meth:`choose`; the
    core still filters by constraints, and :meth:`choose` picks among the
    eligible models in Python.
    """

    strategy: ClassVar[Optional[str]] = None

    def core_config(self) -> dict[str, Any]:
        """Parameters for the core, for built-in selectors."""
        raise NotImplementedError

    def configure(self, core: _core.SelectionCore) -> None:
        """Set up a registry's core for this selector (built-in selectors;
        a user-written one needs nothing)."""

    def choose(
        self, candidates: list[Model], constraints: ModelConstraints, registry: ModelRegistry
    ) -> Model:
        """Pick one of ``candidates`` (all satisfy ``constraints``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose()")


class CoreSelector(ModelSelector):
    """A built-in selector: the Rust core scores it, and validates its
    parameters (a bad one raises ``ValueError``/``TypeError`` naming it)."""

    def __init__(self, **params: Any) -> None:
        core_params: dict[str, Any] = {
            "exploration_factor": 2.0,
            "min_trials": 5,
            "confidence_level": 0.95,
            "discount": 1.0,
        }
        core_params.update(params)
        _core.SelectionCore(self.strategy or "", **core_params)
        self._params = params
        for name, value in params.items():
            setattr(self, name, value)

    def core_config(self) -> dict[str, Any]:
        return {"strategy": self.strategy, **self._params}

    def configure(self, core: _core.SelectionCore) -> None:
        core.configure_strategy(**self.core_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={value!r}" for name, value in self._params.items())
        return f"{type(self).__name__}({args})"


class UCBModelSelector(CoreSelector):
    """Upper-confidence-bound bandit: mean reward plus
    ``sqrt(exploration_factor * ln N / n)`` (UCB1), after ``min_trials``
    forced trials per model; ``confidence_level`` sets the reported intervals.

    Every strategy detects abrupt change: when a model's recent rewards sit
    far from its long-run mean (six standard errors of a ~30-outcome moving
    average; a run of failures is left to the circuit breaker), its history
    is cut to 20 outcomes at the recent level so it is re-learned quickly.
    ``discount`` below 1 (for example 0.999) also weights each past outcome by
    ``discount`` per later outcome, for providers that drift slowly; keep 1.0
    for stable providers, where it converges best.
    """

    strategy = "ucb"
    exploration_factor: float
    min_trials: int
    confidence_level: float
    discount: float

    def __init__(
        self,
        exploration_factor: float = 2.0,
        min_trials: int = 5,
        confidence_level: float = 0.95,
        discount: float = 1.0,
    ) -> None:
        super().__init__(
            exploration_factor=exploration_factor,
            min_trials=min_trials,
            confidence_level=confidence_level,
            discount=discount,
        )


class ThompsonSelector(CoreSelector):
    """Gaussian Thompson sampling: each model's score is a random draw around
    its mean reward, as wide as the uncertainty about it (scaled by
    ``exploration_factor / 2``), after ``min_trials`` forced trials. It
    explores in proportion to how likely a model is to be the best, which
    usually costs fewer requests than UCB when models are close.
    ``discount`` works as for :class:`UCBModelSelector`; ``seed`` makes runs
    reproducible."""

    strategy = "thompson"
    exploration_factor: float
    min_trials: int
    discount: float

    def __init__(
        self,
        exploration_factor: float = 2.0,
        min_trials: int = 5,
        discount: float = 1.0,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(
            exploration_factor=exploration_factor, min_trials=min_trials, discount=discount
        )
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"invalid seed: {seed!r} (an integer >= 0)")
        self.seed = seed

    def configure(self, core: _core.SelectionCore) -> None:
        super().configure(core)
        if self.seed is not None:
            core.seed(self.seed)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, seed={self.seed!r})"


class CostBasedSelector(CoreSelector):
    """The cheapest eligible model for the request's size; ties go to the
    better observed reward. Unpriced models come last."""

    strategy = "cost"

    def __init__(self) -> None:
        super().__init__(min_trials=0)


class PerformanceSelector(CoreSelector):
    """The best observed mean reward (success, latency, cost, quality), after
    ``min_trials`` forced trials per model; no exploration bonus."""

    strategy = "performance"
    min_trials: int
    discount: float

    def __init__(self, min_trials: int = 5, discount: float = 1.0) -> None:
        super().__init__(min_trials=min_trials, discount=discount)


#: The built-in selector class of each strategy the core scores.
SELECTOR_CLASSES: dict[str, type[CoreSelector]] = {
    str(cls.strategy): cls
    for cls in (UCBModelSelector, ThompsonSelector, CostBasedSelector, PerformanceSelector)
}


def _named(strategy: str, discount: float) -> Callable[..., ModelSelector]:
    """The selector class of ``strategy``, with ``discount`` as its default
    when the name means one (keyword arguments still override it)."""
    selector = SELECTOR_CLASSES[strategy]
    return selector if discount == 1.0 else functools.partial(selector, discount=discount)


Exploration = Literal["thompson", "ucb", "greedy"]


@dataclass(frozen=True)
class ContextualSelector(ModelSelector):
    """Prompt-aware routing (``selection_strategy="contextual"``): per
    request, each eligible model's quality is predicted for the prompt by a
    per-model Bayesian logistic model over hashed prompt features, and the
    model maximising predicted quality − expected cost / willingness to pay
    is chosen (see :mod:`orchestrator.routing`). Also the settings of a
    standalone :class:`~orchestrator.routing.ContextualRouter`.

    The featurizer hashes word n-grams up to ``word_ngrams`` (and, when
    ``char_ngrams`` > 0, character n-grams of that length inside words) into
    ``2**hash_bits`` buckets; ``embedding_dim`` reserves room for a caller's
    dense embedding. Each model's weights have a Gaussian prior of precision
    ``prior_precision``; ``calibrate`` runs ``epochs`` AdaGrad passes with
    step ``learning_rate``. ``exploration`` is how online decisions use the
    uncertainty (Thompson sampling, UCB with ``exploration_weight`` standard
    deviations, or greedy). Decisions accept delayed feedback for
    ``feedback_ttl_s`` seconds, for at most ``max_pending`` decisions.
    ``willingness_to_pay`` (USD for +1.0 of expected quality) is the default
    of requests that name none. Memory: 8 bytes × models × 2**hash_bits.
    """

    strategy: ClassVar[Optional[str]] = "contextual"

    hash_bits: int = 16
    word_ngrams: int = 2
    char_ngrams: int = 0
    embedding_dim: int = 0
    prior_precision: float = 4.0
    exploration: Exploration = "thompson"
    exploration_weight: float = 1.0
    epochs: int = 4
    learning_rate: float = 0.1
    feedback_ttl_s: float = 3600.0
    max_pending: int = 65536
    seed: int = 0x5EED
    willingness_to_pay: float = _core.DEFAULT_WILLINGNESS_TO_PAY

    def __post_init__(self) -> None:
        # The core checks every hyper-parameter (type and range) here, once.
        _core.check_routed_input(willingness_to_pay=self.willingness_to_pay)
        _core.ContextualRouter([], **self.core_options())

    def core_options(self) -> dict[str, Any]:
        """The keyword arguments of ``_core.ContextualRouter``."""
        options = asdict(self)
        del options["willingness_to_pay"]
        return options

    def configure(self, core: _core.SelectionCore) -> None:
        core.enable_routing(self.willingness_to_pay, **self.core_options())


def calibration_table(
    prompts: Iterable[Any],
    qualities: Mapping[str, Sequence[float]],
    costs: Optional[Mapping[str, float]],
) -> tuple[list[Any], dict[str, Sequence[float]], Optional[dict[str, float]]]:
    """The arguments of ``calibrate`` (registry and standalone router) as the
    core takes them: the prompts as a list, ``qualities`` and ``costs`` as
    dicts. A string of prompts, or an argument that cannot be converted, is a
    ``TypeError`` naming the field and the value (the bare conversion said
    only "'int' object is not iterable"); the core checks every value."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError("invalid prompts: a list of prompts is required, not a string")
    try:
        listed = list(prompts)
    except TypeError:
        raise TypeError(
            f"invalid prompts: {prompts!r:.80} (a list of prompts is required)"
        ) from None
    return (
        listed,
        _as_dict("qualities", qualities, "a dict of model name to a list of qualities"),
        None if costs is None else _as_dict("costs", costs, "a dict of model name to USD per call"),
    )


def _as_dict(field: str, value: Any, expected: str) -> dict[str, Any]:
    """``dict(value)``, or a ``TypeError`` naming ``field`` and the value."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"invalid {field}: {value!r:.80} ({expected})")
    try:
        return dict(value)
    except (TypeError, ValueError):
        raise TypeError(f"invalid {field}: {value!r:.80} ({expected})") from None


#: Every name ``selection_strategy`` and ``[selection] strategy`` accept, as the
#: core defines them (one per strategy, and the ``discounted_*`` presets) plus
#: ``contextual`` (prompt-aware routing, see ContextualSelector), and
#: the selector each builds (called with no argument: its defaults).
SELECTORS: dict[str, Callable[..., ModelSelector]] = {
    **{name: _named(strategy, discount) for name, strategy, discount in _core.STRATEGY_NAMES},
    str(ContextualSelector.strategy): ContextualSelector,
}


def selector_for(strategy: str) -> ModelSelector:
    """The built-in selector named ``strategy``."""
    try:
        return SELECTORS[strategy]()
    except KeyError:
        raise ValueError(
            f"invalid selection_strategy: {strategy!r}{did_you_mean(strategy, list(SELECTORS))}; "
            f"choose one of {', '.join(SELECTORS)}"
        ) from None


@dataclass(frozen=True)
class RewardWeights:
    """How an outcome becomes a reward in [0, 1]. A failure is 0; a success is
    the weighted mean of 1 (``success``), ``latency_ref_s / (latency_ref_s +
    latency)`` (``latency``), ``cost_ref_usd / (cost_ref_usd + cost)``
    (``cost``) and the caller's quality score when given (``quality``)."""

    success: float = 1.0
    latency: float = 0.5
    cost: float = 0.25
    quality: float = 1.0
    latency_ref_s: float = 2.0
    cost_ref_usd: float = 0.01
