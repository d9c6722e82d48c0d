"""Registration, selection, explanation and reporting through the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.core.model import Model, ModelCapabilities, ModelConstraints, ModelCost
from orchestrator.models.model_registry import (
    CostBasedSelector,
    DuplicateModelError,
    ModelNotFoundError,
    ModelRegistry,
    ModelSelector,
    NoEligibleModelsError,
    PerformanceSelector,
)
from tests.conftest import ScriptedModel


def caps(*names: str, context_length: int = 8192) -> ModelCapabilities:
    flags = {n: True for n in names}
    return ModelCapabilities(context_length=context_length, **flags)


@pytest.fixture
def registry() -> ModelRegistry:
    r = ModelRegistry()
    r.register_model(
        ScriptedModel(
            "cheap",
            capabilities=caps("text_generation"),
            cost=ModelCost(input_per_million=0.1, output_per_million=0.2),
        )
    )
    r.register_model(
        ScriptedModel(
            "coder",
            capabilities=caps("text_generation", "code_generation", context_length=128000),
            cost=ModelCost(input_per_million=10, output_per_million=30),
            speed=40,
        )
    )
    r.register_model(ScriptedModel("unpriced", capabilities=caps("text_generation"), cost=None))
    return r


def test_register_get_list_and_unregister(registry: ModelRegistry) -> None:
    assert len(registry) == 3
    assert "coder" in registry
    assert [m.name for m in registry.list_models(capabilities=["code_generation"])] == ["coder"]
    assert [m.name for m in registry.list_models(provider="nobody")] == []
    removed = registry.unregister_model("coder")
    assert removed.name == "coder"
    assert "coder" not in registry
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(capabilities=["code_generation"])


def test_duplicate_and_empty_names_are_refused(registry: ModelRegistry) -> None:
    with pytest.raises(DuplicateModelError, match="'cheap' is already registered"):
        registry.register_model(ScriptedModel("cheap"))
    assert len(registry) == 3
    with pytest.raises(ValueError, match="invalid name: ''"):
        ScriptedModel("")
    with pytest.raises(TypeError, match="expected a Model"):
        registry.register_model("gpt-4")  # type: ignore[arg-type]


def test_get_model_suggests_close_names(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean 'coder'"):
        registry.get_model("codr")
    with pytest.raises(ModelNotFoundError, match="registry is empty"):
        ModelRegistry().get_model("gpt-4")


def test_select_honours_every_constraint(registry: ModelRegistry) -> None:
    assert registry.select_model(capabilities=["code_generation"]).name == "coder"
    assert registry.select_model(context_length=100_000).name == "coder"
    # max_cost is priced from the default request size: 100 in, 100 out.
    chosen = {registry.select_model(max_cost=0.001).name for _ in range(20)}
    assert chosen == {"cheap"}
    chosen = {registry.select_model(exclude_models=["cheap", "unpriced"]).name for _ in range(5)}
    assert chosen == {"coder"}
    assert registry.select_model(min_speed=90, exclude_models=["unpriced"]).name == "cheap"


def test_max_cost_uses_the_request_token_counts(registry: ModelRegistry) -> None:
    # coder: 100 in * $10/M + 10 out * $30/M = $0.0013
    chosen = registry.select_model(
        capabilities=["code_generation"], max_cost=0.002, input_tokens=100, output_tokens=10
    )
    assert chosen.name == "coder"
    with pytest.raises(NoEligibleModelsError):
        registry.select_model(capabilities=["code_generation"], max_cost=0.002)


def test_no_eligible_models_names_each_models_reason(registry: ModelRegistry) -> None:
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model(capabilities=["code_generation"], max_cost=0.0001)
    reasons = info.value.reasons
    assert reasons["cheap"].startswith("capabilities: lacks capabilities: code_generation")
    assert reasons["coder"].startswith("max_cost: expected cost $0.004000")
    assert reasons["unpriced"].startswith("capabilities:")
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select_model(max_cost=1.0, exclude_models=["cheap", "coder"])
    assert "has no known price" in info.value.reasons["unpriced"]
    with pytest.raises(NoEligibleModelsError, match="no models are registered"):
        ModelRegistry().select_model()


def test_explanation_breaks_scores_down(registry: ModelRegistry) -> None:
    for _ in range(12):
        registry.report_outcome(registry.select(exclude_models=["unpriced"]), True, 0.5)
    why = registry.explain_selection(exclude_models=["unpriced"])
    assert why.chosen in {"cheap", "coder"}
    rows = {c.name: c for c in why.candidates}
    assert rows["unpriced"].constraint == "exclude_models"
    for name in ("cheap", "coder"):
        row = rows[name]
        assert row.eligible and row.trials >= 5 and not row.forced
        assert row.score == pytest.approx(row.estimate + row.exploration_bonus)
        assert 0 <= row.ci_low <= row.estimate <= row.ci_high <= 1
    assert "score" in str(why) and "rejected by exclude_models" in str(why)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_cost": float("nan")}, "max_cost"),
        ({"max_cost": -1.0}, "max_cost"),
        ({"max_cost": float("inf")}, "max_cost"),
        ({"min_speed": -5.0}, "min_speed"),
        ({"context_length": 0}, "context_length"),
        ({"context_length": -10}, "context_length"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"capabilities": ["telepathy"]}, "telepathy"),
        ({"exclude_models": ["nobody"]}, "exclude_models"),
    ],
)
def test_bad_constraints_raise_value_errors_naming_the_field(
    registry: ModelRegistry, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        registry.select_model(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        registry.explain_selection(**kwargs)  # type: ignore[arg-type]


def test_unknown_capability_lists_the_known_ones(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="known capabilities: text_generation, code_generation"):
        registry.select_model(capabilities=["telepathy"])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"capabilities": "text_generation"}, "not a string"),
        ({"capabilities": [1]}, "invalid capabilities: 1 .a string is required"),
        ({"max_cost": "cheap"}, "invalid max_cost: 'cheap'"),
        ({"context_length": 1.5}, "invalid context_length: 1.5"),
        ({"exclude_models": [3]}, "invalid exclude_models: 3 .a string is required"),
    ],
)
def test_wrong_types_raise_type_errors(
    registry: ModelRegistry, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(TypeError, match=fragment):
        registry.select_model(**kwargs)  # type: ignore[arg-type]


def test_bad_reports_change_nothing(registry: ModelRegistry) -> None:
    selection = registry.select()
    with pytest.raises(TypeError, match="invalid latency: 'slow'"):
        registry.report_outcome(selection, True, "slow")  # type: ignore[arg-type]
    before = registry.get_metrics(selection.model.name)
    for bad in ({"latency": float("nan")}, {"latency": -1.0}, {"quality": 1.5}, {"cost": -2.0}):
        kwargs = {"latency": 0.1, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            registry.report_outcome(selection, True, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="error_class"):
        registry.report_outcome(selection, False, 0.1, error_class="gremlins")
    assert registry.get_metrics(selection.model.name) == before
    registry.report_outcome(selection, True, 0.1)
    with pytest.raises(ValueError, match="already reported"):
        registry.report_outcome(selection, True, 0.1)
    assert registry.get_metrics(selection.model.name).requests == before.requests + 1


def test_bad_model_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="input_per_million"):
        ModelCost(input_per_million=float("nan"))
    with pytest.raises(ValueError, match="output_per_million"):
        ModelCost(output_per_million=-1)
    with pytest.raises(ValueError, match="context_length"):
        ModelCapabilities(context_length=-1)
    with pytest.raises(ValueError, match="text_generation"):
        ModelCapabilities(text_generation="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid speed"):
        ScriptedModel("s", speed=float("nan"))
    with pytest.raises(ValueError, match="capabilities"):
        ModelConstraints(capabilities=["flying"])


def test_selectors_by_name_and_instance() -> None:
    assert ModelRegistry(selection_strategy="cost").strategy == "cost"
    assert ModelRegistry(model_selector=PerformanceSelector()).strategy == "performance"
    with pytest.raises(ValueError, match="invalid selection_strategy: 'best'"):
        ModelRegistry(selection_strategy="best")
    with pytest.raises(ValueError, match="conflicts"):
        ModelRegistry(selection_strategy="ucb", model_selector=CostBasedSelector())
    with pytest.raises(ValueError, match="exploration_factor"):
        from orchestrator.models.model_registry import UCBModelSelector

        UCBModelSelector(exploration_factor=-1)
    with pytest.raises(ValueError, match="confidence_level"):
        UCBModelSelector(confidence_level=1.5)
    with pytest.raises(ValueError, match="health_check_interval"):
        ModelRegistry(health_check_interval=-5)


def test_cost_based_selector_picks_the_cheapest(registry: ModelRegistry) -> None:
    r = ModelRegistry(model_selector=CostBasedSelector())
    for m in list(registry):
        registry.unregister_model(m.name)
        r.register_model(m)
    assert {r.select_model().name for _ in range(10)} == {"cheap"}


def test_user_written_selector_chooses_among_eligible(registry: ModelRegistry) -> None:
    class Alphabetical(ModelSelector):
        def choose(
            self, candidates: list[Model], constraints: ModelConstraints, registry: ModelRegistry
        ) -> Model:
            return sorted(candidates, key=lambda m: m.name)[-1]

    r = ModelRegistry(model_selector=Alphabetical())
    for m in list(registry):
        registry.unregister_model(m.name)
        r.register_model(m)
    assert r.select_model().name == "unpriced"
    assert r.select_model(exclude_models=["unpriced"]).name == "coder"


def test_batch_select_and_report(registry: ModelRegistry) -> None:
    selections = registry.select_many(30, exclude_models=["unpriced"])
    assert len(selections) == 30
    assert {s.model.name for s in selections} == {"cheap", "coder"}
    registry.report_many(selections, [True] * 30, [0.2] * 30, output_tokens=[50] * 30)
    stats = registry.statistics()
    total = float(np.sum(stats["trials"]))
    assert total == 30
    assert float(np.sum(stats["pending"])) == 0
    with pytest.raises(ValueError, match="successes"):
        registry.report_many(selections, [True], [0.2] * 30)


def test_scores_are_numpy_and_never_nan(registry: ModelRegistry) -> None:
    names, scores = registry.scores(capabilities=["code_generation"])
    assert names == ["cheap", "coder", "unpriced"]
    assert scores.dtype == np.float64
    assert not np.isnan(scores).any()
    assert math.isinf(scores[0]) and scores[0] < 0
    assert scores[1] == math.inf  # no outcome yet: a forced trial outranks every score


def test_outcome_pending_and_tickets_are_exact(registry: ModelRegistry) -> None:
    a = registry.select(exclude_models=["unpriced", "coder"])
    b = registry.select(exclude_models=["unpriced", "coder"])
    assert registry.get_metrics("cheap").pending == 2
    registry.report_outcome(a, True, 0.1)
    registry.report_outcome(b, False, 0.1, error_class="timeout")
    m = registry.get_metrics("cheap")
    assert (m.requests, m.successes, m.pending) == (2, 1, 0)
    assert m.failures_by_class == {"timeout": 1}


async def test_select_then_call_reports_under_the_ticket(registry: ModelRegistry) -> None:
    model = registry.select_model(exclude_models=["unpriced", "coder"])
    assert registry.get_metrics("cheap").pending == 1
    await model.generate_response("hello")
    m = registry.get_metrics("cheap")
    assert (m.requests, m.pending, m.input_tokens, m.output_tokens) == (1, 0, 10, 20)
    assert m.total_cost == pytest.approx(10 * 0.1e-6 + 20 * 0.2e-6)


async def test_a_model_in_two_registries_reports_to_both() -> None:
    model = ScriptedModel("shared")
    first, second = ModelRegistry(), ModelRegistry()
    first.register_model(model)
    second.register_model(model)
    await model.generate_response("x")
    assert first.get_metrics("shared").requests == 1
    assert second.get_metrics("shared").requests == 1
    second.unregister_model("shared")
    await model.generate_response("y")
    assert first.get_metrics("shared").requests == 2


async def test_failures_are_reported_with_their_error_class() -> None:
    from orchestrator.errors import RateLimitError

    r = ModelRegistry()
    r.register_model(ScriptedModel("limited", fail=RateLimitError("slow down", retry_after=7)))
    with pytest.raises(RateLimitError):
        await r.get_model("limited").generate_response("x")
    m = r.get_metrics("limited")
    assert m.failures_by_class == {"rate_limit": 1}
    health = await r.get_model_health("limited")
    assert health.state == "open"  # Retry-After opens the breaker at once
    assert 6.0 < health.retry_in <= 30.0


async def test_streaming_is_measured_with_time_to_first_token() -> None:
    class Streamer(ScriptedModel):
        async def stream_response(self, prompt, **kwargs):  # type: ignore[no-untyped-def]
            for word in ("one ", "two ", "three"):
                yield word
            self.record_usage(input_tokens=3, output_tokens=3)

    r = ModelRegistry()
    r.register_model(Streamer("s"))
    chunks = [c async for c in r.get_model("s").stream_response("count")]
    assert "".join(chunks) == "one two three"
    m = r.get_metrics("s")
    assert (m.requests, m.output_tokens) == (1, 3)
    assert m.time_to_first_token_p50 is not None


async def test_default_stream_yields_the_whole_answer_once_measured() -> None:
    r = ModelRegistry()
    r.register_model(ScriptedModel("plain"))
    chunks = [c async for c in r.get_model("plain").stream_response("hi")]
    assert chunks == ["plain: hi"]
    assert r.get_metrics("plain").requests == 1


async def test_cancelled_calls_release_their_ticket_without_an_outcome() -> None:
    import asyncio

    r = ModelRegistry()
    r.register_model(ScriptedModel("slow", delay=5))
    model = r.select_model()
    task = asyncio.create_task(model.generate_response("x"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    m = r.get_metrics("slow")
    assert (m.requests, m.pending) == (0, 0)


async def test_generate_reports_the_providers_usage_and_a_cache_hit_costs_nothing() -> None:
    registry = ModelRegistry(cache_responses=True)
    registry.register_model(ScriptedModel("m"))
    first = await registry.generate("hello")
    assert (first.input_tokens, first.output_tokens) == (10, 20)  # what the model recorded
    assert first.cost == pytest.approx(10 * 1e-6 + 20 * 2e-6)
    again = await registry.generate("hello")
    assert again.text == first.text and again.cost == 0.0
    assert registry.get_metrics("m").requests == 1


def test_reports_without_a_cost_are_priced_at_the_models_prices(registry: ModelRegistry) -> None:
    selection = registry.select(exclude_models=["unpriced", "coder"])  # cheap: $0.1/$0.2 per M
    registry.report_outcome(selection, True, 0.1, input_tokens=1000, output_tokens=500)
    assert registry.get_metrics("cheap").total_cost == pytest.approx(1000 * 0.1e-6 + 500 * 0.2e-6)
    batch = registry.select_many(2, exclude_models=["cheap", "coder"])  # unpriced: free
    registry.report_many(batch, [True, True], [0.1, 0.1], output_tokens=[10, 10])
    assert registry.get_metrics("unpriced").total_cost == 0.0


def test_get_metrics_reads_the_named_model_even_when_its_slot_was_reused() -> None:
    registry = ModelRegistry()
    registry.register_model(ScriptedModel("old"))
    registry.report_outcome(registry.select(), True, 0.1)
    registry.unregister_model("old")
    registry.register_model(ScriptedModel("new"))  # takes the freed slot
    assert registry.get_metrics("new").requests == 0
    with pytest.raises(ModelNotFoundError, match="old"):
        registry.get_metrics("old")
    with pytest.raises(KeyError, match="old"):
        registry.core.snapshot_of("old")
