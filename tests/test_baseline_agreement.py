"""The plain-Python baseline of the benchmarks (``benches/baseline.py``) makes
the same choices as the Rust core, so the speed comparison is fair: over
seeded runs with mixed constraints, failures (breakers opening), concurrent
in-flight requests and every strategy, both pick the same model every time."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))

from baseline import BaselineModel, BaselineRegistry, BaselineSelection
from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.models.model_registry import ModelRegistry, Selection

CAPS = ("code_generation", "chat", "vision", "function_calling")


class _Stub(Model):
    async def generate_response(self, prompt: Any, **kwargs: Any) -> str:
        return "ok"

    async def health_check(self) -> bool:
        return True


def _fleet(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        caps = [c for c in CAPS if rng.random() < 0.5]
        out.append(
            {
                "name": f"m{i}",
                "caps": caps,
                "context": rng.choice([0, 8192, 32768, 131072]),
                "price": rng.choice([None, 0.0, 0.5, 1.0, 3.0, 10.0]),
                "speed": rng.choice([None, 30.0, 80.0, 200.0]),
                "p_ok": rng.choice([0.3, 0.8, 0.95, 0.99]),
            }
        )
    return out


def _build(fleet: list[dict[str, Any]], strategy: str) -> tuple[ModelRegistry, BaselineRegistry]:
    ours = ModelRegistry(selection_strategy=strategy)
    base = BaselineRegistry(strategy)
    for m in fleet:
        caps = ModelCapabilities(context_length=m["context"], **{c: True for c in m["caps"]})
        priced = m["price"] is not None
        price = m["price"] or 0.0
        cost = ModelCost(input_per_million=price, output_per_million=2 * price) if priced else None
        ours.register_model(_Stub(m["name"], "p", caps, cost, speed=m["speed"]))
        base.register_model(
            BaselineModel(
                m["name"],
                "p",
                ["text_generation", *m["caps"]],
                m["context"],
                price,
                2 * price,
                priced=priced,
                speed=m["speed"],
            )
        )
    return ours, base


def _request(rng: random.Random, names: list[str]) -> dict[str, Any]:
    req: dict[str, Any] = {}
    if rng.random() < 0.4:
        req["capabilities"] = rng.sample(CAPS, rng.choice([1, 1, 2]))
    if rng.random() < 0.3:
        req["max_cost"] = rng.choice([0.001, 0.005, 0.05])
    if rng.random() < 0.2:
        req["min_speed"] = rng.choice([50.0, 100.0])
    if rng.random() < 0.3:
        req["context_length"] = rng.choice([4000, 16000, 100000])
    if rng.random() < 0.1:
        req["exclude_models"] = rng.sample(names, 2)
    if rng.random() < 0.2:
        req["input_tokens"] = rng.choice([10, 5000])
        req["output_tokens"] = rng.choice([10, 2000])
    return req


@pytest.mark.parametrize("strategy", ["ucb", "discounted_ucb", "performance", "cost"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_baseline_picks_what_the_core_picks(strategy: str, seed: int) -> None:
    rng = random.Random(seed)
    fleet = _fleet(rng, 12)
    ours, base = _build(fleet, strategy)
    names = [m["name"] for m in fleet]
    p_ok = {m["name"]: m["p_ok"] for m in fleet}
    in_flight: list[tuple[Selection, BaselineSelection]] = []
    picks = 0
    for _ in range(1500):
        req = _request(rng, names)
        try:
            mine = ours.select(**req)
        except Exception as exc:  # no eligible model: the baseline must agree
            with pytest.raises(LookupError):
                base.select(**req)
            assert "satisf" in str(exc) or "no model" in str(exc)
            continue
        theirs = base.select(**req)
        assert mine.model.name == theirs.model.name, (picks, req)
        picks += 1
        in_flight.append((mine, theirs))
        # report some now, keep others in flight (pending) for a while
        while in_flight and (len(in_flight) > 4 or rng.random() < 0.6):
            a, b = in_flight.pop(rng.randrange(len(in_flight)))
            ok = rng.random() < p_ok[a.model.name]
            latency = rng.uniform(0.05, 3.0)
            out_tokens = rng.randrange(0, 400)
            kwargs: dict[str, Any] = {"output_tokens": out_tokens, "input_tokens": 100}
            if ok and rng.random() < 0.3:
                kwargs["quality"] = rng.random()
            if not ok:
                kwargs["error_class"] = rng.choice(["server_error", "timeout", "none"])
            ours.report_outcome(a, ok, latency, **kwargs)
            base.report_outcome(b, ok, latency, **kwargs)
    assert picks > 500
