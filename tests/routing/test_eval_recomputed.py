"""APGR and CPT(50%) recomputed from ``--decisions`` alone, independently of
``orchestrator.evaluation``'s own functions (``test_eval.py`` recomputes them
with the package's ``curve_point``/``apgr``, which would agree with a wrong
formula): RouteLLM's definitions from the table, the costs and the decisions
file, both protocols."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from tests.routing.test_eval import COSTS, SMALL, cost_arguments, run_eval, write_table

pytestmark = pytest.mark.timeout(120)

ROWS = 300
POINTS = 6


def qualities(path: Path) -> dict[str, list[float]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    named = {"True": 1.0, "False": 0.0}
    return {m: [named[r[m]] if r[m] in named else float(r[m]) for r in rows] for m in COSTS}


def recovered_curve(table: dict[str, list[float]], decisions: Path) -> list[tuple[float, float]]:
    """(share of calls to the strong model, quality gap recovered) per point,
    with the two models alone as the ends, by share."""
    weak, strong = (sum(table[m]) / ROWS for m in (SMALL, "large"))
    by_point: dict[int, dict[int, str]] = {}
    with open(decisions, newline="", encoding="utf-8") as handle:
        for line in csv.DictReader(handle):
            by_point.setdefault(int(line["point"]), {})[int(line["row"])] = line["model"]
    curve = [(0.0, 0.0), (1.0, 1.0)]
    for choices in by_point.values():
        assert sorted(choices) == list(range(ROWS))
        share = sum(model == "large" for model in choices.values()) / ROWS
        quality = sum(table[model][row] for row, model in choices.items()) / ROWS
        curve.append((share, (quality - weak) / (strong - weak)))
    return sorted(curve)


@pytest.mark.parametrize("protocol", ["calibrated", "online"])
def test_apgr_and_cpt50_follow_from_the_decisions_file(tmp_path: Path, protocol: str) -> None:
    table_path = write_table(tmp_path / "t.csv", rows=ROWS)
    out_json, out_csv = tmp_path / "r.json", tmp_path / "d.csv"
    done = run_eval(
        str(table_path),
        *cost_arguments(),
        "--protocol",
        protocol,
        "--points",
        str(POINTS),
        "--json",
        str(out_json),
        "--decisions",
        str(out_csv),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out_json.read_text())
    curve = recovered_curve(qualities(table_path), out_csv)
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(curve))
    assert report["apgr"] == pytest.approx(area, abs=1e-9)
    (x0, y0), (x1, y1) = next((a, b) for a, b in itertools.pairwise(curve) if b[1] >= 0.5)
    cpt50 = 100 * (x0 if y0 >= 0.5 else x0 + (x1 - x0) * (0.5 - y0) / (y1 - y0))
    assert report["cpt50"] == pytest.approx(cpt50, abs=1e-9)
