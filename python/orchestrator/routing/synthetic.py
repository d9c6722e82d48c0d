"""A synthetic prompt mix with planted rules, for tests, benchmarks and the
``prompt_mix`` simulation scenario.

Four kinds of prompt, each generated from templates with random fillers:
math word problems, casual chat, code requests and translation requests.
Three models: ``small`` (cheap) is good at chat only, ``coder`` (mid price)
is good at code, ``large`` (expensive) is good at everything, but no better
than ``coder`` at code. Each quality is a Bernoulli draw with the
kind's success probability, so even a perfect router sees noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MODEL_COSTS: dict[str, float] = {"small": 0.0002, "coder": 0.002, "large": 0.02}
"""USD per call of each synthetic model."""

SUCCESS: dict[str, dict[str, float]] = {
    "math": {"small": 0.2, "coder": 0.45, "large": 0.9},
    "chat": {"small": 0.9, "coder": 0.75, "large": 0.95},
    "code": {"small": 0.15, "coder": 0.85, "large": 0.85},
    "translation": {"small": 0.4, "coder": 0.35, "large": 0.9},
}
"""Probability that each model answers each kind of prompt well."""

_NAMES = ["Ana", "Bo", "Chen", "Dario", "Eve", "Farid", "Grace", "Hiro"]
_ITEMS = ["apples", "tickets", "marbles", "books", "coins", "boxes"]
_TOPICS = ["the weather", "your weekend", "a good movie", "coffee", "my cat", "music"]
_TASKS = ["parse a CSV file", "reverse a linked list", "merge two sorted lists", "retry a request"]
_LANGUAGES = ["Python", "Rust", "Go", "TypeScript"]
_SENTENCES = ["Where is the station?", "I would like a coffee.", "The meeting moved to noon."]
_TARGETS = ["français", "español", "日本語", "Deutsch"]


def prompt_of(kind: str, rng: random.Random) -> str:
    """One prompt of ``kind``."""
    if kind == "math":
        a, b, c = rng.randint(3, 99), rng.randint(2, 30), rng.randint(2, 9)
        return (
            f"{rng.choice(_NAMES)} has {a} {rng.choice(_ITEMS)} and buys {b} more, then "
            f"shares them equally among {c} friends. How many does each friend get, and "
            "how many are left over? Show your reasoning."
        )
    if kind == "chat":
        return f"Hey! What do you think about {rng.choice(_TOPICS)}? Just chatting."
    if kind == "code":
        return (
            f"Write a {rng.choice(_LANGUAGES)} function to {rng.choice(_TASKS)}.\n"
            "```\n# your code here\n```"
        )
    return f"Translate into {rng.choice(_TARGETS)}: {rng.choice(_SENTENCES)}"


@dataclass(frozen=True)
class PromptMix:
    prompts: list[str]
    kinds: list[str]
    qualities: dict[str, list[float]]
    costs: dict[str, float]


def prompt_mix(rows: int, seed: int = 0) -> PromptMix:
    """``rows`` prompts of the four kinds in equal shares, with each model's drawn quality."""
    rng = random.Random(seed)
    kinds = [rng.choice(list(SUCCESS)) for _ in range(rows)]
    prompts = [prompt_of(kind, rng) for kind in kinds]
    qualities = {
        model: [1.0 if rng.random() < SUCCESS[kind][model] else 0.0 for kind in kinds]
        for model in MODEL_COSTS
    }
    return PromptMix(prompts, kinds, qualities, dict(MODEL_COSTS))
