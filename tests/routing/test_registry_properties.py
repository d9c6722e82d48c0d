"""Property tests of the contextual registry's scores (issue 13: "finite, in
range, constraints honoured"), at the registry rather than the standalone
router: for any fleet (prices, capabilities, tags), any calibration, any
prompt and any request (``max_cost``, a required capability, exclusions,
tags, ``willingness_to_pay``), the eligible models are exactly those a
brute-force filter admits, their scores are finite and every other one's is
``-inf``, predicted qualities are probabilities with bounded uncertainty,
and the selection is the explanation's choice, among the eligible, or
``NoEligibleModelsError`` exactly when none is."""

from __future__ import annotations

import math
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.model import ModelCapabilities, ModelCost
from orchestrator.errors import NoEligibleModelsError
from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)

#: Tokens a request is priced at when it names none (100 in, 100 out).
DEFAULT_TOKENS = 200
TAGS = ["eu", "us"]

fleets = st.lists(
    st.tuples(
        st.floats(0.01, 200.0),  # USD per million tokens, in and out
        st.booleans(),  # has "chat"
        st.sets(st.sampled_from(TAGS)),
    ),
    min_size=1,
    max_size=12,
)
requests = st.fixed_dictionaries(
    {
        "prompt": st.one_of(st.none(), st.text(max_size=300)),
        "max_cost": st.one_of(st.none(), st.floats(1e-6, 0.05)),
        "chat": st.booleans(),
        "exclude": st.sets(st.integers(0, 11), max_size=4),
        "tags": st.sets(st.sampled_from(TAGS)),
        "willingness_to_pay": st.one_of(st.none(), st.floats(1e-9, 1e6)),
    }
)


def build(fleet: list[tuple[float, bool, set[str]]], qualities: list[float]) -> ModelRegistry:
    registry = ModelRegistry(model_selector=ContextualSelector(hash_bits=10, seed=3))
    for i, (price, chat, tags) in enumerate(fleet):
        registry.register_model(
            ScriptedModel(
                f"m{i}",
                capabilities=ModelCapabilities(chat=chat),
                cost=ModelCost(input_per_million=price, output_per_million=price),
                tags=sorted(tags),
            )
        )
    prompts = ["what is 2+2", "prove the theorem", "write a sorting function", "bonjour"]
    table = {
        f"m{i}": [qualities[(i + k) % len(qualities)] for k in range(len(prompts))]
        for i in range(len(fleet))
    }
    registry.calibrate(prompts, table)
    return registry


def admitted(fleet: list[tuple[float, bool, set[str]]], request: dict[str, Any]) -> set[str]:
    """The brute-force filter: what a request's constraints leave eligible."""
    names = set()
    for i, (price, chat, tags) in enumerate(fleet):
        cost = price * DEFAULT_TOKENS / 1e6
        if request["max_cost"] is not None and cost > request["max_cost"]:
            continue
        if request["chat"] and not chat:
            continue
        if i in request["exclude"] or not request["tags"] <= tags:
            continue
        names.add(f"m{i}")
    return names


def constraints(request: dict[str, Any]) -> dict[str, Any]:
    wtp: Optional[float] = request["willingness_to_pay"]
    return {
        "prompt": request["prompt"],
        "max_cost": request["max_cost"],
        "capabilities": ["chat"] if request["chat"] else None,
        "exclude_models": [f"m{i}" for i in sorted(request["exclude"])],
        "tags": sorted(request["tags"]),
        "willingness_to_pay": wtp,
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fleet=fleets,
    qualities=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    request=requests,
)
def test_contextual_scores_are_finite_in_range_and_honour_the_constraints(
    fleet: list[tuple[float, bool, set[str]]], qualities: list[float], request: dict[str, Any]
) -> None:
    registry = build(fleet, qualities)
    request["exclude"] = {i for i in request["exclude"] if i < len(fleet)}  # registered ones
    asked = constraints(request)
    expected = admitted(fleet, request)
    names, scores = registry.scores(**asked)
    eligible = {name for name, score in zip(names, scores) if score != -math.inf}
    assert eligible == expected
    assert all(math.isfinite(s) for name, s in zip(names, scores) if name in eligible)
    explained = registry.explain_selection(**asked)
    for candidate in explained.candidates:
        assert candidate.eligible == (candidate.name in expected), candidate
        if candidate.eligible:
            assert candidate.estimate is not None and 0.0 <= candidate.estimate <= 1.0
            assert candidate.uncertainty is not None and 0.0 <= candidate.uncertainty <= 0.5
            assert candidate.score is not None and math.isfinite(candidate.score)
    if not expected:
        assert explained.chosen is None
        with pytest.raises(NoEligibleModelsError):
            registry.select(**asked)
        return
    selection = registry.select(**asked)
    assert selection.model.name == explained.chosen
    assert selection.model.name in expected
    assert registry.report_quality(selection.request_id or 0, qualities[0]) is not None
