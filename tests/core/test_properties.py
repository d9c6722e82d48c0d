"""Properties over random registries and requests (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import _core
from orchestrator.core.model import CAPABILITY_NAMES, ModelCapabilities, ModelCost
from orchestrator.models.model_registry import ModelRegistry, NoEligibleModelsError
from tests.conftest import ScriptedModel

model_specs = st.lists(
    st.tuples(
        st.sets(st.sampled_from(CAPABILITY_NAMES), max_size=4),
        st.integers(min_value=0, max_value=200_000),
        st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
        st.one_of(st.none(), st.floats(min_value=0, max_value=500)),
    ),
    min_size=1,
    max_size=12,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "capabilities": st.lists(st.sampled_from(CAPABILITY_NAMES), max_size=3),
        "max_cost": st.floats(min_value=0, max_value=0.2),
        "min_speed": st.floats(min_value=0, max_value=400),
        "context_length": st.integers(min_value=1, max_value=150_000),
    },
)
outcomes = st.lists(
    st.tuples(st.booleans(), st.floats(min_value=0, max_value=60), st.integers(0, 4000)),
    max_size=40,
)


def build(specs: list[tuple[set[str], int, float | None, float | None]]) -> ModelRegistry:
    registry = ModelRegistry()
    for i, (caps, context, price, speed) in enumerate(specs):
        registry.register_model(
            ScriptedModel(
                f"m{i}",
                capabilities=ModelCapabilities(context_length=context, **{c: True for c in caps}),
                cost=None
                if price is None
                else ModelCost(input_per_million=price, output_per_million=2 * price),
                speed=speed,
            )
        )
    return registry


def satisfies(registry: ModelRegistry, name: str, request: dict[str, object]) -> bool:
    model = registry.get_model(name)
    caps = model.capabilities
    if not all(getattr(caps, c) for c in request.get("capabilities", [])):  # type: ignore[attr-defined]
        return False
    if "context_length" in request and caps.context_length < request["context_length"]:  # type: ignore[operator]
        return False
    max_cost = request.get("max_cost")
    if max_cost is not None and (
        model.cost is None
        or model.cost.price(_core.DEFAULT_INPUT_TOKENS, _core.DEFAULT_OUTPUT_TOKENS) > max_cost
    ):  # type: ignore[operator]
        return False
    if "min_speed" in request:
        speed = registry.get_metrics(name).tokens_per_second or model.speed
        if speed is None or speed < request["min_speed"]:  # type: ignore[operator]
            return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_specs, requests, outcomes)
def test_selection_never_violates_a_constraint_and_counts_are_conserved(
    specs: list[tuple[set[str], int, float | None, float | None]],
    request: dict[str, object],
    history: list[tuple[bool, float, int]],
) -> None:
    registry = build(specs)
    reported = 0
    for success, latency, tokens in history:
        try:
            selection = registry.select(**request)  # type: ignore[arg-type]
        except NoEligibleModelsError as exc:
            assert not any(satisfies(registry, m.name, request) for m in registry)
            assert set(exc.reasons) == {m.name for m in registry}
            break
        assert satisfies(registry, selection.model.name, request)
        registry.report_outcome(
            selection,
            success,
            latency,
            output_tokens=tokens,
            error_class="none" if success else "server_error",
        )
        reported += 1
    stats = registry.statistics()
    assert int(np.sum(stats["trials"])) == reported
    assert int(np.sum(stats["pending"])) == 0
    assert int(np.sum(stats["successes"] + stats["failures"])) == reported
    _, scores = registry.scores(**request)  # type: ignore[arg-type]
    assert not np.isnan(scores).any()
    for row in registry.explain_selection(**request).candidates:  # type: ignore[arg-type]
        if row.eligible:
            values = [row.estimate, row.ci_low, row.ci_high]
            # A forced trial's bonus and score are +inf: it outranks every score.
            ranking = [row.score, row.exploration_bonus]
            values += [] if row.forced else ranking
            assert all(v is not None and math.isfinite(v) for v in values)
            assert not row.forced or ranking == [math.inf, math.inf]
