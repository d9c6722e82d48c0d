"""Explanations: why a request would go to one model, candidate by candidate.

Built from the core's :class:`~orchestrator._core.Explanation`, which is
taken in one snapshot of the table (so it is consistent while other threads
register, unregister, select and report) and changes nothing: no random
draw, no ticket. For Thompson sampling the scores shown are the draws the
next selection will use, so ``chosen`` is the top score (or a forced trial),
unless the request's ``session_id`` keeps its model (``session`` says so).
Under the contextual strategy an eligible candidate's ``estimate`` is its
predicted quality for the prompt, ``exploration_bonus`` the exploration
rule's change to it (the Thompson draw), and ``score`` that quality minus
expected cost / willingness to pay, the value the selection maximises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from orchestrator import _core
from orchestrator.core.model import ModelConstraints

__all__ = ["CandidateExplanation", "SelectionExplanation", "explanation_of"]


@dataclass(frozen=True)
class CandidateExplanation:
    """One model's verdict for a request."""

    name: str
    provider: str
    eligible: bool
    constraint: Optional[str] = None
    reason: Optional[str] = None
    estimate: Optional[float] = None
    exploration_bonus: Optional[float] = None
    score: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    trials: int = 0
    pending: int = 0
    forced: bool = False
    expected_cost: Optional[float] = None
    uncertainty: Optional[float] = None
    """Contextual strategy: the standard deviation of the predicted quality (``estimate``)."""
    observations: Optional[int] = None
    """Contextual strategy: outcomes the model's quality predictor was trained on."""
    top_features: tuple[tuple[str, float], ...] = ()
    """Contextual strategy: the prompt features that moved the prediction most, with
    their contribution to its logit (positive raises the predicted quality)."""

    def describe(self) -> str:
        if not self.eligible:
            return f"{self.name}: rejected by {self.constraint} ({self.reason})"
        cost = "unpriced" if self.expected_cost is None else f"${self.expected_cost:.6f}"
        if self.uncertainty is not None:
            features = ", ".join(f"{name} {logit:+.2f}" for name, logit in self.top_features)
            return (
                f"{self.name}: value {self.score:.4f}; predicted quality {self.estimate:.3f} "
                f"± {self.uncertainty:.3f} (exploration {self.exploration_bonus:+.3f}) "
                f"from {self.observations} observations, cost {cost}"
                + (f"; features {features}" if features else "")
            )
        if self.forced:
            return f"{self.name}: forced trial ({self.trials} outcomes so far), cost {cost}"
        return (
            f"{self.name}: score {self.score:.4f} = estimate {self.estimate:.4f} "
            f"+ bonus {self.exploration_bonus:.4f}; "
            f"CI [{self.ci_low:.3f}, {self.ci_high:.3f}] over {self.trials} outcomes, "
            f"{self.pending} pending, cost {cost}"
        )


@dataclass(frozen=True)
class SelectionExplanation:
    """Why a request would go to ``chosen``: every candidate's verdict.
    ``retry_in``: when no model is chosen, seconds until the first model
    rejected for its health (open circuit, provider's ``Retry-After``) or its
    rate limit (``rpm``/``tpm`` window, provider's reported allowance) may be
    tried again. ``session``: what the request's ``session_id`` means for the
    pick (``"session: kept on m (bound 12 s ago)"``, ``"session: moved from m
    (circuit open, ...)"``, or new); ``None`` without a session."""

    strategy: str
    constraints: ModelConstraints
    chosen: Optional[str]
    candidates: list[CandidateExplanation]
    all_breakers_open: bool = False
    retry_in: Optional[float] = None
    session: Optional[str] = None

    def __str__(self) -> str:
        head = f"strategy {self.strategy}: " + (
            f"chose {self.chosen}" if self.chosen else "no eligible model"
        )
        if self.all_breakers_open:
            head += " (every eligible model's circuit is open; probing the soonest to recover)"
        if self.session is not None:
            head += f"; {self.session}"
        return "\n".join([head, *("  " + c.describe() for c in self.candidates)])


def explanation_of(
    core_explanation: _core.Explanation,
    strategy: str,
    request: _core.Request,
    chooses: bool = True,
) -> SelectionExplanation:
    """A :class:`SelectionExplanation` from the core's snapshot. ``chooses``
    is False for user-written selectors, whose pick the core cannot know."""
    candidates = []
    for row in core_explanation.rows():
        model = row.pop("model")
        top_features = tuple(row.pop("top_features", ()))
        candidates.append(
            CandidateExplanation(provider=model.provider, top_features=top_features, **row)
        )
    chosen = core_explanation.chosen
    return SelectionExplanation(
        strategy=strategy,
        constraints=ModelConstraints.of(request),
        chosen=chosen.name if chosen is not None and chooses else None,
        candidates=candidates,
        all_breakers_open=core_explanation.all_breakers_open,
        retry_in=core_explanation.retry_in,
        session=core_explanation.session,
    )
