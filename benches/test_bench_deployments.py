"""What routing aliases and tags cost selection: ``select_model`` at 100
models with ``alias=``, ``tags=`` and both, against no restriction, in the
same run, beside the plain-Python baseline (which turns them into excluded
slots).

Group ``select n=100 alias/tags``. Half the models carry the tag ``eu`` and
half are members of the alias ``half`` (overlapping so that every case keeps
eligible models); the core checks an alias as a slot bitset and the tags as
one AND per slot, in the same pass as the other constraints.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench_common import REQUEST, build_baseline, build_registry, in_fresh_context

N = 100
CASES: dict[str, dict[str, Any]] = {
    "no alias or tags": {},
    "alias=": {"alias": "half"},
    "tags=": {"tags": ["eu"]},
    "alias= and tags=": {"alias": "half", "tags": ["eu"]},
}


def _eu(i: int) -> bool:
    return i % 2 == 0


def _in_half(i: int) -> bool:
    return i % 4 < 2


@pytest.mark.parametrize("case", list(CASES))
def test_select_with_alias_and_tags_orchestrator(benchmark: Any, case: str) -> None:
    registry = build_registry(N)
    models = list(registry)
    for i, model in enumerate(models):
        if _eu(i):
            model.tags = ("eu",)
            model.declarations_changed()
    registry.add_alias("half", [m.name for i, m in enumerate(models) if _in_half(i)])
    benchmark.group = f"select n={N} alias/tags"
    benchmark.extra_info.update(contender=f"orchestrator select_model, {case}", models=N)
    model = benchmark(in_fresh_context, registry.select_model, **REQUEST, **CASES[case])
    assert model.capabilities.code_generation
    if "tags" in CASES[case]:
        assert model.tags == ("eu",)


@pytest.mark.parametrize("case", list(CASES))
def test_select_with_alias_and_tags_plain_python(benchmark: Any, case: str) -> None:
    registry = build_baseline(N)
    registry.models = [
        type(m)(**{**m.__dict__, "tags": frozenset({"eu"} if _eu(i) else ())})
        for i, m in enumerate(registry.models)
    ]
    registry.aliases["half"] = frozenset(i for i in range(N) if _in_half(i))
    benchmark.group = f"select n={N} alias/tags"
    benchmark.extra_info.update(contender=f"plain-Python baseline select, {case}", models=N)
    selection = benchmark(registry.select, **REQUEST, **CASES[case])
    assert "code_generation" in selection.model.capabilities
