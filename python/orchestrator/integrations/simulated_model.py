"""A model that answers from a simulated truth, with no network (provider ``simulated``).

:class:`ModelProfile` is one simulated model: success probability, a lognormal
latency (median ``latency_s``, shape ``latency_sigma``), prices per million tokens,
a lognormal output length and a quality score in [0, 1]. :class:`SimulatedModel`
answers from it; ``orchestrator.simulation`` builds whole scenarios from profiles.
It lives with the other providers so configuration resolves ``simulated`` the same
way, by module name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import ServerError

__all__ = ["ModelProfile", "SimulatedModel"]


@dataclass(frozen=True)
class ModelProfile:
    """The truth of one simulated model (before any change a scenario makes to it)."""

    name: str
    success_rate: float = 0.98
    latency_s: float = 1.0
    latency_sigma: float = 0.35
    input_per_million: float = 1.0
    output_per_million: float = 2.0
    output_tokens: float = 300.0
    quality: float = 0.8
    quality_noise: float = 0.08
    capabilities: tuple[str, ...] = ("text_generation", "chat", "supports_streaming")
    context_length: int = 128_000
    speed: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.success_rate <= 1.0:
            raise ValueError(f"{self.name}: success_rate must be in [0, 1]")
        if self.latency_s <= 0 or self.latency_sigma < 0 or self.output_tokens <= 0:
            raise ValueError(f"{self.name}: latency_s and output_tokens must be > 0")
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"{self.name}: quality must be in [0, 1]")

    @property
    def cost(self) -> ModelCost:
        return ModelCost(
            input_per_million=self.input_per_million, output_per_million=self.output_per_million
        )

    @property
    def model_capabilities(self) -> ModelCapabilities:
        flags = {name: True for name in self.capabilities}
        return ModelCapabilities(context_length=self.context_length, **flags)


class SimulatedModel(Model):
    """A model that answers from its :class:`ModelProfile`, with no network.

    Calls fail with probability ``1 - success_rate``; ``sleep_scale`` scales
    the simulated latency into a real ``asyncio.sleep`` (0: no sleeping).
    """

    def __init__(
        self,
        name: str,
        profile: Optional[ModelProfile] = None,
        *,
        seed: int = 0,
        sleep_scale: float = 0.0,
        priced: bool = True,
        rpm: Optional[int] = None,
        tpm: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        deployment: Optional[str] = None,
    ) -> None:
        profile = replace(profile, name=name) if profile else ModelProfile(name)
        super().__init__(
            name,
            "simulated",
            profile.model_capabilities,
            profile.cost if priced else None,
            speed=profile.speed,
            rpm=rpm,
            tpm=tpm,
            tags=tags,
            deployment=deployment,
        )
        self.profile = profile
        self.sleep_scale = float(sleep_scale)
        self._rng = np.random.default_rng(seed)

    def _draw(self, prompt: Prompt) -> tuple[str, int, float]:
        p = self.profile
        latency = float(p.latency_s * np.exp(p.latency_sigma * self._rng.standard_normal()))
        if self._rng.random() >= p.success_rate:
            raise ServerError("simulated failure", model=self.name, status_code=503)
        tokens = max(1, round(p.output_tokens * float(np.exp(0.4 * self._rng.standard_normal()))))
        text = prompt if isinstance(prompt, str) else str(prompt[-1].get("content", ""))
        answer = (
            f"[{self.name}] simulated answer to {text[:60]!r}: quality {p.quality:.2f}, "
            f"{tokens} tokens, {latency:.2f}s."
        )
        return answer, tokens, latency

    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        """A simulated answer (or a :class:`ServerError`)."""
        answer, tokens, latency = self._draw(prompt)
        if self.sleep_scale > 0:
            await asyncio.sleep(latency * self.sleep_scale)
        Model.record_usage(output_tokens=tokens)
        return answer

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        """The simulated answer, word by word."""
        answer, tokens, latency = self._draw(prompt)
        words = answer.split(" ")
        for i, word in enumerate(words):
            if self.sleep_scale > 0:
                await asyncio.sleep(latency * self.sleep_scale / len(words))
            yield word if i == 0 else " " + word
        Model.record_usage(output_tokens=tokens)

    async def health_check(self) -> bool:
        return self.profile.success_rate > 0
