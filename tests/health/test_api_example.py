"""The "Model Health Monitoring" example of the API document, as written
(with a test model registered as "gpt-4", a backup, and ``logger.warning``
where the document prints)."""

from __future__ import annotations

import logging

import pytest
from health_scripted import ScriptedModel

from orchestrator.errors import ServerError
from orchestrator.models.model_registry import ModelRegistry

logger = logging.getLogger(__name__)


async def run_document_example(
    registry: ModelRegistry,
) -> tuple[bool, list[str], object]:
    # --- from the document -------------------------------------------------
    # Get health status
    health_status = await registry.get_model_health("gpt-4")

    backup_model = None
    if not health_status.healthy:
        logger.warning(f"Model issues: {health_status.issues}")

        # Automatic failover to backup model
        backup_model = registry.select_model(
            capabilities=["text_generation"], exclude_models=["gpt-4"]
        )
    # ------------------------------------------------------------------------
    return health_status.healthy, health_status.issues, backup_model


async def test_document_health_example(caplog: pytest.LogCaptureFixture) -> None:
    from orchestrator.models.health_monitor import ModelHealthMonitor

    # Create health monitor
    monitor = ModelHealthMonitor(
        check_interval=300,  # 5 minutes
        failure_threshold=3,
        recovery_threshold=2,
    )

    # Use with model registry
    registry = ModelRegistry(health_monitor=monitor)
    gpt4 = registry.register_model(ScriptedModel("gpt-4"))
    backup = registry.register_model(ScriptedModel("backup"))

    healthy, issues, chosen = await run_document_example(registry)
    assert healthy and issues == [] and chosen is None

    gpt4.default = ServerError("upstream 503", status_code=503)  # type: ignore[attr-defined]
    for _ in range(monitor.failure_threshold):
        with pytest.raises(ServerError):
            await gpt4.generate_response("Hello, world!")

    caplog.set_level(logging.WARNING)
    healthy, issues, chosen = await run_document_example(registry)
    assert not healthy
    assert issues[0].startswith("circuit open after 3 consecutive failures")
    assert "last error: ServerError: upstream 503 (HTTP 503)" in issues
    assert chosen is backup
    assert any(r.getMessage().startswith("Model issues: ['circuit open") for r in caplog.records)
