"""Evaluate a router on an evaluation table, the way RouteLLM evaluates its own.

``load_table`` reads a CSV (a ``prompt`` column and one quality column per
model), ``evaluate`` runs the ``calibrated`` (K-fold) or ``online`` (bandit
feedback, single pass) protocol over operating points of
``willingness_to_pay`` and returns the curve, APGR, CPT(50%)/CPT(80%), a
random router's APGR and every decision. ``command.run_eval`` is the
``orchestrator eval`` command.
"""

from orchestrator.evaluation.metrics import (
    CurvePoint,
    Reference,
    apgr,
    call_to_best_for_recovery,
    curve_point,
    random_router_apgr,
)
from orchestrator.evaluation.protocol import EvalResult, evaluate
from orchestrator.evaluation.table import EvalError, EvalTable, load_table

__all__ = [
    "CurvePoint",
    "EvalError",
    "EvalResult",
    "EvalTable",
    "Reference",
    "apgr",
    "call_to_best_for_recovery",
    "curve_point",
    "evaluate",
    "load_table",
    "random_router_apgr",
]
