"""TOML configuration: models, selection strategy, cache and health settings.

A file looks like ``examples/orchestrator.toml``::

    [selection]
    strategy = "ucb"            # ucb | discounted_ucb | thompson | discounted_thompson
                                # | cost | performance
    exploration_factor = 2.0

    [cache]
    enabled = true
    backend = "memory"          # memory | disk | redis
    ttl = 3600

    [health]
    failure_threshold = 3

    [[models]]
    provider = "openai"
    name = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"   # the NAME of the variable, never the key
    cost = { input_per_million = 0.15, output_per_million = 0.60 }
    capabilities = ["text_generation", "chat"]

:func:`load_config` validates a file (pydantic) and raises :class:`ConfigError`
naming the file, the line when it can be found, the key and the problem.
:func:`registry_from_config` builds a :class:`ModelRegistry`; providers are
imported lazily from ``orchestrator.integrations.<provider>_model``, and the
``simulated`` provider (:mod:`orchestrator.simulation`) needs no key.
:func:`discover_environment` builds a registry from the keys and hosts in the
environment when there is no file.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.core.model import CAPABILITY_NAMES, Model, ModelCapabilities, ModelCost
from orchestrator.errors import OrchestratorError
from orchestrator.server.settings import ServerSettings

if TYPE_CHECKING:
    from orchestrator.core.cache import ModelCache
    from orchestrator.models.health_monitor import ModelHealthMonitor
    from orchestrator.models.model_registry import ModelRegistry, ModelSelector

logger = logging.getLogger(__name__)

#: The file the CLI reads when ``--config`` is not given and it exists.
DEFAULT_CONFIG_NAME = "orchestrator.toml"

#: provider name -> (module under ``orchestrator``, class name).
PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("orchestrator.integrations.openai_model", "OpenAIModel"),
    "anthropic": ("orchestrator.integrations.anthropic_model", "AnthropicModel"),
    "google": ("orchestrator.integrations.google_model", "GoogleModel"),
    "gemini": ("orchestrator.integrations.google_model", "GoogleModel"),
    "ollama": ("orchestrator.integrations.ollama_model", "OllamaModel"),
    "huggingface": ("orchestrator.integrations.huggingface_model", "HuggingFaceModel"),
    "simulated": ("orchestrator.simulation", "SimulatedModel"),
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(OrchestratorError):
    """A configuration file is missing, malformed or invalid. The message is
    one line: ``file:line: key: problem``."""

    def __init__(
        self,
        problem: str,
        *,
        path: Optional[Union[str, os.PathLike[str]]] = None,
        key: Optional[str] = None,
        line: Optional[int] = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.key = key
        self.line = line
        self.problem = problem
        where = self.path or ""
        if where and line is not None:
            where = f"{where}:{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join([*parts, problem]))


# ----- schema ---------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class RewardSection(_Section):
    """Reward weights (see :class:`~orchestrator.models.model_registry.RewardWeights`)."""

    success: float = Field(1.0, ge=0)
    latency: float = Field(0.5, ge=0)
    cost: float = Field(0.25, ge=0)
    quality: float = Field(1.0, ge=0)
    latency_ref_s: float = Field(2.0, gt=0)
    cost_ref_usd: float = Field(0.01, gt=0)


class SelectionSection(_Section):
    """``[selection]``: the strategy and its parameters."""

    strategy: Literal[
        "ucb",
        "discounted_ucb",
        "thompson",
        "discounted_thompson",
        "cost",
        "cost_based",
        "performance",
    ] = "ucb"
    exploration_factor: Optional[float] = Field(None, ge=0)
    min_trials: Optional[int] = Field(None, ge=0)
    confidence_level: Optional[float] = Field(None, gt=0, lt=1)
    discount: Optional[float] = Field(None, gt=0, le=1)
    pending_timeout: float = Field(600.0, gt=0)
    reward: RewardSection = Field(default_factory=RewardSection)


class CacheSection(_Section):
    """``[cache]``: response cache settings."""

    enabled: bool = False
    backend: Literal["memory", "disk", "redis"] = "memory"
    ttl: Optional[float] = Field(None, gt=0)
    max_size: Optional[int] = Field(None, gt=0)
    path: Optional[str] = None
    redis_url: Optional[str] = None


class HealthSection(_Section):
    """``[health]``: circuit breaker settings."""

    check_interval: float = Field(300.0, gt=0)
    failure_threshold: int = Field(3, gt=0)
    recovery_threshold: int = Field(2, gt=0)
    base_cooldown: float = Field(30.0, gt=0)
    max_cooldown: float = Field(600.0, gt=0)
    error_rate_threshold: float = Field(0.5, gt=0, le=1)
    error_rate_window: int = Field(20, gt=0)


class CostEntry(_Section):
    """A model's prices in USD."""

    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)
    per_request: float = Field(0.0, ge=0)


class ModelEntry(_Section):
    """One ``[[models]]`` table."""

    provider: str
    name: str = Field(min_length=1)
    model_id: Optional[str] = None
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None
    cost: Optional[CostEntry] = None
    capabilities: Optional[list[str]] = None
    context_length: Optional[int] = Field(None, ge=0)
    max_tokens: Optional[int] = Field(None, gt=0)
    speed: Optional[float] = Field(None, ge=0)
    timeout: Optional[float] = Field(None, gt=0)
    optional: bool = False
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            close = difflib.get_close_matches(value, list(PROVIDERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown provider {value!r}{hint}; known providers: {', '.join(PROVIDERS)}"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the NAME of an environment variable (like OPENAI_API_KEY), "
                "never the key itself"
            )
        return value

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        for name in value or []:
            if name not in CAPABILITY_NAMES:
                raise ValueError(
                    f"unknown capability {name!r}; known: {', '.join(CAPABILITY_NAMES)}"
                )
        return value


class OrchestratorConfig(_Section):
    """A whole configuration file."""

    selection: SelectionSection = Field(default_factory=SelectionSection)
    cache: CacheSection = Field(default_factory=CacheSection)
    health: HealthSection = Field(default_factory=HealthSection)
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: list[ModelEntry] = Field(default_factory=list)


class SimulatedOptions(_Section):
    """``options`` of a ``simulated`` model: its truth (see ``ModelProfile``)."""

    success_rate: float = Field(0.98, ge=0, le=1)
    latency_s: float = Field(1.0, gt=0)
    latency_sigma: float = Field(0.35, ge=0)
    output_tokens: float = Field(300.0, gt=0)
    quality: float = Field(0.8, ge=0, le=1)
    quality_noise: float = Field(0.08, ge=0)
    seed: int = 0
    sleep_scale: float = Field(0.0, ge=0)


# ----- locating keys ----------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _split_key(raw: str) -> list[str]:
    return [part.strip().strip("\"'") for part in raw.split(".")]


def key_lines(text: str) -> dict[tuple[Union[str, int], ...], int]:
    """The line (1-based) where each key path is first written, with
    ``[[array]]`` tables numbered like the parsed list."""
    lines: dict[tuple[Union[str, int], ...], int] = {}
    counts: dict[tuple[Union[str, int], ...], int] = {}
    current: tuple[Union[str, int], ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            resolved: tuple[Union[str, int], ...] = ()
            parts = _split_key(header.group(2))
            for i, part in enumerate(parts):
                resolved = (*resolved, part)
                last = i == len(parts) - 1
                if last and header.group(1) == "[[":
                    counts[resolved] = counts.get(resolved, -1) + 1
                    resolved = (*resolved, counts[resolved])
                elif resolved in counts:
                    resolved = (*resolved, counts[resolved])
                lines.setdefault(resolved, number)
            current = resolved
            continue
        key = _KEY.match(line)
        if key and not line.lstrip().startswith("#"):
            path = current
            for part in _split_key(key.group(1)):
                path = (*path, part)
                lines.setdefault(path, number)
    return lines


def _locate(text: str, loc: tuple[Union[str, int], ...]) -> Optional[int]:
    lines = key_lines(text)
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: tuple[Union[str, int], ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ----- loading -----------------------------------------------------------------------


@dataclass
class LoadedConfig:
    """A validated configuration and where it came from."""

    config: OrchestratorConfig
    path: Optional[Path] = None
    text: str = ""
    notes: list[str] = field(default_factory=list)

    def error(self, loc: tuple[Union[str, int], ...], problem: str) -> ConfigError:
        """A :class:`ConfigError` for the key at ``loc``."""
        line = _locate(self.text, loc) if self.text else None
        return ConfigError(problem, path=self.path, key=_dotted(loc) or None, line=line)


def load_config(path: Union[str, os.PathLike[str]]) -> LoadedConfig:
    """Read and validate a configuration file."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found; pass --config with an existing file (see examples/orchestrator.toml)",
            path=file,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", path=file) from None
    return parse_config(text, file)


def parse_config(text: str, path: Optional[Union[str, os.PathLike[str]]] = None) -> LoadedConfig:
    """Validate configuration ``text`` (``path`` is used in messages and to
    resolve relative paths)."""
    file = None if path is None else Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise ConfigError(f"invalid TOML: {problem}", path=file, line=line) from None
    for i, entry in enumerate(data.get("models", []) if isinstance(data, dict) else []):
        if isinstance(entry, dict) and "api_key" in entry:
            loaded = LoadedConfig(OrchestratorConfig(), file, text)
            raise loaded.error(
                ("models", i, "api_key"),
                "never put a key in the file; set api_key_env to the NAME of the "
                "environment variable that holds it",
            )
    try:
        config = OrchestratorConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        problem = err["msg"]
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        elif err["type"] == "missing":
            problem = "required key is missing"
        elif problem.startswith("Value error, "):
            problem = problem[len("Value error, ") :]
        more = exc.error_count() - 1
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise LoadedConfig(OrchestratorConfig(), file, text).error(loc, problem) from None
    loaded = LoadedConfig(config, file, text)
    _check_semantics(loaded)
    return loaded


def _check_semantics(loaded: LoadedConfig) -> None:
    config = loaded.config
    if not config.models:
        raise loaded.error(("models",), "no models declared; add at least one [[models]] table")
    seen: dict[str, int] = {}
    for i, entry in enumerate(config.models):
        if entry.name in seen:
            raise loaded.error(
                ("models", i, "name"),
                f"duplicate model name {entry.name!r} (also models[{seen[entry.name]}])",
            )
        seen[entry.name] = i
        if entry.provider == "simulated":
            try:
                SimulatedOptions.model_validate(entry.options)
            except ValidationError as exc:
                err = exc.errors()[0]
                problem = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                raise loaded.error(("models", i, "options", *err["loc"]), problem) from None
    selection = config.selection
    allowed = {
        "ucb": {"exploration_factor", "min_trials", "confidence_level", "discount"},
        "discounted_ucb": {"exploration_factor", "min_trials", "confidence_level", "discount"},
        "thompson": {"exploration_factor", "min_trials", "discount"},
        "discounted_thompson": {"exploration_factor", "min_trials", "discount"},
        "performance": {"min_trials", "discount"},
        "cost": set(),
        "cost_based": set(),
    }[selection.strategy]
    for name in ("exploration_factor", "min_trials", "confidence_level", "discount"):
        if getattr(selection, name) is not None and name not in allowed:
            raise loaded.error(
                ("selection", name),
                f"does not apply to strategy {selection.strategy!r}; remove it",
            )
    if config.health.max_cooldown < config.health.base_cooldown:
        raise loaded.error(("health", "max_cooldown"), "must be >= base_cooldown")
    if config.cache.backend == "redis" and config.cache.enabled and not config.cache.redis_url:
        raise loaded.error(("cache", "redis_url"), "required when backend = 'redis'")


# ----- building ------------------------------------------------------------------------


def build_selector(section: SelectionSection) -> ModelSelector:
    """The selector that ``[selection]`` declares."""
    from orchestrator.models.model_registry import (
        CostBasedSelector,
        PerformanceSelector,
        ThompsonSelector,
        UCBModelSelector,
    )

    params = {
        k: v
        for k, v in section.model_dump(
            include={"exploration_factor", "min_trials", "confidence_level", "discount"}
        ).items()
        if v is not None
    }
    if section.strategy == "ucb":
        return UCBModelSelector(**params)
    if section.strategy == "discounted_ucb":
        params.setdefault("discount", 0.999)
        return UCBModelSelector(**params)
    if section.strategy in ("thompson", "discounted_thompson"):
        params.pop("confidence_level", None)
        if section.strategy == "discounted_thompson":
            params.setdefault("discount", 0.999)
        return ThompsonSelector(**params)
    if section.strategy == "performance":
        return PerformanceSelector(**params)
    return CostBasedSelector()


def build_health_monitor(section: HealthSection) -> ModelHealthMonitor:
    """The health monitor that ``[health]`` declares."""
    from orchestrator.models.health_monitor import ModelHealthMonitor

    return ModelHealthMonitor(**section.model_dump())


def build_cache(section: CacheSection, base: Optional[Path] = None) -> Optional[ModelCache]:
    """The cache that ``[cache]`` declares, or ``None`` when it is disabled."""
    if not section.enabled:
        return None
    from orchestrator.core.cache import ModelCache

    kwargs: dict[str, Any] = {"backend": section.backend}
    for name in ("ttl", "max_size", "redis_url"):
        value = getattr(section, name)
        if value is not None:
            kwargs[name] = value
    if section.path is not None:
        path = Path(section.path).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        kwargs["path"] = str(path)
    cache: ModelCache = ModelCache(**kwargs)
    return cache


def provider_class(provider: str) -> type[Model]:
    """The model class of ``provider``, imported on first use."""
    module_name, class_name = PROVIDERS[provider]
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"provider {provider!r} is not available ({module_name}.{class_name} "
            f"could not be loaded: {exc})"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ConfigError(f"provider {provider!r}: {module_name}.{class_name} is not a Model")
    return cls


def build_model(entry: ModelEntry, api_key: Optional[str] = None) -> Model:
    """One model from its ``[[models]]`` table (``api_key`` already read)."""
    cost = None if entry.cost is None else ModelCost(**entry.cost.model_dump())
    capabilities = None
    if entry.capabilities is not None or entry.context_length is not None:
        flags: dict[str, Any] = dict.fromkeys(entry.capabilities or ["text_generation"], True)
        flags.setdefault("text_generation", False)
        capabilities = ModelCapabilities(
            **flags, context_length=entry.context_length or 0, max_tokens=entry.max_tokens
        )
    if entry.provider == "simulated":
        from orchestrator.simulation import ModelProfile, SimulatedModel

        opts = SimulatedOptions.model_validate(entry.options)
        caps = capabilities or ModelCapabilities(chat=True, supports_streaming=True)
        price = cost or ModelCost()
        profile = ModelProfile(
            entry.name,
            success_rate=opts.success_rate,
            latency_s=opts.latency_s,
            latency_sigma=opts.latency_sigma,
            input_per_million=price.input_per_million,
            output_per_million=price.output_per_million,
            output_tokens=opts.output_tokens,
            quality=opts.quality,
            quality_noise=opts.quality_noise,
            capabilities=tuple(caps.names()),
            context_length=caps.context_length or 128_000,
            speed=entry.speed,
        )
        return SimulatedModel(
            entry.name, profile, seed=opts.seed, sleep_scale=opts.sleep_scale,
            priced=entry.cost is not None,
        )  # fmt: skip
    cls = provider_class(entry.provider)
    kwargs: dict[str, Any] = dict(entry.options)
    for name in ("base_url", "model_id", "speed", "timeout"):
        value = getattr(entry, name)
        if value is not None:
            kwargs[name] = value
    if cost is not None:
        kwargs["cost"] = cost
    if capabilities is not None:
        kwargs["capabilities"] = capabilities
    if api_key is not None:
        kwargs["api_key"] = api_key
    model: Model = cls(name=entry.name, **kwargs)
    return model


def build_registry(loaded: LoadedConfig) -> ModelRegistry:
    """A registry with every model of a validated configuration."""
    from orchestrator.models.model_registry import ModelRegistry, RewardWeights

    config = loaded.config
    base = loaded.path.parent if loaded.path is not None else None
    try:
        cache = build_cache(config.cache, base)
    except ConfigError:
        raise
    except Exception as exc:
        raise loaded.error(("cache",), f"cannot create the cache: {exc}") from None
    registry = ModelRegistry(
        model_selector=build_selector(config.selection),
        health_monitor=build_health_monitor(config.health),
        health_check_interval=config.health.check_interval,
        cache_responses=cache if cache is not None else False,
        reward_weights=RewardWeights(**config.selection.reward.model_dump()),
        pending_timeout=config.selection.pending_timeout,
        state=config.server.state,
        state_namespace=config.server.state_namespace,
    )
    for i, entry in enumerate(config.models):
        api_key = None
        if entry.api_key_env is not None:
            api_key = os.environ.get(entry.api_key_env) or None
            if api_key is None:
                if entry.optional:
                    loaded.notes.append(f"skipped {entry.name}: {entry.api_key_env} is not set")
                    logger.info("skipping %s: %s is not set", entry.name, entry.api_key_env)
                    continue
                raise loaded.error(
                    ("models", i, "api_key_env"),
                    f"environment variable {entry.api_key_env} is not set; export it "
                    f"(export {entry.api_key_env}=...) or mark the model optional = true",
                )
        try:
            model = build_model(entry, api_key)
        except ConfigError as exc:
            raise loaded.error(("models", i, "provider"), exc.problem) from None
        except (TypeError, ValueError) as exc:
            raise loaded.error(("models", i), f"cannot create {entry.name!r}: {exc}") from None
        registry.register_model(model)
    if not len(registry):
        raise loaded.error(("models",), "no model could be registered; set the missing keys")
    return registry


def registry_from_config(path: Union[str, os.PathLike[str]]) -> ModelRegistry:
    """Build a :class:`ModelRegistry` from a TOML configuration file."""
    return build_registry(load_config(path))


# ----- the environment, when there is no file --------------------------------------------

#: provider -> (key variables, default model name) for environment discovery.
ENV_PROVIDERS: dict[str, tuple[tuple[str, ...], str]] = {
    "openai": (("OPENAI_API_KEY",), "gpt-4o-mini"),
    "anthropic": (("ANTHROPIC_API_KEY",), "claude-3-5-haiku-20241022"),
    "google": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini-2.0-flash"),
}
OLLAMA_DEFAULT_HOST = "http://localhost:11434"


def _ollama_models(host: str, timeout: float = 0.5) -> Optional[list[str]]:
    """Names of the models a local Ollama serves, or ``None`` if it does not answer."""
    import httpx

    try:
        response = httpx.get(f"{host.rstrip('/')}/api/tags", timeout=timeout)
        response.raise_for_status()
        tags = response.json().get("models", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return [str(t["name"]) for t in tags if isinstance(t, dict) and "name" in t]


def discover_environment() -> LoadedConfig:
    """A configuration of the providers whose keys or hosts are in the
    environment. ``notes`` says what was found and what is missing."""
    entries: list[ModelEntry] = []
    notes: list[str] = []
    for provider, (variables, name) in ENV_PROVIDERS.items():
        found = next((v for v in variables if os.environ.get(v)), None)
        if found:
            entries.append(ModelEntry(provider=provider, name=name, api_key_env=found))
            notes.append(f"{provider}: using {name} ({found} is set)")
        else:
            notes.append(f"{provider}: skipped, set {' or '.join(variables)}")
    host = os.environ.get("OLLAMA_HOST") or OLLAMA_DEFAULT_HOST
    if not host.startswith(("http://", "https://")):
        host = f"http://{host}"
    names = _ollama_models(host)
    if names is None:
        notes.append(
            f"ollama: skipped, nothing answers at {host} (start Ollama or set OLLAMA_HOST)"
        )
    elif not names:
        notes.append(f"ollama: {host} answers but has no models (ollama pull llama3.2)")
    else:
        for name in names:
            entries.append(ModelEntry(provider="ollama", name=name, base_url=host))
        notes.append(f"ollama: {len(names)} model(s) at {host}")
    return LoadedConfig(OrchestratorConfig(models=entries), None, "", notes)
