"""Attacks on prompt-aware routing (``orchestrator.routing``) and on the
``eval`` command (``orchestrator.evaluation``): hostile prompts, wrong types,
extreme embeddings, corrupt router state and malformed evaluation tables."""

from __future__ import annotations

import csv
import math
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from orchestrator.evaluation.command import main as eval_main
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.routing import ContextualRouter, ContextualSelector
from tests.conftest import ScriptedModel

pytestmark = pytest.mark.timeout(60)

COSTS = {"cheap": 0.001, "best": 0.01}
ROWS = [("what is 2+2", "True", "True"), ("prove the riemann hypothesis", "False", "True")] * 20


def router() -> ContextualRouter:
    return ContextualRouter(["cheap", "best"], costs=COSTS)


def test_a_lone_surrogate_prompt_is_a_value_error_naming_the_prompt() -> None:
    """Reproduction: ``ContextualRouter([...]).decide("\\ud800")`` raises a
    bare ``UnicodeEncodeError: 'utf-8' codec can't encode ...`` from the
    binding's string extraction; a prompt that is not valid Unicode must be
    a ValueError naming ``prompt`` (gateways pass such JSON strings on)."""
    with pytest.raises(ValueError, match="prompt"):
        router().decide("\ud800")


def test_bool_is_not_a_willingness_to_pay() -> None:
    """Reproduction: ``decide("x", willingness_to_pay=True)`` decides with
    1.0, while ``ContextualSelector(willingness_to_pay=True)`` is refused:
    the same value, two rules (router.rs's decide extracts f64)."""
    with pytest.raises(TypeError, match="willingness_to_pay"):
        router().decide("x", willingness_to_pay=True)


def test_bool_is_not_a_quality() -> None:
    """Reproduction: ``learn("x", "cheap", True)`` learns quality 1.0."""
    with pytest.raises(TypeError, match="quality"):
        router().learn("x", "cheap", True)


def test_calibrate_refuses_strings_and_bools_as_qualities() -> None:
    """Reproduction: ``calibrate(["p1", "p2"], {"cheap": ["0.5", "1"],
    "best": [True, False]})`` succeeds: ``ContextualRouter.calibrate`` runs
    ``float(q)`` over every value in Python, so strings and bools become
    numbers silently (and a 14k-row table pays a Python loop)."""
    with pytest.raises(TypeError, match="qualit"):
        router().calibrate(
            ["p1", "p2"],
            {"cheap": ["0.5", "1"], "best": [True, False]},  # type: ignore[list-item]
        )


@pytest.mark.parametrize("request_id", [-1, 2**64, 10**30])
def test_an_out_of_range_request_id_is_a_value_error_naming_it(request_id: int) -> None:
    """Reproduction: ``report_quality(-1, 0.5)`` raises a bare
    ``OverflowError: can't convert negative int to unsigned`` naming no
    field (issue 11: overflow is a ValueError that names the field)."""
    with pytest.raises(ValueError, match="request_id"):
        router().report_quality(request_id, 0.5)


def test_a_negative_seed_is_a_value_error_naming_it() -> None:
    """Reproduction: ``ContextualRouter([...], selector=ContextualSelector(
    seed=-1))`` raises a bare OverflowError."""
    with pytest.raises(ValueError, match="seed"):
        ContextualRouter(["a", "b"], selector=ContextualSelector(seed=-1))


def test_a_huge_finite_embedding_keeps_predictions_finite() -> None:
    """Reproduction: with ``embedding_dim=4``, ``predict("x",
    embedding=np.full(4, 3e38, np.float32))`` returns ``uncertainty=inf`` for
    every model (the variance term overflows f32). Either refuse embedding
    values beyond a documented bound or compute in f64."""
    routed = ContextualRouter(["a", "b"], selector=ContextualSelector(embedding_dim=4))
    try:
        predictions = routed.predict("x", embedding=np.full(4, 3e38, np.float32))
    except ValueError as exc:
        assert "embedding" in str(exc)
        return
    for p in predictions:
        assert math.isfinite(p.quality) and math.isfinite(p.uncertainty), p


def test_a_million_character_prompt_is_routed() -> None:
    """A 1 MB prompt and a 1 MB emoji prompt are featurised and decided
    (promise kept: bounded work, no error)."""
    routed = router()
    assert routed.decide("word " * 200_000).model in COSTS
    assert routed.decide("\N{SLIGHTLY SMILING FACE}" * 250_000).model in COSTS


@pytest.mark.parametrize(
    ("embedding", "error"),
    [
        (np.zeros(5, np.float32), ValueError),
        (np.zeros((2, 2), np.float32), ValueError),
        (np.zeros(4, np.float64), TypeError),
        (np.full(4, np.nan, np.float32), ValueError),
        (np.full(4, np.inf, np.float32), ValueError),
        ([0.1] * 4, TypeError),
    ],
)
def test_wrong_embeddings_are_clear_errors(embedding: object, error: type[Exception]) -> None:
    """Wrong length, shape, dtype, NaN, inf and plain lists are refused
    naming the embedding (promise kept)."""
    routed = ContextualRouter(["a", "b"], selector=ContextualSelector(embedding_dim=4))
    with pytest.raises(error, match="embedding"):
        routed.decide("x", embedding=embedding)


def test_a_truncated_or_foreign_state_is_refused() -> None:
    """A router state cut in half, with a bumped format version, or of
    random bytes is a ValueError (promise kept)."""
    routed = router()
    routed.calibrate(["what is 2+2", "prove it"] * 10, {"cheap": [1, 0] * 10, "best": [1] * 20})
    blob = routed.to_bytes()
    for bad in (blob[: len(blob) // 2], b"ORCROUTE\x02" + blob[9:], bytes(range(200))):
        with pytest.raises(ValueError, match="state"):
            ContextualRouter.from_bytes(bad)


def test_a_bit_flipped_state_is_refused() -> None:
    """Reproduction: flip one bit in the middle of ``to_bytes()`` (a weight):
    ``from_bytes`` loads it silently (297 of 300 random single-bit flips
    load). The binary format (contextual/persist.rs) carries no checksum, so
    a state damaged on disk or in Redis is served as learned knowledge."""
    routed = router()
    routed.calibrate(["what is 2+2", "prove it"] * 10, {"cheap": [1, 0] * 10, "best": [1] * 20})
    blob = bytearray(routed.to_bytes())
    blob[len(blob) // 2] ^= 0x10
    with pytest.raises(ValueError, match="state"):
        ContextualRouter.from_bytes(bytes(blob))


def write_table(path: Path, header: list[str], rows: Sequence[tuple[str, ...]], **kw: str) -> Path:
    with path.open("w", newline="", **kw) as handle:  # type: ignore[call-overload]
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def eval_args(path: Path) -> list[str]:
    return [str(path), "--cost", "cheap=0.001", "--cost", "best=0.01"]


def test_an_excel_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Reproduction: the valid table saved as "CSV UTF-8" by Excel (a
    leading BOM) fails with ``invalid table ...: no column 'prompt'``
    (``load_table`` opens with encoding="utf-8", not "utf-8-sig")."""
    path = write_table(tmp_path / "t.csv", ["prompt", "cheap", "best"], ROWS, encoding="utf-8-sig")
    assert eval_main(eval_args(path)) == 0


def test_a_duplicated_model_column_is_refused(tmp_path: Path) -> None:
    """Reproduction: header ``prompt,cheap,best,cheap``: csv.DictReader keeps
    the LAST ``cheap`` column silently and the run reports figures for a
    table the user did not mean (APGR 0.50 instead of 0.75 here)."""
    rows = [(*r, "False") for r in ROWS]
    path = write_table(tmp_path / "t.csv", ["prompt", "cheap", "best", "cheap"], rows)
    assert eval_main(eval_args(path)) == 2


def test_a_table_that_is_not_utf8_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: a Latin-1 table (``\\xe9t\\xe9``) ends in a
    UnicodeDecodeError traceback and exit 1: ``main`` catches EvalError and
    OSError only."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"prompt,cheap,best\n\xe9t\xe9,True,False\nx,False,True\n" * 3)
    try:
        code = eval_main(eval_args(path))
    except UnicodeDecodeError as exc:
        pytest.fail(f"traceback instead of an error line: {exc}")
    assert code == 2
    assert "UTF-8" in capsys.readouterr().err


def limit_memory() -> None:
    """The child may use at most 3 GB (so an unbounded run fails, not the machine)."""
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


def test_an_absurd_number_of_operating_points_is_refused(tmp_path: Path) -> None:
    """Reproduction: ``orchestrator eval t.csv --cost cheap=0.001 --cost
    best=0.01 --points 1000000`` on a 40-row table ran for 10 minutes and
    grew to 4.8 GB before it was killed: ``--points`` has no documented
    maximum. Here in a child limited to 3 GB of address space and 40 s: it
    must exit 2 with an error naming --points."""
    path = write_table(tmp_path / "t.csv", ["prompt", "cheap", "best"], ROWS)
    args = [*eval_args(path), "--points", "1000000"]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator.evaluation", *args],
            capture_output=True,
            text=True,
            timeout=40,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("--points 1000000 was still running after 40 s")
    assert done.returncode == 2, done.stderr[-500:]
    assert "points" in done.stderr


def test_the_registry_routes_by_prompt() -> None:
    """Issue 13's registry promise: ``ModelRegistry(selection_strategy=
    "contextual")`` and ``select_model(prompt=...)``. Reproduction: the
    strategy name is refused ("invalid selection_strategy: 'contextual'")
    and ``select_model`` takes no ``prompt``: the router exists standalone
    (orchestrator.routing) but is not integrated into the selection pass."""
    registry = ModelRegistry(selection_strategy="contextual")
    registry.register_model(ScriptedModel("cheap"))
    registry.register_model(ScriptedModel("best"))
    chosen = registry.select_model(prompt="what is 2+2")
    assert chosen.name in {"cheap", "best"}
