"""Consistent reads under concurrency (finding 7): while threads and asyncio
tasks register, unregister, select and report, every reading API returns a
snapshot (never a half-registered slot or a dict that changed size), the
no-eligible path raises ``NoEligibleModelsError``, and the outcomes of the
stable models add up exactly."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orchestrator.errors import ModelNotFoundError, NoEligibleModelsError, StaleTicketError
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(120)

STABLE = 4
ROUNDS = 300


async def test_reads_see_one_snapshot_while_others_register_select_and_report() -> None:
    registry = ModelRegistry()
    for i in range(STABLE):
        registry.register_model(ScriptedModel(f"stable{i}"))
    stop = threading.Event()
    errors: list[BaseException] = []
    reported = [0]
    lock = threading.Lock()

    def churn(tag: str) -> None:
        i = 0
        while not stop.is_set():
            name = f"churn-{tag}{i % 8}"
            try:
                registry.register_model(ScriptedModel(name))
                registry.unregister_model(name)
            except BaseException as exc:  # asserted empty below
                errors.append(exc)
            i += 1

    def select_and_report() -> None:
        for _ in range(ROUNDS):
            try:
                selection = registry.select(exclude_models=None, capabilities=["chat"])
                if selection.model.name.startswith("stable"):
                    registry.report_outcome(selection, True, 0.1)
                    with lock:
                        reported[0] += 1
                else:
                    registry.cancel(selection)
            except (ModelNotFoundError, StaleTicketError):
                pass  # a churned model left (or came back) between selection and release
            except BaseException as exc:  # asserted empty below
                errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            try:
                explanation = registry.explain_selection()
                assert all(c.name for c in explanation.candidates)
                names, values = registry.scores()
                assert len(names) == len(values)
                stats = registry.statistics()
                assert len(stats["name"]) == len(stats["trials"])
                registry.list_models()
                for name in [f"stable{i}" for i in range(STABLE)]:
                    registry.get_metrics(name)
                with pytest.raises(NoEligibleModelsError):
                    registry.select_model(capabilities=["vision"])
            except BaseException as exc:  # asserted empty below
                errors.append(exc)

    async def task_reader() -> None:
        while not stop.is_set():
            registry.explain_selection(capabilities=["chat"])
            registry.scores()
            await asyncio.sleep(0)

    churners = [threading.Thread(target=churn, args=(tag,)) for tag in "xy"]
    readers = [threading.Thread(target=read) for _ in range(2)]
    workers = [threading.Thread(target=select_and_report) for _ in range(3)]
    for t in (*churners, *readers, *workers):
        t.start()
    tasks = [asyncio.create_task(task_reader()) for _ in range(3)]
    await asyncio.to_thread(lambda: [w.join(timeout=100) for w in workers])
    stop.set()
    for t in (*churners, *readers):
        t.join(timeout=20)
    await asyncio.gather(*tasks)
    assert errors == []
    stable = [registry.get_metrics(f"stable{i}") for i in range(STABLE)]
    assert sum(m.requests for m in stable) == reported[0]
    assert sum(m.pending for m in stable) == 0
