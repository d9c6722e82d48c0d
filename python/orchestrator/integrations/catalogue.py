"""The built-in model catalogue: context windows, capabilities, list prices and
typical speeds of known models, read from ``catalogue.json`` beside this file.

A known name fills in what the user left out; an unknown name gets nothing
invented: no price (the model is unpriced unless the user passes a
:class:`~orchestrator.core.model.ModelCost`), a context length of 0 (unknown).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from orchestrator.core.model import ModelCapabilities, ModelCost

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")


@dataclass(frozen=True)
class CatalogueEntry:
    """One known model. ``model_id`` is the id its API expects (aliases resolve to it)."""

    provider: str
    model_id: str
    context_length: int
    max_output_tokens: Optional[int]
    capabilities: tuple[str, ...]
    input_per_million: Optional[float]
    output_per_million: Optional[float]
    tokens_per_second: Optional[float]

    def model_capabilities(self) -> ModelCapabilities:
        """The entry as :class:`ModelCapabilities`."""
        flags = {name: True for name in self.capabilities}
        flags.setdefault("text_generation", "embeddings" not in self.capabilities)
        return ModelCapabilities(
            **flags, context_length=self.context_length, max_tokens=self.max_output_tokens
        )

    def model_cost(self) -> Optional[ModelCost]:
        """The list price, or ``None`` when the catalogue has none."""
        if self.input_per_million is None or self.output_per_million is None:
            return None
        return ModelCost(
            input_per_million=self.input_per_million, output_per_million=self.output_per_million
        )


@functools.lru_cache(maxsize=1)
def _load() -> tuple[str, dict[str, dict[str, CatalogueEntry]]]:
    raw: dict[str, Any] = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    index: dict[str, dict[str, CatalogueEntry]] = {}
    for provider, models in raw["providers"].items():
        names: dict[str, CatalogueEntry] = {}
        for model_id, spec in models.items():
            tps = spec.get("tokens_per_second")
            entry = CatalogueEntry(
                provider=provider,
                model_id=model_id,
                context_length=int(spec.get("context_length") or 0),
                max_output_tokens=spec.get("max_output_tokens"),
                capabilities=tuple(spec.get("capabilities", ())),
                input_per_million=spec.get("input_per_million"),
                output_per_million=spec.get("output_per_million"),
                tokens_per_second=None if tps is None else float(tps),
            )
            for name in (model_id, *spec.get("aliases", ())):
                names[name.lower()] = entry
        index[provider] = names
    return str(raw.get("prices_as_of", "")), index


def prices_as_of() -> str:
    """The date the catalogue's prices were taken (ISO 8601)."""
    return _load()[0]


def lookup(provider: str, name: str) -> Optional[CatalogueEntry]:
    """The entry for ``name`` (a model id or alias, case-insensitive, a
    ``models/`` prefix ignored) of ``provider``, or ``None`` if unknown."""
    key = name.strip().lower()
    key = key.removeprefix("models/")
    return _load()[1].get(provider, {}).get(key)


def known_models(provider: str) -> list[str]:
    """The model ids the catalogue knows for ``provider``."""
    return sorted({e.model_id for e in _load()[1].get(provider, {}).values()})


@dataclass(frozen=True)
class Resolved:
    """What an adapter registers: the API's model id, capabilities, cost, speed."""

    model_id: str
    capabilities: ModelCapabilities
    cost: Optional[ModelCost]
    speed: Optional[float]
    known: bool


def resolve(
    provider: str,
    name: str,
    *,
    model_id: Optional[str],
    capabilities: Optional[ModelCapabilities],
    cost: Optional[ModelCost],
    speed: Optional[float],
    default_capabilities: ModelCapabilities,
    default_cost: Optional[ModelCost] = None,
    use_alias_id: bool = True,
) -> Resolved:
    """Merge the user's arguments over the catalogue entry of ``model_id or name``:
    what the user gave wins; what neither gives stays unknown (no invented price)."""
    entry = lookup(provider, model_id or name)
    if model_id is None:
        model_id = entry.model_id if entry is not None and use_alias_id else name
    if entry is None:
        return Resolved(
            model_id,
            capabilities or default_capabilities,
            cost if cost is not None else default_cost,
            speed,
            False,
        )
    return Resolved(
        model_id,
        capabilities or entry.model_capabilities(),
        cost if cost is not None else entry.model_cost(),
        speed if speed is not None else entry.tokens_per_second,
        True,
    )
