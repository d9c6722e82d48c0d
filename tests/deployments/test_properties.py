"""A property: after any sequence of registrations, unregistrations and alias
changes, the models eligible for ``alias=``/``tags=``/``exclude_models=`` are
exactly those a brute-force filter over the registered models gives."""

from __future__ import annotations

from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import DuplicateModelError
from orchestrator.models.model_registry import ModelRegistry
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(300)

MODELS = ("a", "b", "c")
DEPLOYMENTS = (None, "x", "y")
TAGS = ("eu", "us", "zr")

register = st.tuples(
    st.just("register"),
    st.sampled_from(MODELS),
    st.sampled_from(DEPLOYMENTS),
    st.sets(st.sampled_from(TAGS)),
)
unregister = st.tuples(st.just("unregister"), st.sampled_from(MODELS), st.sampled_from(DEPLOYMENTS))
alias = st.tuples(
    st.just("alias"), st.lists(st.sampled_from([*MODELS, "a@x", "b@y", "c@x"]), max_size=3)
)
query = st.tuples(
    st.sampled_from([None, "grp", *MODELS]),
    st.lists(st.sampled_from(TAGS), max_size=2),
    st.lists(st.sampled_from([*MODELS, "a@x", "b@y"]), max_size=2),
)


def qualified(model: str, deployment: Optional[str]) -> str:
    return model if deployment is None else f"{model}@{deployment}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.one_of(register, unregister, alias), max_size=25),
    queries=st.lists(query, min_size=1, max_size=4),
)
def test_eligibility_matches_a_brute_force_filter(ops: list[tuple], queries: list[tuple]) -> None:
    registry = ModelRegistry()
    members: Optional[list[str]] = None  # the alias "grp" as the model below keeps it
    for op in ops:
        if op[0] == "register":
            _, model, deployment, tags = op
            try:
                registry.register_model(
                    ScriptedModel(model, deployment=deployment, tags=sorted(tags))
                )
            except DuplicateModelError:
                assert qualified(model, deployment) in registry
        elif op[0] == "unregister":
            name = qualified(op[1], op[2])
            if name in registry:
                registry.unregister_model(name)
                if members is not None:
                    members = [
                        m for m in members if (registry.deployments(m) if m == op[1] else m != name)
                    ]
        else:
            wanted = list(dict.fromkeys(op[1]))
            known = [m for m in wanted if m in registry or registry.deployments(m)]
            if members is not None:
                registry.remove_alias("grp")
                members = None
            if known:
                registry.add_alias("grp", known)
                members = known
    models = list(registry)
    for group, tags, excluded in queries:
        excluded = [e for e in excluded if e in registry or registry.deployments(e)]
        if (group == "grp" and members is None) or (
            group in MODELS and not registry.deployments(group)
        ):
            with pytest.raises(ValueError, match="invalid alias"):
                registry.explain_selection(alias=group, tags=tags, exclude_models=excluded)
            continue
        explanation = registry.explain_selection(alias=group, tags=tags, exclude_models=excluded)
        eligible = {c.name for c in explanation.candidates if c.eligible}
        allowed = None if group is None else set(members or []) if group == "grp" else {group}
        expected = {
            m.name
            for m in models
            if set(tags) <= set(m.tags)
            and m.name not in excluded
            and m.model_name not in excluded
            and (allowed is None or m.name in allowed or m.model_name in allowed)
        }
        assert eligible == expected
    assert registry.core.outstanding_tickets() == 0
