"""Prompt-aware routing: pick the model by what is asked.

The Rust core turns a prompt into hashed word n-gram and structure features
(``FEATURIZER_VERSION``), predicts each model's quality for it with a
per-model Bayesian logistic model, and chooses the model that maximises
expected quality − expected cost / ``willingness_to_pay``. The router learns
online from reported qualities (also delayed, by request id) and is
calibrated in batch from an evaluation table.
"""

from orchestrator._core import DEFAULT_WILLINGNESS_TO_PAY, FEATURIZER_VERSION
from orchestrator.routing.router import (
    ContextualRouter,
    Decision,
    FeatureEffect,
    ModelExplanation,
    ModelPrediction,
)
from orchestrator.routing.selector import ContextualSelector

__all__ = [
    "DEFAULT_WILLINGNESS_TO_PAY",
    "FEATURIZER_VERSION",
    "ContextualRouter",
    "ContextualSelector",
    "Decision",
    "FeatureEffect",
    "ModelExplanation",
    "ModelPrediction",
]
