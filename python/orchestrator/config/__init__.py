"""TOML configuration: models, selection strategy, cache, health and shared
state settings.

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

    [state]                     # optional: share statistics through Redis
    url_env = "ORCHESTRATOR_STATE_URL"

    [[models]]
    provider = "openai"
    name = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"   # the NAME of the variable, never the key
    cost = { input_per_million = 0.15, output_per_million = 0.60 }
    capabilities = ["text_generation", "chat"]
    tags = ["us"]                    # a request's tags=[...] must all be here
    deployment = "openai"            # optional: registered as "gpt-4o-mini@openai"

    [[aliases]]                     # optional: select_model(alias="cheap")
    name = "cheap"
    models = ["gpt-4o-mini"]         # model names (all deployments) or name@deployment

:func:`load_config` reads a file (refusing non-regular, oversized and deeply
nested ones), checks every value (types strictly, numbers finite and within
the documented ranges of :mod:`orchestrator.config.schema`, enumerations with
"did you mean", credentials refused wherever they appear) and raises one
:class:`ConfigError` whose ``problems`` list every problem as ``file:line:
key: problem``. :func:`registry_parts` builds the selector, health monitor,
cache, shared-state settings and models as a :class:`RegistryParts`, without
importing the registry; providers are resolved through one table
(:data:`PROVIDERS`). :func:`discover_environment` builds a configuration from
the keys and hosts in the environment when there is no file.
"""

from __future__ import annotations

from orchestrator.config.building import (
    PROVIDERS,
    Provider,
    RegistryParts,
    build_cache,
    build_health_monitor,
    build_model,
    build_selector,
    model_kwargs,
    provider_class,
    registry_parts,
    state_url_of,
)
from orchestrator.config.environment import ENV_PROVIDERS, discover_environment
from orchestrator.config.errors import ConfigError, ConfigProblem
from orchestrator.config.loading import DEFAULT_CONFIG_NAME, LoadedConfig, load_config, parse_config
from orchestrator.config.reading import MAX_CONFIG_BYTES, MAX_NESTING, key_lines
from orchestrator.config.schema import (
    CacheSection,
    CostEntry,
    HealthSection,
    ModelEntry,
    OrchestratorConfig,
    RewardSection,
    SelectionSection,
    SimulatedOptions,
    StateSection,
)

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "ENV_PROVIDERS",
    "MAX_CONFIG_BYTES",
    "MAX_NESTING",
    "PROVIDERS",
    "CacheSection",
    "ConfigError",
    "ConfigProblem",
    "CostEntry",
    "HealthSection",
    "LoadedConfig",
    "ModelEntry",
    "OrchestratorConfig",
    "Provider",
    "RegistryParts",
    "RewardSection",
    "SelectionSection",
    "SimulatedOptions",
    "StateSection",
    "build_cache",
    "build_health_monitor",
    "build_model",
    "build_selector",
    "discover_environment",
    "key_lines",
    "load_config",
    "model_kwargs",
    "parse_config",
    "provider_class",
    "registry_parts",
    "state_url_of",
]
