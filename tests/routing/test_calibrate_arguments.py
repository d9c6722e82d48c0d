"""``calibrate``'s arguments at both entry points (``ModelRegistry.calibrate``
and ``ContextualRouter.calibrate``) share one check: prompts that are not a
list, and ``qualities``/``costs`` that are not dicts, are a ``TypeError``
naming the field and the value, and change nothing. Reproduction (fixed):
``calibrate(["p"], {"cheap": [1.0]}, 5)`` raised ``TypeError: Value after *
must be an iterable, not int`` in the registry and ``'int' object is not
iterable`` in the router, naming neither ``costs`` nor the value."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.models.model_registry import ContextualSelector, ModelRegistry
from orchestrator.routing import ContextualRouter
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(30)

SELECTOR = ContextualSelector(hash_bits=10)


def registry_entry() -> tuple[Callable[..., None], Callable[[], bytes]]:
    registry = ModelRegistry(model_selector=SELECTOR)
    for name in ("cheap", "strong"):
        registry.register_model(ScriptedModel(name))
    return registry.calibrate, registry.router_state


def router_entry() -> tuple[Callable[..., None], Callable[[], bytes]]:
    router = ContextualRouter(["cheap", "strong"], selector=SELECTOR)
    return router.calibrate, router.to_bytes


ENTRIES = {"registry": registry_entry, "router": router_entry}


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("what is 2+2", {"cheap": [1.0]}), "invalid prompts: a list of prompts is required"),
        ((5, {"cheap": [1.0]}), "invalid prompts: 5 (a list of prompts is required)"),
        ((["p"], 5), "invalid qualities: 5 (a dict of model name to a list of qualities)"),
        ((["p"], None), "invalid qualities: None"),
        ((["p"], "cheap"), "invalid qualities: 'cheap'"),
        ((["p"], {"cheap": [1.0]}, 5), "invalid costs: 5 (a dict of model name to USD per call)"),
        ((["p"], {"cheap": [1.0]}, "cheap"), "invalid costs: 'cheap'"),
        ((["p"], {"cheap": [1.0]}, [1.0]), "invalid costs: [1.0]"),
    ],
)
def test_bad_calibration_arguments_name_the_field_and_change_nothing(
    entry: str, arguments: tuple[Any, ...], message: str
) -> None:
    calibrate, state = ENTRIES[entry]()
    before = state()
    with pytest.raises(TypeError, match=re.escape(message)):
        calibrate(*arguments)
    assert state() == before


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_any_iterable_of_prompts_and_mapping_calibrate(entry: str) -> None:
    """A tuple or generator of prompts (a column of a table) is read like a list."""
    calibrate, state = ENTRIES[entry]()
    before = state()
    calibrate((f"question {i}" for i in range(4)), {"cheap": [0.0, 1.0, 0.0, 1.0]})
    assert state() != before
