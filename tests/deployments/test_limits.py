"""Each deployment of a logical model has its own ``rpm``/``tpm`` window
(issue 14, item 4: "each with its own limits"): a request by the logical
name goes to a deployment whose window has room, a full one's reason names
that deployment, and ``rate_limits`` reads each one's own counts."""

from __future__ import annotations

import pytest

from orchestrator.errors import NoEligibleModelsError
from tests.conftest import ScriptedModel, virtual_registry

pytestmark = pytest.mark.timeout(30)


def test_every_deployment_has_its_own_window() -> None:
    registry = virtual_registry(
        ScriptedModel("gpt-4o", deployment="eu", rpm=1),
        ScriptedModel("gpt-4o", deployment="us", rpm=2, tpm=1000),
        ScriptedModel("mini"),
    )
    picks = [registry.select(alias="gpt-4o").model.name for _ in range(3)]
    assert sorted(picks) == ["gpt-4o@eu", "gpt-4o@us", "gpt-4o@us"]
    with pytest.raises(NoEligibleModelsError) as info:
        registry.select(alias="gpt-4o")
    assert info.value.reasons["gpt-4o@eu"].startswith(
        "rate_limit: 1/1 requests in the last minute (rpm)"
    )
    assert info.value.reasons["gpt-4o@us"].startswith(
        "rate_limit: 2/2 requests in the last minute (rpm)"
    )
    eu, us = registry.rate_limits("gpt-4o@eu"), registry.rate_limits("gpt-4o@us")
    assert (eu["rpm"], eu["requests"], eu["tpm"]) == (1, 1, None)
    assert (us["rpm"], us["requests"], us["tpm"], us["tokens"]) == (2, 2, 1000, 400)
    assert registry.select().model.name == "mini", "other models are not limited by them"
    registry.core.advance_clock(60.0)
    assert registry.select(alias="gpt-4o").model.name in {"gpt-4o@eu", "gpt-4o@us"}
