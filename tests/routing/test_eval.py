"""``orchestrator eval`` (run as ``python -m orchestrator.evaluation``, the
function the CLI calls) on small synthetic tables written to disk: both
protocols, the JSON and decisions contract, APGR recomputed from the
decisions file, a leakage check and clear errors.

These tests build their own tables; the shared MMLU table is measured in
benches/test_bench_routing.py, not here."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.evaluation import (
    CurvePoint,
    EvalTable,
    Reference,
    apgr,
    call_to_best_for_recovery,
    curve_point,
    evaluate,
    load_table,
)
from orchestrator.routing.synthetic import prompt_mix

pytestmark = pytest.mark.timeout(120)

ROWS = 600
SMALL = "small/model=v1"  # a name with "=" and "/" must survive --cost parsing
COSTS = {SMALL: 0.0002, "large": 0.02}
JSON_KEYS = {"apgr", "cpt50", "cpt80", "random_apgr", "curve", "decision_us"}


def write_table(path: Path, rows: int = ROWS, seed: int = 7, shuffle: bool = False) -> Path:
    """The synthetic prompt mix with two models, booleans as True/False, and an ignored column."""
    mix = prompt_mix(rows, seed=seed)
    small, large = mix.qualities["small"], mix.qualities["large"]
    order = list(range(rows))
    if shuffle:
        random.Random(seed).shuffle(order)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "kind", SMALL, "large"])
        for row in range(rows):
            label = order[row]
            writer.writerow([mix.prompts[row], mix.kinds[row], small[label] == 1.0, large[label]])
    return path


def run_eval(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.evaluation", *arguments],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def cost_arguments() -> list[str]:
    return [item for name, usd in COSTS.items() for item in ("--cost", f"{name}={usd}")]


@pytest.mark.parametrize("protocol", ["calibrated", "online"])
def test_eval_contract(tmp_path: Path, protocol: str) -> None:
    table_path = write_table(tmp_path / "table.csv")
    out_json, out_csv, out_png = tmp_path / "r.json", tmp_path / "d.csv", tmp_path / "p.png"
    done = run_eval(
        str(table_path),
        *cost_arguments(),
        "--protocol",
        protocol,
        "--folds",
        "3",
        "--seed",
        "5",
        "--points",
        "7",
        "--json",
        str(out_json),
        "--decisions",
        str(out_csv),
        "-o",
        str(out_png),
    )
    assert done.returncode == 0, done.stderr
    assert "APGR" in done.stdout
    report = json.loads(out_json.read_text())
    assert set(report) >= JSON_KEYS
    assert len(report["curve"]) == 7
    assert set(report["curve"][0]) == {"willingness_to_pay", "cost_share", "quality"}
    assert report["decision_us"] > 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(out_csv, newline="", encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert list(lines[0]) == ["point", "willingness_to_pay", "row", "model"]
    assert len(lines) == 7 * ROWS
    assert {(int(line["point"]), int(line["row"])) for line in lines} == {
        (p, r) for p in range(7) for r in range(ROWS)
    }
    assert {line["model"] for line in lines} <= set(COSTS)

    # APGR recomputed from the decisions file alone equals the reported one.
    table = load_table(table_path, list(COSTS))
    reference = Reference.of(table, COSTS)
    curve: list[CurvePoint] = []
    for point in range(7):
        mine = sorted((int(line["row"]), line) for line in lines if int(line["point"]) == point)
        wtp = float(mine[0][1]["willingness_to_pay"])
        choices = [line["model"] for _, line in mine]
        curve.append(curve_point(table, COSTS, reference, choices, wtp))
    assert apgr(curve, reference) == pytest.approx(report["apgr"], abs=1e-12)
    assert call_to_best_for_recovery(curve, reference, 0.5) == pytest.approx(report["cpt50"])
    assert [p.willingness_to_pay for p in curve] == [
        c["willingness_to_pay"] for c in report["curve"]
    ]

    # The operating points span from always the cheapest model toward the best model.
    shares = [c["cost_share"] for c in report["curve"]]
    assert shares[0] == 0.0
    assert shares[-1] > 0.6
    # The planted rule is found: well above a random router (the best possible
    # APGR on this table, routing by prompt kind, is about 0.64; learning from
    # bandit feedback in one pass of 600 rows gets less far).
    margin = 0.08 if protocol == "calibrated" else 0.04
    assert report["apgr"] > report["random_apgr"] + margin
    assert abs(report["random_apgr"] - 0.5) < 0.08


def test_shuffled_labels_give_a_random_router(tmp_path: Path) -> None:
    """Leakage check: with qualities shuffled across prompts the prompt says
    nothing, so calibrated APGR must fall to about 0.5."""
    results = []
    for seed in (1, 2, 3):
        table = load_table(
            write_table(tmp_path / f"s{seed}.csv", 1000, seed, shuffle=True), list(COSTS)
        )
        results.append(evaluate(table, COSTS, seed=seed).apgr)
    assert abs(sum(results) / len(results) - 0.5) < 0.05, results


def test_three_models_and_fractional_qualities() -> None:
    mix = prompt_mix(400, seed=11)
    qualities = {m: [0.5 * q + 0.25 for q in values] for m, values in mix.qualities.items()}
    result = evaluate(EvalTable(mix.prompts, qualities), mix.costs, points=5, folds=2)
    assert result.reference.cheapest == "small" and result.reference.best == "large"
    assert len(result.decisions) == 5 and all(len(d) == 400 for d in result.decisions)
    assert set(result.decisions[-1]) <= set(mix.costs)
    assert result.curve[0].cost_share == 0.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--cost", "large=0.02"], "at least two models"),
        (["--cost", "large=abc", "--cost", f"{SMALL}=0"], "not a number"),
        (["--cost", "large=-1", "--cost", f"{SMALL}=0"], "≥ 0"),
        (["--cost", "large=0.02", "--cost", "missing=0.1"], "no column 'missing'"),
        (["--cost", "large=0.02", "--cost", "large=0.01"], "given twice"),
        (["--cost", "large=0.02", "--cost", f"{SMALL}=0.02"], "cost the same"),
        ([*cost_arguments(), "--folds", "1"], "folds"),
        ([*cost_arguments(), "--points", "2"], "points"),
    ],
)
def test_bad_arguments_exit_2_with_the_field(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    done = run_eval(str(write_table(tmp_path / "t.csv", rows=20)), *arguments)
    assert done.returncode == 2
    assert message in done.stderr


def test_bad_table_values_name_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"prompt,{SMALL},large\nhello,True,yes\n", encoding="utf-8")
    done = run_eval(str(path), *cost_arguments())
    assert done.returncode == 2
    assert "'yes' in column 'large' at row 0" in done.stderr
    path.write_text(f"prompt,{SMALL},large\nhello,True,1.5\n", encoding="utf-8")
    assert "must be in [0, 1]" in run_eval(str(path), *cost_arguments()).stderr
    missing = run_eval(str(tmp_path / "absent.csv"), *cost_arguments())
    assert missing.returncode == 2 and "absent.csv" in missing.stderr
