"""Prompt-aware routing (:mod:`orchestrator.routing`), side by side with
scikit-learn on the same features in the same run.

Timing groups (pytest-benchmark):

* ``routing decision``: one decision for a 2,048-byte prompt over 10 models —
  featurize + score + choose in the core — against scikit-learn's
  ``HashingVectorizer`` (same word 1-2-grams, same 2**16 buckets) followed by
  the 10 models' ``LogisticRegression.predict_proba`` (what a caller would
  write), against the same vectorizer with the 10 models' weights stacked
  into one sparse-dense product (the fastest scikit-learn/numpy form), and
  against the same algorithm in plain Python.
* ``routing calibrate``: fitting 14,037 prompts × 2 models (the MMLU table
  when ``../shared/data/routellm-mmlu/mmlu.csv`` is present, else the
  synthetic prompt mix of the same size) against scikit-learn
  ``HashingVectorizer`` + two ``LogisticRegression`` fits; and 10,000
  prompts × 10 models in the core.

* ``routing featurize + score, N models``: a 200-byte and a 2,048-byte
  prompt featurized and scored for 10, 100 and 1,000 models (greedy
  decisions, whose pick adds one expected quality per model), the loop the
  router's speed rests on.

Quality (not timing; written to ``results/routing.json``): ``orchestrator
eval``'s figures on the MMLU table (calibrated, online, and with labels
shuffled across prompts) and on the synthetic prompt mix (two and three
models), which the router was never tuned on: every figure at seed 0, and
APGR and CPT(50%) at seeds 0-4 with their mean, spread and minimum.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from bench_common import RESULTS_DIR
from orchestrator.evaluation import EvalTable, evaluate, load_table
from orchestrator.routing import ContextualRouter, ContextualSelector
from orchestrator.routing.synthetic import prompt_mix

pytestmark = pytest.mark.timeout(900)

MMLU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routellm-mmlu" / "mmlu.csv"
MMLU_MODELS = {"mistralai/Mixtral-8x7B-Instruct-v0.1": 0.00024, "gpt-4-1106-preview": 0.01}
"""Per-call USD: RouteLLM's per-million-token prices at ~1k tokens a call."""
MODELS = [f"model-{i}" for i in range(10)]
COSTS = {name: 0.0005 * (i + 1) for i, name in enumerate(MODELS)}
HASH_BITS = 16


def _mmlu_path() -> Path:
    for candidate in (MMLU, Path("/work/shared/data/routellm-mmlu/mmlu.csv")):
        if candidate.exists():
            return candidate
    return MMLU


PROMPT_BYTES = 2048
"""Length of the long benchmark prompt (ASCII, so bytes and characters agree)."""


def two_kb_prompt() -> str:
    """A 2,048-byte prompt mixing prose, a question, numbers and a code fence."""
    rng = random.Random(0)
    sentence = (
        "the model should explain why this function fails when the input list is empty "
        "and how to compute the integral of x squared between zero and three quickly"
    )
    words = sentence.split(" ")
    text = " ".join(rng.choice(words) for _ in range(220))
    prompt = f"{text}?\n```python\ndef f(xs):\n    return sum(xs) / len(xs)\n```\n"
    while len(prompt) < PROMPT_BYTES:
        prompt += "Answer with 3 steps, 1) 2) 3). "
    return prompt[:PROMPT_BYTES]


def training_table(
    rows: int, models: list[str], seed: int = 0
) -> tuple[list[str], dict[str, list[float]]]:
    """The synthetic prompt mix with each extra model a noisy copy of one of the three."""
    mix = prompt_mix(rows, seed=seed)
    rng = random.Random(seed)
    bases = list(mix.qualities)
    qualities = {
        name: [q if rng.random() > 0.1 else 1.0 - q for q in mix.qualities[bases[i % 3]]]
        for i, name in enumerate(models)
    }
    return mix.prompts, qualities


@pytest.fixture(scope="module")
def trained() -> ContextualRouter:
    prompts, qualities = training_table(2000, MODELS)
    router = ContextualRouter(MODELS, costs=COSTS, selector=ContextualSelector(hash_bits=HASH_BITS))
    router.calibrate(prompts, qualities)
    return router


@pytest.fixture(scope="module")
def sklearn_models() -> tuple[HashingVectorizer, list[LogisticRegression]]:
    prompts, qualities = training_table(2000, MODELS)
    vectorizer = HashingVectorizer(n_features=2**HASH_BITS, ngram_range=(1, 2), alternate_sign=True)
    features = vectorizer.transform(prompts)
    return vectorizer, [
        LogisticRegression(max_iter=200).fit(features, qualities[m]) for m in MODELS
    ]


# ----- one decision ------------------------------------------------------------------


def test_decision_orchestrator(benchmark: Any, trained: ContextualRouter) -> None:
    prompt = two_kb_prompt()
    core = trained._core
    benchmark.group = "routing decision (2 KB prompt, 10 models)"
    benchmark.extra_info.update(contender="orchestrator featurize + score + choose", models=10)
    model, _, quality = benchmark(core.decide, prompt, 1.0, record=False)
    assert model in MODELS and 0.0 <= quality <= 1.0


def test_decision_sklearn_predict_proba(
    benchmark: Any, sklearn_models: tuple[HashingVectorizer, list[LogisticRegression]]
) -> None:
    vectorizer, models = sklearn_models
    prompt = two_kb_prompt()
    costs = np.array([COSTS[m] for m in MODELS])

    def decide() -> int:
        features = vectorizer.transform([prompt])
        quality = np.array([m.predict_proba(features)[0, 1] for m in models])
        return int(np.argmax(quality - costs))

    benchmark.group = "routing decision (2 KB prompt, 10 models)"
    benchmark.extra_info.update(contender="scikit-learn HashingVectorizer + 10 LR predict_proba")
    assert 0 <= benchmark(decide) < 10


def test_decision_sklearn_stacked(
    benchmark: Any, sklearn_models: tuple[HashingVectorizer, list[LogisticRegression]]
) -> None:
    vectorizer, models = sklearn_models
    prompt = two_kb_prompt()
    weights = np.vstack([m.coef_[0] for m in models]).T
    intercepts = np.array([m.intercept_[0] for m in models])
    costs = np.array([COSTS[m] for m in MODELS])

    def decide() -> int:
        features: sparse.csr_matrix = vectorizer.transform([prompt])
        logits = features @ weights + intercepts
        quality = 1.0 / (1.0 + np.exp(-logits[0]))
        return int(np.argmax(quality - costs))

    benchmark.group = "routing decision (2 KB prompt, 10 models)"
    benchmark.extra_info.update(contender="scikit-learn HashingVectorizer + stacked LR weights")
    assert 0 <= benchmark(decide) < 10


class PlainPythonRouter:
    """The same decision in idiomatic plain Python, as the speed baseline:
    lower-cased word tokens and punctuation, unigrams and bigrams signed-hashed
    (CRC-32 standing in for XXH3) into ``2**16`` buckets, ten dense weight
    rows, logistic quality minus cost, argmax."""

    TOKEN = re.compile(r"\w+|[^\w\s]")

    def __init__(self, models: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.buckets = 2**HASH_BITS
        self.weights = [[rng.gauss(0.0, 0.1) for _ in range(self.buckets)] for _ in range(models)]
        self.costs = [COSTS[m] for m in MODELS[:models]]

    def decide(self, prompt: str) -> int:
        tokens = self.TOKEN.findall(prompt.lower())
        grams = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
        scale = 1.0 / math.sqrt(max(len(grams), 1))
        features: list[tuple[int, float]] = []
        for gram in grams:
            hashed = zlib.crc32(gram.encode())
            sign = scale if hashed & 0x80000000 == 0 else -scale
            features.append((hashed % self.buckets, sign))
        best, best_value = 0, -math.inf
        for model, row in enumerate(self.weights):
            logit = sum(row[index] * value for index, value in features)
            value = 1.0 / (1.0 + math.exp(-logit)) - self.costs[model]
            if value > best_value:
                best, best_value = model, value
        return best


def test_decision_plain_python(benchmark: Any) -> None:
    router = PlainPythonRouter(len(MODELS))
    prompt = two_kb_prompt()
    benchmark.group = "routing decision (2 KB prompt, 10 models)"
    benchmark.extra_info.update(contender="plain-Python featurize + score")
    assert 0 <= benchmark(router.decide, prompt) < len(MODELS)


# ----- featurize + score at 10, 100 and 1,000 models ----------------------------------


@pytest.fixture(scope="module", params=[10, 100, 1000])
def greedy_router(request: pytest.FixtureRequest) -> ContextualRouter:
    """A greedy router over ``request.param`` models calibrated on 1,000 rows
    (1,000 models hold 0.5 GB of weights)."""
    names = [f"model-{i}" for i in range(request.param)]
    router = ContextualRouter(
        names,
        costs={name: 0.0001 * (i + 1) for i, name in enumerate(names)},
        selector=ContextualSelector(hash_bits=HASH_BITS, exploration="greedy"),
    )
    prompts, qualities = training_table(1000, names)
    router.calibrate(prompts, qualities)
    return router


@pytest.mark.parametrize("prompt_bytes", [200, PROMPT_BYTES])
def test_featurize_and_score(
    benchmark: Any, greedy_router: ContextualRouter, prompt_bytes: int
) -> None:
    models = len(greedy_router.models)
    prompt = two_kb_prompt()[:prompt_bytes]
    benchmark.group = f"routing featurize + score, {models} models"
    benchmark.extra_info.update(
        contender=f"featurize + score + greedy pick, {prompt_bytes} B prompt",
        models=models,
        prompt_bytes=prompt_bytes,
    )
    model, _, quality = benchmark(greedy_router._core.decide, prompt, 1.0, record=False)
    assert model in greedy_router.models and 0.0 <= quality <= 1.0


# ----- calibration -------------------------------------------------------------------


def _calibration_table() -> tuple[str, list[str], dict[str, list[float]]]:
    path = _mmlu_path()
    if path.exists():
        table = load_table(path, list(MMLU_MODELS))
        return "MMLU 14,037 × 2", table.prompts, table.qualities
    prompts, qualities = training_table(14037, ["weak", "strong"])
    return "synthetic 14,037 × 2 (MMLU table absent)", prompts, qualities


def test_calibrate_orchestrator(benchmark: Any) -> None:
    label, prompts, qualities = _calibration_table()
    models = list(qualities)

    def calibrate() -> ContextualRouter:
        router = ContextualRouter(models, selector=ContextualSelector(hash_bits=HASH_BITS))
        router.calibrate(prompts, qualities)
        return router

    benchmark.group = "routing calibrate 14k × 2"
    benchmark.extra_info.update(contender="orchestrator calibrate", table=label)
    router = benchmark.pedantic(calibrate, rounds=3, iterations=1, warmup_rounds=0)
    assert router.explain(prompts[0])[0].observations == len(prompts)


def test_calibrate_sklearn(benchmark: Any) -> None:
    label, prompts, qualities = _calibration_table()

    def calibrate() -> list[LogisticRegression]:
        vectorizer = HashingVectorizer(
            n_features=2**HASH_BITS, ngram_range=(1, 2), alternate_sign=True
        )
        features = vectorizer.transform(prompts)
        return [LogisticRegression(max_iter=200).fit(features, y) for y in qualities.values()]

    benchmark.group = "routing calibrate 14k × 2"
    benchmark.extra_info.update(contender="scikit-learn HashingVectorizer + LR fit", table=label)
    fitted = benchmark.pedantic(calibrate, rounds=3, iterations=1, warmup_rounds=0)
    assert len(fitted) == 2


def test_calibrate_orchestrator_10k_x_10(benchmark: Any) -> None:
    prompts, qualities = training_table(10000, MODELS)

    def calibrate() -> ContextualRouter:
        router = ContextualRouter(MODELS, selector=ContextualSelector(hash_bits=HASH_BITS))
        router.calibrate(prompts, qualities)
        return router

    benchmark.group = "routing calibrate 10k × 10"
    benchmark.extra_info.update(contender="orchestrator calibrate", models=10)
    benchmark.pedantic(calibrate, rounds=2, iterations=1, warmup_rounds=0)


# ----- quality -----------------------------------------------------------------------


SEEDS = range(5)
"""Seeds every quality figure is measured at (the protocol's order, folds and draws)."""


def _figures(
    table: EvalTable, costs: dict[str, float], protocol: str, seed: int = 0
) -> dict[str, Any]:
    result = evaluate(table, costs, protocol=protocol, seed=seed)  # type: ignore[arg-type]
    summary = result.summary()
    return {key: summary[key] for key in ("apgr", "cpt50", "cpt80", "random_apgr", "decision_us")}


def _record(
    figures: dict[str, Any], name: str, table: EvalTable, costs: dict[str, float], protocol: str
) -> None:
    """``figures[name]``: the figures at seed 0; ``figures[name + ", seeds 0-4"]``:
    APGR and CPT(50%) at every seed of :data:`SEEDS`, with their spread."""
    runs = [_figures(table, costs, protocol, seed) for seed in SEEDS]
    figures[name] = runs[0]
    apgrs = [run["apgr"] for run in runs]
    figures[f"{name}, seeds 0-4"] = {
        "apgr_by_seed": apgrs,
        "apgr_mean": statistics.mean(apgrs),
        "apgr_sd": statistics.stdev(apgrs),
        "apgr_min": min(apgrs),
        "cpt50_by_seed": [run["cpt50"] for run in runs],
    }


def test_quality_figures() -> None:
    """The eval figures on every table, recorded for benches/run.py and the README."""
    figures: dict[str, Any] = {}
    path = _mmlu_path()
    if path.exists():
        mmlu = load_table(path, list(MMLU_MODELS))
        _record(figures, "mmlu calibrated", mmlu, MMLU_MODELS, "calibrated")
        _record(figures, "mmlu online", mmlu, MMLU_MODELS, "online")
        order = list(range(len(mmlu)))
        random.Random(1).shuffle(order)
        shuffled = EvalTable(
            mmlu.prompts, {m: [v[i] for i in order] for m, v in mmlu.qualities.items()}
        )
        figures["mmlu calibrated, labels shuffled"] = _figures(shuffled, MMLU_MODELS, "calibrated")
    else:
        figures["mmlu"] = f"not measured: {path} is absent"
    mix = prompt_mix(6000, seed=2)
    two = {m: mix.costs[m] for m in ("small", "large")}
    two_table = EvalTable(mix.prompts, {m: mix.qualities[m] for m in two})
    three_table = EvalTable(mix.prompts, mix.qualities)
    for protocol in ("calibrated", "online"):
        _record(figures, f"prompt mix 2 models {protocol}", two_table, two, protocol)
        _record(figures, f"prompt mix 3 models {protocol}", three_table, mix.costs, protocol)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "routing.json").write_text(json.dumps(figures, indent=2) + "\n")
    for name, values in figures.items():
        if isinstance(values, dict) and "random_apgr" in values and "shuffled" not in name:
            assert values["apgr"] > values["random_apgr"], name
