"""The configuration's schema: every section, every key, its type and its
documented range. Values are checked strictly (``"3"`` is not a number, ``1``
is not ``true``); numbers must be finite and within the bounds written here,
enumerated values suggest the closest valid one."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import Annotated, Any, Optional, Union, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestrator import _core
from orchestrator.core.budgets import BudgetPeriod, BudgetScope
from orchestrator.core.model import CAPABILITY_NAMES
from orchestrator.errors import did_you_mean
from orchestrator.models.failover import DEFAULT_MAX_WAITING, MAX_WAITING
from orchestrator.models.selectors import ContextualSelector
from orchestrator.server.settings import ServerSettings

#: Strategies of ``[selection] strategy``: the core's names and the contextual one.
STRATEGIES = (*(name for name, _, _ in _core.STRATEGY_NAMES), str(ContextualSelector.strategy))
#: Exploration rules of the contextual strategy (``[selection] exploration``).
EXPLORATIONS = ("thompson", "ucb", "greedy")
#: Backends of ``[cache] backend``.
CACHE_BACKENDS = ("memory", "disk", "redis")
#: Providers of ``[[models]] provider`` (their classes: ``building.PROVIDERS``).
PROVIDER_NAMES = ("openai", "anthropic", "google", "gemini", "ollama", "huggingface", "simulated")

#: Largest context window and output a model may declare, in tokens.
MAX_CONTEXT_TOKENS = 100_000_000
#: Longest duration any setting may have, in seconds (one day, or one year for a cache TTL).
MAX_SECONDS = 86_400.0
MAX_TTL_SECONDS = 365 * 86_400.0

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def in_range(low: float, high: float, *, low_open: bool = False, unit: str = "") -> AfterValidator:
    """A check that a number is finite and in ``[low, high]`` (``(low, high]``
    with ``low_open``), with a message naming the range."""
    opening = "(" if low_open else "["
    suffix = f" {unit}" if unit else ""
    span = f"{opening}{_number_text(low)}, {_number_text(high)}]{suffix}"

    def check(value: Union[int, float]) -> Union[int, float]:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number in {span} (got {value})")
        if value < low or (low_open and value == low) or value > high:
            shown = _number_text(value) if abs(value) < 1e18 else f"{float(value):.3g}"
            raise ValueError(f"must be in {span} (got {shown})")
        return value

    return AfterValidator(check)


def one_of(options: tuple[str, ...], what: str) -> AfterValidator:
    """A check that a string is one of ``options``, with "did you mean"."""

    def check(value: str) -> str:
        if value not in options:
            raise ValueError(
                f"unknown {what} {value!r}{did_you_mean(value, options)}; "
                f"choose one of {', '.join(options)}"
            )
        return value

    return AfterValidator(check)


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the NAME of an environment variable (like OPENAI_API_KEY), "
            "never the key itself"
        )
    return value


def text_length(low: int, high: int) -> AfterValidator:
    """A check that a string has ``low`` to ``high`` characters, none a control one."""

    def check(value: str) -> str:
        if not low <= len(value) <= high:
            raise ValueError(f"must be {low} to {high} characters (got {len(value)})")
        if any(ord(c) < 32 for c in value):
            raise ValueError("must not contain control characters")
        return value

    return AfterValidator(check)


Weight = Annotated[float, in_range(0, 1000)]
Seconds = Annotated[float, in_range(0, MAX_SECONDS, low_open=True, unit="seconds")]
Count = Annotated[int, in_range(1, 1_000_000)]
Price = Annotated[float, in_range(0, 100_000, unit="USD")]
EnvName = Annotated[str, AfterValidator(_env_name)]
Capability = Annotated[str, one_of(CAPABILITY_NAMES, "capability")]


def _tag(value: str) -> str:
    """One tag, by the core's rule (the one ``Model(tags=...)`` applies)."""
    try:
        _core.check_tags([value])
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc).removeprefix("invalid tags: ")) from None
    return value


def _deployment(value: str) -> str:
    """A deployment id, by the core's rule (the one ``Model(deployment=...)`` applies)."""
    try:
        _core.check_deployment(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc).removeprefix("invalid deployment: ")) from None
    return value


def _members(value: list[str]) -> list[str]:
    """An alias's models: at least one, at most the core's maximum."""
    if not 1 <= len(value) <= _core.MAX_ALIAS_MEMBERS:
        raise ValueError(f"must name 1 to {_core.MAX_ALIAS_MEMBERS} models (got {len(value)})")
    return value


Tag = Annotated[str, AfterValidator(_tag)]
#: A model's name, a deployment id, an alias: what models and aliases are named by.
Label = Annotated[str, text_length(1, _core.MAX_LABEL_BYTES)]


class Section(BaseModel):
    """A table of the file: no unknown keys, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RewardSection(Section):
    """``[selection.reward]``: how an outcome becomes a reward (``RewardWeights``)."""

    success: Weight = 1.0
    latency: Weight = 0.5
    cost: Weight = 0.25
    quality: Weight = 1.0
    latency_ref_s: Annotated[float, in_range(0, 3600, low_open=True, unit="seconds")] = 2.0
    cost_ref_usd: Annotated[float, in_range(0, 1000, low_open=True, unit="USD")] = 0.01


class SelectionSection(Section):
    """``[selection]``: the strategy and its parameters."""

    strategy: Annotated[str, one_of(STRATEGIES, "strategy")] = "ucb"
    exploration_factor: Optional[Annotated[float, in_range(0, 100)]] = None
    min_trials: Optional[Annotated[int, in_range(0, 1_000_000)]] = None
    confidence_level: Optional[Annotated[float, in_range(0.5, 0.9999)]] = None
    discount: Optional[Annotated[float, in_range(0.5, 1)]] = None
    # The contextual strategy's (``ContextualSelector``'s) parameters.
    hash_bits: Optional[Annotated[int, in_range(10, 24)]] = None
    word_ngrams: Optional[Annotated[int, in_range(1, 3)]] = None
    char_ngrams: Optional[Annotated[int, in_range(0, 6)]] = None
    embedding_dim: Optional[Annotated[int, in_range(0, 65_536)]] = None
    prior_precision: Optional[Annotated[float, in_range(0, 1e6, low_open=True)]] = None
    exploration: Optional[Annotated[str, one_of(EXPLORATIONS, "exploration")]] = None
    exploration_weight: Optional[Annotated[float, in_range(0, 100)]] = None
    epochs: Optional[Annotated[int, in_range(1, 1000)]] = None
    learning_rate: Optional[Annotated[float, in_range(0, 10, low_open=True)]] = None
    feedback_ttl_s: Optional[Seconds] = None
    max_pending: Optional[Annotated[int, in_range(1, 1 << 20)]] = None
    seed: Optional[Annotated[int, in_range(0, 2**63 - 1)]] = None
    willingness_to_pay: Optional[
        Annotated[float, in_range(_core.MIN_WILLINGNESS_TO_PAY, 1e6, unit="USD")]
    ] = None
    pending_timeout: Seconds = 600.0
    #: Requests kept waiting for a rate-limit slot at most (``ModelRegistry(max_waiting=)``).
    max_waiting: Annotated[int, in_range(0, MAX_WAITING)] = DEFAULT_MAX_WAITING
    reward: RewardSection = Field(default_factory=RewardSection)


class CacheSection(Section):
    """``[cache]``: the response cache."""

    enabled: bool = False
    backend: Annotated[str, one_of(CACHE_BACKENDS, "cache backend")] = "memory"
    ttl: Optional[Annotated[float, in_range(0, MAX_TTL_SECONDS, low_open=True, unit="seconds")]] = (
        None
    )
    max_size: Optional[Annotated[int, in_range(1, 1_000_000_000)]] = None
    path: Optional[Annotated[str, text_length(1, 4096)]] = None
    redis_url: Optional[Annotated[str, text_length(1, 4096)]] = None
    redis_url_env: Optional[EnvName] = None


class HealthSection(Section):
    """``[health]``: circuit breakers and active checks."""

    check_interval: Seconds = 300.0
    failure_threshold: Count = 3
    recovery_threshold: Count = 2
    base_cooldown: Seconds = 30.0
    max_cooldown: Seconds = 600.0
    error_rate_threshold: Annotated[float, in_range(0, 1, low_open=True)] = 0.5
    error_rate_window: Count = 20


class StateSection(Section):
    """``[state]``: statistics shared by many workers through Redis."""

    url: Optional[Annotated[str, text_length(1, 4096)]] = None
    url_env: Optional[EnvName] = None
    namespace: Annotated[str, text_length(1, 100)] = "default"
    sync_interval: Annotated[float, in_range(0, 3600, low_open=True, unit="seconds")] = 0.5
    spool_dir: Optional[Annotated[str, text_length(1, 4096)]] = None


class SessionsSection(Section):
    """``[sessions]``: session affinity (``ModelRegistry(session_ttl=,
    max_sessions=)``)."""

    ttl: Annotated[float, in_range(0, _core.MAX_SESSION_TTL_S, low_open=True, unit="seconds")] = (
        _core.DEFAULT_SESSION_TTL_S
    )
    max_sessions: Annotated[int, in_range(1, _core.MAX_SESSIONS)] = _core.DEFAULT_MAX_SESSIONS


class CostEntry(Section):
    """A model's prices in USD."""

    input_per_million: Price = 0.0
    output_per_million: Price = 0.0
    per_request: Price = 0.0


class ModelEntry(Section):
    """One ``[[models]]`` table."""

    provider: Annotated[str, one_of(PROVIDER_NAMES, "provider")]
    name: Annotated[str, text_length(1, 200)]
    model_id: Optional[Annotated[str, text_length(1, 500)]] = None
    base_url: Optional[Annotated[str, text_length(1, 4096)]] = None
    api_key_env: Optional[EnvName] = None
    cost: Optional[CostEntry] = None
    capabilities: Optional[list[Capability]] = None
    context_length: Optional[Annotated[int, in_range(1, MAX_CONTEXT_TOKENS, unit="tokens")]] = None
    max_tokens: Optional[Annotated[int, in_range(1, MAX_CONTEXT_TOKENS, unit="tokens")]] = None
    speed: Optional[Annotated[float, in_range(0, 1_000_000, unit="tokens per second")]] = None
    rpm: Optional[Annotated[int, in_range(1, _core.MAX_RPM, unit="requests per minute")]] = None
    tpm: Optional[Annotated[int, in_range(1, _core.MAX_TPM, unit="tokens per minute")]] = None
    tags: Optional[Annotated[list[Tag], Field(max_length=_core.MAX_TAGS)]] = None
    deployment: Optional[Annotated[Label, AfterValidator(_deployment)]] = None
    timeout: Optional[Seconds] = None
    optional: bool = False
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        """The name the registry knows this model by (``name@deployment``)."""
        return self.name if self.deployment is None else f"{self.name}@{self.deployment}"


class AliasEntry(Section):
    """One ``[[aliases]]`` table: a routing alias and the models it names
    (``[[models]]`` names, ``name@deployment`` for one deployment, or a
    model's name for all of its deployments)."""

    name: Label
    models: Annotated[list[Label], AfterValidator(_members)]


#: A name in a ``[[budgets]]`` table (the core's limit for a request's names).
BudgetName = Annotated[str, text_length(1, 256)]


class BudgetEntry(Section):
    """One ``[[budgets]]`` table: at most ``limit_usd`` per calendar UTC
    ``period`` for exactly one of ``model``, ``provider``, ``tag``, ``tenant``."""

    name: Optional[BudgetName] = None
    model: Optional[BudgetName] = None
    provider: Optional[BudgetName] = None
    tag: Optional[BudgetName] = None
    tenant: Optional[BudgetName] = None
    limit_usd: Annotated[float, in_range(0, _core.MAX_BUDGET_LIMIT_USD, low_open=True, unit="USD")]
    period: Annotated[str, one_of(tuple(_core.BUDGET_PERIODS), "period")]

    @property
    def checked_period(self) -> BudgetPeriod:
        """``period``, known by now to be one of the periods."""
        return cast(BudgetPeriod, self.period)

    def scope(self) -> BudgetScope:
        """What the budget covers (raises ``ValueError`` unless exactly one is given)."""
        return BudgetScope(
            model=self.model, provider=self.provider, tag=self.tag, tenant=self.tenant
        )


class SimulatedOptions(Section):
    """``options`` of a ``simulated`` model: its truth (``ModelProfile``)."""

    success_rate: Annotated[float, in_range(0, 1)] = 0.98
    latency_s: Annotated[float, in_range(0, 3600, low_open=True, unit="seconds")] = 1.0
    latency_sigma: Annotated[float, in_range(0, 10)] = 0.35
    output_tokens: Annotated[float, in_range(0, MAX_CONTEXT_TOKENS, low_open=True)] = 300.0
    quality: Annotated[float, in_range(0, 1)] = 0.8
    quality_noise: Annotated[float, in_range(0, 1)] = 0.08
    seed: Annotated[int, in_range(0, 2**63 - 1)] = 0
    sleep_scale: Annotated[float, in_range(0, 1000)] = 0.0


class OrchestratorConfig(BaseModel):
    """A whole, validated configuration file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    selection: SelectionSection = Field(default_factory=SelectionSection)
    cache: CacheSection = Field(default_factory=CacheSection)
    health: HealthSection = Field(default_factory=HealthSection)
    state: StateSection = Field(default_factory=StateSection)
    sessions: SessionsSection = Field(default_factory=SessionsSection)
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: list[ModelEntry] = Field(default_factory=list)
    #: ``[fallbacks]``: model name -> the chain it falls back along.
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    aliases: list[AliasEntry] = Field(default_factory=list)
    budgets: list[BudgetEntry] = Field(default_factory=list)


#: The sections of a file, by top-level key.
SECTIONS: dict[str, type[BaseModel]] = {
    "selection": SelectionSection,
    "cache": CacheSection,
    "health": HealthSection,
    "state": StateSection,
    "sessions": SessionsSection,
    "server": ServerSettings,
}
#: Nested tables whose keys are checked, by parent class and key.
NESTED: dict[tuple[type[BaseModel], str], type[Section]] = {
    (SelectionSection, "reward"): RewardSection,
    (ModelEntry, "cost"): CostEntry,
}
#: Which parameters each strategy takes (others are refused, not ignored).
STRATEGY_PARAMETERS: dict[str, frozenset[str]] = {
    "ucb": frozenset({"exploration_factor", "min_trials", "confidence_level", "discount"}),
    "discounted_ucb": frozenset(
        {"exploration_factor", "min_trials", "confidence_level", "discount"}
    ),
    "thompson": frozenset({"exploration_factor", "min_trials", "discount"}),
    "discounted_thompson": frozenset({"exploration_factor", "min_trials", "discount"}),
    "performance": frozenset({"min_trials", "discount"}),
    "cost": frozenset(),
    "contextual": frozenset(field.name for field in fields(ContextualSelector)),
}
#: Every strategy parameter of ``[selection]``.
SELECTION_PARAMETERS: frozenset[str] = frozenset().union(*STRATEGY_PARAMETERS.values())
