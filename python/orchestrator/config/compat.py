"""The registry built in one call, for callers written before
:func:`~orchestrator.config.registry_parts` (the CLI). This is the only module
of :mod:`orchestrator.config` that imports the registry, and the package
loads it only when one of its names is asked for; it goes away once
``ModelRegistry.from_config`` and the CLI build from ``registry_parts``."""

from __future__ import annotations

import os
from typing import Union

from orchestrator.config.building import registry_parts
from orchestrator.config.loading import LoadedConfig, load_config
from orchestrator.models.model_registry import ModelRegistry


def build_registry(loaded: LoadedConfig) -> ModelRegistry:
    """A registry with every model of a validated configuration."""
    parts = registry_parts(loaded)
    registry = ModelRegistry(**parts.registry_kwargs())
    for model in parts.models:
        registry.register_model(model)
    return registry


def registry_from_config(path: Union[str, os.PathLike[str]]) -> ModelRegistry:
    """Build a :class:`ModelRegistry` from a TOML configuration file."""
    return build_registry(load_config(path))
