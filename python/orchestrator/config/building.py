"""Building the parts of a registry from a validated configuration: its
selector, health monitor, cache, shared-state settings and models. Nothing
here imports the registry: :func:`registry_parts` returns exactly the
``ModelRegistry`` constructor's keyword arguments and the models to register,
and ``ModelRegistry.from_config`` puts them together."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from orchestrator import _core
from orchestrator.config.checks import Found
from orchestrator.config.errors import ConfigError
from orchestrator.config.loading import LoadedConfig, problems_error
from orchestrator.config.schema import (
    STRATEGY_PARAMETERS,
    AliasEntry,
    BudgetEntry,
    CacheSection,
    HealthSection,
    ModelEntry,
    SelectionSection,
    SimulatedOptions,
)
from orchestrator.core.cache import ModelCache
from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.models.failover import DEFAULT_MAX_WAITING
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.selectors import (
    SELECTORS,
    ContextualSelector,
    ModelSelector,
    RewardWeights,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    """Where a provider's model class lives, imported on first use."""

    module: str
    class_name: str
    #: Turns the uniform keyword arguments into the class's own, when they differ.
    adapt: Optional[Callable[[str, dict[str, Any]], dict[str, Any]]] = None


def _simulated_arguments(module: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``SimulatedModel`` takes its truth as a ``ModelProfile``, built here from
    the options, prices, capabilities and speed of the table."""
    profile_class = importlib.import_module(module).ModelProfile
    options = SimulatedOptions.model_validate(kwargs.pop("options", {}))
    cost: Optional[ModelCost] = kwargs.get("cost")
    caps: ModelCapabilities = kwargs.get("capabilities") or ModelCapabilities(
        chat=True, supports_streaming=True
    )
    price = cost or ModelCost()
    profile = profile_class(
        kwargs["name"],
        success_rate=options.success_rate,
        latency_s=options.latency_s,
        latency_sigma=options.latency_sigma,
        input_per_million=price.input_per_million,
        output_per_million=price.output_per_million,
        output_tokens=options.output_tokens,
        quality=options.quality,
        quality_noise=options.quality_noise,
        capabilities=tuple(caps.names()),
        context_length=caps.context_length or 128_000,
        speed=kwargs.get("speed"),
    )
    return {
        "name": kwargs["name"],
        "profile": profile,
        "seed": options.seed,
        "sleep_scale": options.sleep_scale,
        "priced": cost is not None,
        "rpm": kwargs.get("rpm"),
        "tpm": kwargs.get("tpm"),
        "tags": kwargs.get("tags"),
        "deployment": kwargs.get("deployment"),
    }


#: Every provider of ``[[models]] provider``, by name.
PROVIDERS: dict[str, Provider] = {
    "openai": Provider("orchestrator.integrations.openai_model", "OpenAIModel"),
    "anthropic": Provider("orchestrator.integrations.anthropic_model", "AnthropicModel"),
    "google": Provider("orchestrator.integrations.google_model", "GoogleModel"),
    "gemini": Provider("orchestrator.integrations.google_model", "GoogleModel"),
    "ollama": Provider("orchestrator.integrations.ollama_model", "OllamaModel"),
    "huggingface": Provider("orchestrator.integrations.huggingface_model", "HuggingFaceModel"),
    "simulated": Provider(
        "orchestrator.integrations.simulated_model", "SimulatedModel", _simulated_arguments
    ),
}


@dataclass
class RegistryParts:
    """What a configuration builds: exactly the ``ModelRegistry`` keyword
    arguments (:meth:`registry_kwargs`) and the models to register, in order."""

    model_selector: ModelSelector
    health_monitor: ModelHealthMonitor
    health_check_interval: float
    cache_responses: Union[bool, ModelCache]
    reward_weights: RewardWeights
    pending_timeout: float
    state: str = "local"
    state_namespace: str = "default"
    sync_interval: float = 0.5
    state_spool_dir: Optional[str] = None
    session_ttl: float = _core.DEFAULT_SESSION_TTL_S
    max_sessions: int = _core.DEFAULT_MAX_SESSIONS
    max_waiting: int = DEFAULT_MAX_WAITING
    models: list[Model] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: ``[fallbacks]``: for :meth:`ModelRegistry.set_fallbacks`, by model name.
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    #: ``[[aliases]]``: each routing alias's members among ``models``.
    aliases: dict[str, list[str]] = field(default_factory=dict)
    #: The ``[[budgets]]`` tables, added after the models.
    budgets: list[BudgetEntry] = field(default_factory=list)

    def registry_kwargs(self) -> dict[str, Any]:
        """``ModelRegistry(**parts.registry_kwargs())``; ``state_spool_dir`` is
        passed only when the file sets it."""
        kwargs: dict[str, Any] = {
            "model_selector": self.model_selector,
            "health_monitor": self.health_monitor,
            "health_check_interval": self.health_check_interval,
            "cache_responses": self.cache_responses,
            "reward_weights": self.reward_weights,
            "pending_timeout": self.pending_timeout,
            "state": self.state,
            "state_namespace": self.state_namespace,
            "sync_interval": self.sync_interval,
            "session_ttl": self.session_ttl,
            "max_sessions": self.max_sessions,
            "max_waiting": self.max_waiting,
        }
        if self.state_spool_dir is not None:
            kwargs["state_spool_dir"] = self.state_spool_dir
        return kwargs


def build_selector(section: SelectionSection) -> ModelSelector:
    """The selector that ``[selection]`` declares (its parameters were
    checked against the strategy when the file was loaded)."""
    if section.strategy == "contextual":
        return ContextualSelector(
            **section.model_dump(include=set(STRATEGY_PARAMETERS["contextual"]), exclude_none=True)
        )
    params = section.model_dump(
        include={"exploration_factor", "min_trials", "confidence_level", "discount"},
        exclude_none=True,
    )
    return SELECTORS[section.strategy](**params)


def build_health_monitor(section: HealthSection) -> ModelHealthMonitor:
    """The health monitor that ``[health]`` declares."""
    return ModelHealthMonitor(**section.model_dump())


def _from_env(name: Optional[str]) -> Optional[str]:
    return None if name is None else (os.environ.get(name) or None)


def build_cache(section: CacheSection, base: Optional[Path] = None) -> Optional[ModelCache]:
    """The cache that ``[cache]`` declares, or ``None`` when it is disabled;
    a relative ``path`` starts at ``base`` (the file's folder)."""
    if not section.enabled:
        return None
    kwargs: dict[str, Any] = {"backend": section.backend}
    for name in ("ttl", "max_size"):
        value = getattr(section, name)
        if value is not None:
            kwargs[name] = value
    redis_url = section.redis_url or _from_env(section.redis_url_env)
    if section.backend == "redis":
        if redis_url is None:
            raise ConfigError(f"environment variable {section.redis_url_env} is not set")
        kwargs["redis_url"] = redis_url
    if section.path is not None:
        path = Path(section.path).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        kwargs["path"] = str(path)
    return ModelCache(**kwargs)


def provider_class(provider: str) -> type[Model]:
    """The model class of ``provider``, imported on first use."""
    spec = PROVIDERS[provider]
    try:
        cls = getattr(importlib.import_module(spec.module), spec.class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"provider {provider!r} is not available ({spec.module}.{spec.class_name} "
            f"could not be loaded: {exc})"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ConfigError(f"provider {provider!r}: {spec.module}.{spec.class_name} is not a Model")
    return cls


def model_kwargs(entry: ModelEntry, api_key: Optional[str] = None) -> dict[str, Any]:
    """The keyword arguments every provider class takes, from a ``[[models]]`` table."""
    kwargs: dict[str, Any] = {"name": entry.name}
    for name in ("base_url", "model_id", "speed", "rpm", "tpm", "tags", "deployment", "timeout"):
        value = getattr(entry, name)
        if value is not None:
            kwargs[name] = value
    if entry.cost is not None:
        kwargs["cost"] = ModelCost(**entry.cost.model_dump())
    if entry.capabilities is not None or entry.context_length is not None:
        flags: dict[str, Any] = dict.fromkeys(entry.capabilities or ["text_generation"], True)
        flags.setdefault("text_generation", False)
        kwargs["capabilities"] = ModelCapabilities(
            **flags, context_length=entry.context_length or 0, max_tokens=entry.max_tokens
        )
    if api_key is not None:
        kwargs["api_key"] = api_key
    return kwargs


def build_model(entry: ModelEntry, api_key: Optional[str] = None) -> Model:
    """One model from its ``[[models]]`` table (``api_key`` already read)."""
    cls = provider_class(entry.provider)
    spec = PROVIDERS[entry.provider]
    kwargs = model_kwargs(entry, api_key)
    if spec.adapt is not None:
        kwargs = spec.adapt(spec.module, {**kwargs, "options": entry.options})
    else:
        kwargs.update(entry.options)
    model: Model = cls(**kwargs)
    return model


def state_url_of(loaded: LoadedConfig) -> str:
    """The shared-state URL of ``[state]`` (``url``, or the variable ``url_env``
    names), or ``"local"`` when the file has none (``orchestrator stats`` reads
    the fleet's totals there, in ``[state] namespace``)."""
    state = loaded.config.state
    if state.url_env is None:
        return state.url or "local"
    url = _from_env(state.url_env)
    if url is None:
        raise loaded.error(("state", "url_env"), f"environment variable {state.url_env} is not set")
    return url


def registry_parts(loaded: LoadedConfig) -> RegistryParts:
    """Everything a validated configuration builds. Raises one
    :class:`ConfigError` listing every model that cannot be built (a key
    variable not set, a provider not installed, a value its class refuses)."""
    config = loaded.config
    found: list[Found] = []
    try:
        cache = build_cache(config.cache, loaded.base)
    except ConfigError as exc:
        found.append(Found(("cache", "redis_url_env"), exc.problem))
        cache = None
    except (TypeError, ValueError, OSError) as exc:
        found.append(Found(("cache",), f"cannot create the cache: {exc}"))
        cache = None
    state = config.state
    try:
        state_url = state_url_of(loaded)
    except ConfigError as exc:
        found.append(Found(("state", "url_env"), exc.problem))
        state_url = "local"
    models: list[Model] = []
    notes = loaded.notes
    for i, entry in enumerate(config.models):
        api_key = None
        if entry.api_key_env is not None:
            api_key = _from_env(entry.api_key_env)
            if api_key is None:
                if entry.optional:
                    notes.append(f"skipped {entry.name}: {entry.api_key_env} is not set")
                    logger.info("skipping %s: %s is not set", entry.name, entry.api_key_env)
                    continue
                found.append(
                    Found(
                        ("models", i, "api_key_env"),
                        f"environment variable {entry.api_key_env} is not set; export it "
                        f"(export {entry.api_key_env}=...) or mark the model optional = true",
                    )
                )
                continue
        try:
            models.append(build_model(entry, api_key))
        except ConfigError as exc:
            found.append(Found(("models", i, "provider"), exc.problem))
        except (TypeError, ValueError) as exc:
            found.append(Found(("models", i), f"cannot create {entry.name!r}: {exc}"))
    if not models and not found:
        found.append(Found(("models",), "no model could be registered; set the missing keys"))
    if found:
        raise problems_error(loaded, found)
    aliases = _aliases_of(config.aliases, models, notes)
    spool = None
    if state.spool_dir is not None:
        spool_path = Path(state.spool_dir).expanduser()
        if not spool_path.is_absolute() and loaded.base is not None:
            spool_path = loaded.base / spool_path
        spool = str(spool_path)
    return RegistryParts(
        model_selector=build_selector(config.selection),
        health_monitor=build_health_monitor(config.health),
        health_check_interval=config.health.check_interval,
        cache_responses=cache if cache is not None else False,
        reward_weights=RewardWeights(**config.selection.reward.model_dump()),
        pending_timeout=config.selection.pending_timeout,
        state=state_url,
        state_namespace=state.namespace,
        sync_interval=state.sync_interval,
        state_spool_dir=spool,
        session_ttl=config.sessions.ttl,
        max_sessions=config.sessions.max_sessions,
        max_waiting=config.selection.max_waiting,
        models=models,
        notes=notes,
        fallbacks=config.fallbacks,
        aliases=aliases,
        budgets=list(config.budgets),
    )


def _aliases_of(
    entries: list[AliasEntry], models: list[Model], notes: list[str]
) -> dict[str, list[str]]:
    """Each ``[[aliases]]`` table's members among the models built (an
    optional model that was skipped drops out; an alias left empty is skipped)."""
    built = {m.name for m in models} | {m.model_name for m in models}
    aliases: dict[str, list[str]] = {}
    for entry in entries:
        members = [m for m in entry.models if m in built]
        if members:
            aliases[entry.name] = members
        else:
            notes.append(f"skipped alias {entry.name}: none of its models was registered")
    return aliases
