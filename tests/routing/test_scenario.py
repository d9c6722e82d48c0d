"""The prompt_mix scenario: the contextual router beats every policy that
does not look at the prompt, on the same seeded requests."""

from __future__ import annotations

import pytest

from orchestrator.routing.scenario import run_prompt_mix

pytestmark = pytest.mark.timeout(60)


def test_contextual_routing_beats_every_non_contextual_policy() -> None:
    runs = {run.policy: run for run in run_prompt_mix(5000, seed=0, checkpoints=5)}
    assert set(runs) == {
        "contextual",
        "non-contextual",
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
    # It sends each kind where it pays: cheap models get a real share, at lower cost.
    assert contextual.choices["small"] > 100 and contextual.choices["coder"] > 500
    assert contextual.mean_cost < runs["always large"].mean_cost


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="requests"):
        run_prompt_mix(3, checkpoints=10)
    with pytest.raises(ValueError, match="willingness_to_pay"):
        run_prompt_mix(100, willingness_to_pay=0.0)
