"""``generate``/``stream`` with a ``session_id``: failover moves the session
to the model that answered, and the next turn of the conversation goes there."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import ServerError
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(30)


def bound_to_failing() -> tuple[ModelRegistry, ScriptedModel]:
    """A registry whose session ``s`` is bound to ``failing``, which now fails."""
    registry = ModelRegistry()
    failing = ScriptedModel("failing")
    registry.register_model(failing)
    registry.register_model(ScriptedModel("healthy"))
    assert registry.select_model(session_id="s", exclude_models=["healthy"]).name == "failing"
    failing.fail = ServerError("down", model="failing")
    return registry, failing


def test_generate_moves_the_session_to_the_model_that_answered() -> None:
    registry, failing = bound_to_failing()
    result = asyncio.run(registry.generate("hi", session_id="s"))
    assert result.model == "healthy"
    assert [a.model for a in result.attempts] == ["failing", "healthy"]
    failing.fail = None  # healthy again, but the conversation has moved
    again = asyncio.run(registry.generate("and then?", session_id="s"))
    assert [a.model for a in again.attempts] == ["healthy"]


def test_stream_moves_the_session_to_the_model_that_answered() -> None:
    registry, failing = bound_to_failing()

    async def consume() -> tuple[str, list[str]]:
        stream = registry.stream("hi", session_id="s")
        chunks = [chunk async for chunk in stream]
        assert stream.model is not None
        return stream.model, chunks

    model, chunks = asyncio.run(consume())
    assert model == "healthy" and "".join(chunks) == "healthy: hi"
    failing.fail = None
    assert asyncio.run(consume())[0] == "healthy"


def test_a_bad_session_id_fails_before_any_model_is_called() -> None:
    registry, failing = bound_to_failing()
    with pytest.raises(ValueError, match="session_id"):
        asyncio.run(registry.generate("hi", session_id=""))
    assert failing.calls == 0
