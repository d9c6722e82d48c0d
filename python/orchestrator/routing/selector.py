"""``ContextualSelector``: the hyper-parameters of prompt-aware routing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from orchestrator._core import DEFAULT_WILLINGNESS_TO_PAY

Exploration = Literal["thompson", "ucb", "greedy"]


@dataclass(frozen=True)
class ContextualSelector:
    """Settings of a :class:`~orchestrator.routing.ContextualRouter`.

    The featurizer hashes word n-grams up to ``word_ngrams`` (and, when
    ``char_ngrams`` > 0, character n-grams of that length inside words) into
    ``2**hash_bits`` buckets; ``embedding_dim`` reserves room for a caller's
    dense embedding. Each model's weights have a Gaussian prior of precision
    ``prior_precision``; ``calibrate`` runs ``epochs`` AdaGrad passes with
    step ``learning_rate``. ``exploration`` is how online decisions use the
    uncertainty (Thompson sampling, UCB with ``exploration_weight`` standard
    deviations, or greedy). Decisions accept delayed feedback for
    ``feedback_ttl_s`` seconds, for at most ``max_pending`` decisions.
    Memory: 8 bytes × models × 2**hash_bits.
    """

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
    willingness_to_pay: float = DEFAULT_WILLINGNESS_TO_PAY

    def __post_init__(self) -> None:
        wtp = self.willingness_to_pay
        if isinstance(wtp, bool) or not isinstance(wtp, (int, float)) or not wtp > 0:
            raise ValueError(f"invalid willingness_to_pay: {wtp!r} (must be a number > 0)")

    def core_options(self) -> dict[str, Any]:
        """The keyword arguments of ``_core.ContextualRouter``."""
        options = asdict(self)
        del options["willingness_to_pay"]
        return options
