"""The prompt_mix scenario: a registry with the contextual strategy beats
every non-contextual strategy of the registry and every single model, on the
same seeded requests with bandit feedback."""

from __future__ import annotations

import pytest

from orchestrator.routing.scenario import run_prompt_mix

pytestmark = pytest.mark.timeout(60)


def test_contextual_routing_beats_every_non_contextual_policy() -> None:
    runs = {run.policy: run for run in run_prompt_mix(5000, seed=0, checkpoints=5)}
    assert set(runs) == {
        "contextual",
        "contextual without prompt",
        "ucb",
        "thompson",
        "performance",
        "cost",
        "always small",
        "always coder",
        "always large",
    }
    contextual = runs.pop("contextual")
    assert all(len(run.regret) == 5 for run in runs.values())
    best_other = min(run.regret[-1] for run in runs.values())
    assert contextual.regret[-1] < 0.85 * best_other
    # It learns: the regret added per checkpoint shrinks.
    steps = [b - a for a, b in zip([0.0, *contextual.regret], contextual.regret)]
    assert steps[-1] < steps[0]
    # It sends code to the mid-priced coder, at a lower cost than the strong model alone.
    # (How much chat goes to the cheapest model depends on the seed: 36 to 1,057
    # of 5,000 over seeds 0-2, whose chat gap is only 0.05 in expected value.)
    assert contextual.choices["coder"] > 500
    assert contextual.mean_cost < runs["always large"].mean_cost
    # Without the prompt the same registry does no better than the best single model.
    assert runs["contextual without prompt"].regret[-1] > contextual.regret[-1]


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="requests"):
        run_prompt_mix(3, checkpoints=10)
    with pytest.raises(ValueError, match="willingness_to_pay"):
        run_prompt_mix(100, willingness_to_pay=0.0)
