"""Evaluation tables: prompts and, per model, one quality in [0, 1] per prompt."""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from orchestrator.errors import EvalError as EvalError


@dataclass(frozen=True)
class EvalTable:
    """``qualities[model][row]`` is the model's quality on ``prompts[row]``."""

    prompts: list[str]
    qualities: dict[str, list[float]]

    def __post_init__(self) -> None:
        if not self.prompts:
            raise EvalError("invalid table: it has no rows")
        if len(self.qualities) < 2:
            raise EvalError("invalid table: routing needs at least two model columns")
        for model, values in self.qualities.items():
            if len(values) != len(self.prompts):
                raise EvalError(
                    f"invalid table: {len(values)} qualities for {model!r} "
                    f"but {len(self.prompts)} prompts"
                )

    @property
    def models(self) -> list[str]:
        return list(self.qualities)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int]) -> EvalTable:
        return EvalTable(
            [self.prompts[i] for i in rows],
            {model: [values[i] for i in rows] for model, values in self.qualities.items()},
        )


def parse_quality(text: str, column: str, row: int) -> float:
    """``True``/``False`` (any case) or a number in [0, 1]."""
    cleaned = text.strip()
    if cleaned.lower() == "true":
        return 1.0
    if cleaned.lower() == "false":
        return 0.0
    try:
        value = float(cleaned)
    except ValueError:
        raise EvalError(
            f"invalid quality {text!r} in column {column!r} at row {row}: "
            "expected True, False or a number in [0, 1]"
        ) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise EvalError(
            f"invalid quality {text!r} in column {column!r} at row {row}: must be in [0, 1]"
        )
    return value


def load_table(path: Union[str, Path], models: Sequence[str]) -> EvalTable:
    """Read ``path``: UTF-8 text (a leading byte order mark, as Excel writes
    it, is skipped) with a ``prompt`` column and a quality column per name in
    ``models`` (other columns are ignored). Rows are numbered from 0."""
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return _read_table(csv.DictReader(handle), str(path), models)
    except UnicodeDecodeError as exc:
        raise EvalError(
            f"invalid table {str(path)!r}: it is not UTF-8 text ({exc.reason}); "
            "save it as CSV UTF-8"
        ) from None


def _read_table(reader: csv.DictReader[str], path: str, models: Sequence[str]) -> EvalTable:
    """The rows of an open table (see :func:`load_table`)."""
    header = reader.fieldnames or []
    for name in ["prompt", *models]:
        if name not in header:
            raise EvalError(f"invalid table {path!r}: no column {name!r}")
        if header.count(name) > 1:
            raise EvalError(
                f"invalid table {path!r}: column {name!r} appears {header.count(name)} times"
            )
    prompts: list[str] = []
    qualities: dict[str, list[float]] = {name: [] for name in models}
    for row, record in enumerate(reader):
        prompt = record["prompt"]
        if prompt is None:
            raise EvalError(f"invalid table {path!r}: row {row} is short")
        prompts.append(prompt)
        for name in models:
            qualities[name].append(parse_quality(record[name] or "", name, row))
    return EvalTable(prompts, qualities)


def parse_costs(items: Sequence[str]) -> dict[str, float]:
    """``MODEL=USD`` items (the model name may itself contain ``=``)."""
    costs: dict[str, float] = {}
    for item in items:
        name, sep, amount = item.rpartition("=")
        if not sep or not name:
            raise EvalError(f"invalid --cost {item!r}: expected MODEL=USD")
        try:
            value = float(amount)
        except ValueError:
            raise EvalError(f"invalid --cost {item!r}: {amount!r} is not a number") from None
        if not (math.isfinite(value) and value >= 0.0):
            raise EvalError(f"invalid --cost {item!r}: USD must be finite and ≥ 0")
        if name in costs:
            raise EvalError(f"invalid --cost {item!r}: {name!r} is given twice")
        costs[name] = value
    if len(costs) < 2:
        raise EvalError("invalid --cost: name at least two models (--cost MODEL=USD ...)")
    return costs


def check_costs(table: EvalTable, costs: Mapping[str, float]) -> None:
    """Every model of the table has a cost and the costs are not all equal."""
    missing = [model for model in table.models if model not in costs]
    if missing:
        raise EvalError(f"invalid costs: no cost for {missing[0]!r}")
    if len({costs[model] for model in table.models}) < 2:
        raise EvalError("invalid costs: all models cost the same, so there is no trade-off")
