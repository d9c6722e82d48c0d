"""The fleet's totals: every worker's delivered outcomes of a namespace, as
Redis holds them, per model (``registry.statistics(scope="fleet")`` and the
``orchestrator stats`` command show them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from orchestrator import _core
from orchestrator.errors import SharedStateError

#: Columns of :func:`fleet_statistics`, besides ``name``, in order.
FLEET_COLUMNS = (
    "trials",
    "successes",
    "failures",
    "mean_reward",
    "input_tokens",
    "output_tokens",
    "total_cost_usd",
)


@dataclass(frozen=True)
class FleetRow:
    """One model's totals over the whole fleet."""

    name: str
    trials: int
    successes: int
    failures: int
    reward_sum: float
    input_tokens: int
    output_tokens: int
    total_cost_usd: float
    failures_by_class: dict[str, int] = field(default_factory=dict)

    @property
    def mean_reward(self) -> float:
        """Mean reward per trial; NaN before the first trial."""
        return self.reward_sum / self.trials if self.trials else math.nan

    def as_dict(self) -> dict[str, Union[str, int, float, None]]:
        """The row for printing or JSON: ``None`` (never NaN) where unknown."""
        mean = self.mean_reward
        return {
            "name": self.name,
            "trials": self.trials,
            "successes": self.successes,
            "failures": self.failures,
            "mean_reward": None if math.isnan(mean) else mean,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_cost_usd": self.total_cost_usd,
        }


def decode_totals(key: str, raw: dict[Any, Any]) -> dict[str, float]:
    """The totals hash ``key`` as Redis returned it (``HGETALL``), decoded;
    a field that is not a finite number (forged or corrupt) is a
    :class:`SharedStateError` naming the key, the field and the value."""
    totals = {}
    for name, value in raw.items():
        field_name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise SharedStateError(
                f"corrupt fleet total in {key}: field {field_name!r} holds {text!r} "
                "(a finite number is expected)"
            )
        totals[field_name] = number
    return totals


def fleet_rows(totals: dict[str, float]) -> list[FleetRow]:
    """Rows of a decoded totals hash (``<model>:<field>`` -> value), sorted by name."""
    models: dict[str, dict[str, float]] = {}
    for key, value in totals.items():
        name, _, column = key.rpartition(":")
        if name:
            models.setdefault(name, {})[column] = value
    rows = []
    for name in sorted(models):
        fields = models[name]
        by_class = {
            cls: int(fields[f"failures_{cls}"])
            for cls in _core.ERROR_CLASSES
            if fields.get(f"failures_{cls}")
        }
        rows.append(
            FleetRow(
                name=name,
                trials=int(fields.get("requests", 0)),
                successes=int(fields.get("successes", 0)),
                failures=sum(by_class.values()),
                reward_sum=fields.get("reward_sum", 0.0),
                input_tokens=int(fields.get("input_tokens", 0)),
                output_tokens=int(fields.get("output_tokens", 0)),
                total_cost_usd=fields.get("cost", 0.0),
                failures_by_class=by_class,
            )
        )
    return rows


def fleet_columns(rows: list[FleetRow]) -> dict[str, Any]:
    """``rows`` as ``registry.statistics()`` shapes its answer: a ``name`` list
    and one numpy array per column of :data:`FLEET_COLUMNS`."""
    out: dict[str, Any] = {"name": [row.name for row in rows]}
    for column in FLEET_COLUMNS:
        out[column] = np.array([float(getattr(row, column)) for row in rows], dtype=np.float64)
    return out
