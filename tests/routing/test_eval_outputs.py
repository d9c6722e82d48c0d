"""``orchestrator eval`` refuses before the run: a bad ``--seed`` or an output
that cannot be written (no directory, a directory, a plot name matplotlib
cannot write) exits 2 naming the option before any routing is done (they used
to end in a traceback, the outputs only after the whole evaluation had run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.routing.test_eval import cost_arguments, run_eval, write_table

pytestmark = pytest.mark.timeout(120)

ROWS = 40


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--seed", "-1"], "invalid seed: -1 (an integer from 0 to"),
        (["--seed", str(2**64)], f"invalid seed: {2**64}"),
        (["-o", "{tmp}/plot.txt"], "invalid -o '{tmp}/plot.txt': not an image file name"),
        (["-o", "{tmp}/plot"], "invalid -o '{tmp}/plot': not an image file name"),
        (["--json", "{tmp}/absent/r.json"], "invalid --json '{tmp}/absent/r.json': no directory"),
        (["--decisions", "{tmp}"], "invalid --decisions '{tmp}': it is a directory"),
    ],
)
def test_bad_seeds_and_unwritable_outputs_exit_2_before_routing(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    path = write_table(tmp_path / "t.csv", rows=ROWS)
    given = [argument.format(tmp=tmp_path) for argument in arguments]
    done = run_eval(str(path), *cost_arguments(), *given)
    assert done.returncode == 2, done.stderr
    assert f"orchestrator eval: error: {message.format(tmp=tmp_path)}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "APGR" not in done.stdout, "refused before the evaluation ran"


def test_an_image_suffix_in_any_case_is_written(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", rows=ROWS)
    plot = tmp_path / "curve.PNG"
    done = run_eval(str(path), *cost_arguments(), "--points", "3", "-o", str(plot))
    assert done.returncode == 0, done.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
