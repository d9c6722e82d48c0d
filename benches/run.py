"""Run every benchmark and write the results.

    python benches/run.py                  # everything (~10 min on 2 cores)
    python benches/run.py --quick          # fewer sizes, seeds and rounds (~3 min)
    python benches/run.py --full           # also LiteLLM at 10,000 deployments (slow)
    python benches/run.py --compare OLD.json [NEW.json]   # change between two runs

A full run writes, in ``benches/results/`` (committed): ``benchmark.json``
(pytest-benchmark's raw output), ``quality.json`` (the simulator runs),
``latest.json`` (both, per operation, with the machine), ``RESULTS.md`` (the
Markdown tables) and PNG charts. Every figure of the README comes from there.
A partial run (``--quick``, ``-k`` or named files) writes the same files to the
untracked ``bench-results/`` instead, so it never overwrites the committed
results; ``--out DIR`` chooses another folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SIZES = (10, 100, 1000, 10000)
US = 1e6


# ----- machine -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("orchestrator", "litellm", "mabwiser", "numpy", "httpx", "pytest-benchmark"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ----- running ---------------------------------------------------------------------------


def run_pytest(args: argparse.Namespace, results: Path) -> int:
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "ORCH_BENCH_RESULTS": str(results),
        "ORCH_BENCH_QUICK": "1" if args.quick else "",
        "ORCH_BENCH_FULL": "1" if args.full else "",
    }
    targets = args.files or [str(BENCH_DIR)]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "testpaths=benches",
        f"--benchmark-json={results / 'benchmark.json'}",
        "--benchmark-warmup=on",
        "--benchmark-warmup-iterations=1000",
        "--benchmark-min-rounds=5",
        f"--benchmark-max-time={0.3 if args.quick else 1.0}",
        "--benchmark-columns=median,iqr,min,rounds",
        "--benchmark-sort=mean",
    ]
    if args.k:
        cmd += ["-k", args.k]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


# ----- collecting ------------------------------------------------------------------------


def collect(results: Path, info: dict[str, Any]) -> dict[str, Any]:
    raw = json.loads((results / "benchmark.json").read_text())
    rows = []
    for b in raw["benchmarks"]:
        extra = b.get("extra_info", {})
        ops = int(extra.get("operations_per_round", 1))
        st = b["stats"]
        rows.append(
            {
                "group": b.get("group") or "ungrouped",
                "name": b["name"],
                "contender": extra.get("contender", b["name"]),
                "extra": extra,
                "operations_per_round": ops,
                "median_s": st["median"] / ops,
                "iqr_s": st["iqr"] / ops,
                "min_s": st["min"] / ops,
                "mean_s": st["mean"] / ops,
                "stddev_s": st["stddev"] / ops,
                "rounds": st["rounds"],
                "iterations": st.get("iterations", 1),
            }
        )
    quality_path = results / "quality.json"
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else None
    if quality is not None:
        quality.pop("runs", None)
    return {"machine": info, "benchmarks": rows, "quality": quality}


def find(rows: list[dict[str, Any]], group: str, prefix: str) -> Optional[dict[str, Any]]:
    for r in rows:
        if r["group"] == group and r["contender"].startswith(prefix):
            return r
    return None


def targets(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(target, goal, measured, verdict)`` rows."""
    rows = data["benchmarks"]
    out: list[tuple[str, str, str, str]] = []

    def verdict(ok: Optional[bool]) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    for n, goal in ((100, 0.6), (1000, 2.5)):
        r = find(rows, f"select n={n}", "orchestrator select_model")
        val = r["median_s"] * US if r else None
        out.append(
            (
                f"`select_model` at {n:,} models",
                f"<= {goal:g} µs",
                f"{val:.2f} µs" if val is not None else "not run",
                verdict(None if val is None else val <= goal),
            )
        )
    ours = find(rows, "select n=100", "orchestrator select_model")
    base = find(rows, "select n=100", "plain-Python baseline select")
    if ours and base:
        ratio = base["median_s"] / ours["median_s"]
        out.append(
            (
                "`select_model` vs plain Python, 100 models",
                ">= 25x",
                f"{ratio:.1f}x ({ours['median_s'] * US:.2f} vs {base['median_s'] * US:.2f} µs)",
                verdict(ratio >= 25),
            )
        )
    ours_round = find(rows, "round n=100", "orchestrator select + report")
    base_round = find(rows, "round n=100", "plain-Python baseline")
    if ours_round and base_round:
        val = ours_round["median_s"] * US
        out.append(
            (
                "select + report, 100 models",
                "<= 1.0 µs",
                f"{val:.2f} µs (plain Python {base_round['median_s'] * US:.2f} µs, "
                f"{base_round['median_s'] / ours_round['median_s']:.1f}x)",
                verdict(val <= 1.0),
            )
        )
    ours_select = find(rows, "select n=100", "orchestrator select_model")
    litellm = [
        r for r in rows if r["group"] == "select n=100" and r["contender"].startswith("LiteLLM")
    ]
    if ours_select and litellm:
        cheapest = min(litellm, key=lambda r: r["median_s"])
        ratio = cheapest["median_s"] / ours_select["median_s"]
        out.append(
            (
                "`select_model` vs LiteLLM's cheapest pick, 100 models",
                ">= 100x",
                f"{ratio:.0f}x ({cheapest['contender']}: {cheapest['median_s'] * US:.0f} µs)",
                verdict(ratio >= 100),
            )
        )
    mab = find(rows, "round n=100", "MABWiser UCB1")
    if ours_round and mab:
        ratio = mab["median_s"] / ours_round["median_s"]
        out.append(
            (
                "select-and-report vs MABWiser UCB1 round, 100 models",
                ">= 100x",
                f"{ratio:.0f}x ({mab['median_s'] * US:.0f} µs)",
                verdict(ratio >= 100),
            )
        )
    q = data.get("quality")
    if q:
        summary = q["summary"]
        for scenario, factor in (("stationary", 1.0), ("drift", 2.0), ("outage", 2.0)):
            s = summary.get(scenario, {})
            peers = [s[p]["regret_mean"] for p in ("mabwiser_ucb1", "mabwiser_thompson") if p in s]
            ours = {k: v["regret_mean"] for k, v in s.items() if not k.startswith("mabwiser")}
            if not peers or not ours:
                continue
            best_peer = min(peers)
            best_name = min(ours, key=lambda k: ours[k])
            ratio = best_peer / ours[best_name] if ours[best_name] > 0 else float("inf")
            goal = (
                "no worse than MABWiser" if factor == 1.0 else f">= {factor:g}x lower than MABWiser"
            )
            out.append(
                (
                    f"regret, {scenario}",
                    goal,
                    f"best ours {best_name} {ours[best_name]:.1f} vs best MABWiser "
                    f"{best_peer:.1f} ({ratio:.2f}x); "
                    f"default ucb {ours.get('ucb', float('nan')):.1f}",
                    verdict(ratio >= factor),
                )
            )
    e2e = e2e_overheads(rows)
    for conc, vals in sorted(e2e.items()):
        ours, lite = vals.get("orchestrator"), vals.get("LiteLLM")
        if ours is None or lite is None:
            continue
        ok = lite > 0 and ours < lite / 10
        out.append(
            (
                f"e2e overhead at {conc} concurrent",
                "< 1/10 of LiteLLM's",
                f"{ours * 1e3:.3f} ms vs {lite * 1e3:.3f} ms per request",
                verdict(ok),
            )
        )
    return out


def e2e_overheads(rows: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per-request overhead over raw httpx, by concurrency and contender family."""
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        if not r["group"].startswith("e2e concurrency="):
            continue
        conc = int(r["group"].split("=")[1])
        raw = find(rows, r["group"], "raw httpx")
        if raw is None or r is raw:
            continue
        family = "orchestrator" if r["contender"].startswith("orchestrator") else "LiteLLM"
        out.setdefault(conc, {})[family] = (r["median_s"] - raw["median_s"]) / conc
    return out


# ----- writing ---------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"


def group_key(group: str) -> tuple[str, int]:
    head, _, tail = group.partition("=")
    try:
        return head, int(tail)
    except ValueError:
        return group, 0


def markdown(data: dict[str, Any], results: Path) -> str:
    m = data["machine"]
    v = m["versions"]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benches/run.py`; do not edit by hand.",
        "",
        "| Machine | |",
        "|---|---|",
        f"| CPU | {m['cpu']} ({m['cores']} cores) |",
        f"| OS | {m['os']} |",
        f"| Python | {m['implementation']} {m['python']} |",
        "| Versions | " + ", ".join(f"{k} {val}" for k, val in v.items()) + " |",
        f"| Date | {m['date']} |",
        "",
        "## Targets",
        "",
        "| Target | Goal | Measured | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(data)]
    rows = data["benchmarks"]
    lines += [
        "",
        "## Selection speed",
        "",
        "Median time per operation (per request for batches and async contenders), "
        "interquartile range, and how many times slower than the fastest in the group.",
        "",
    ]
    groups = sorted({r["group"] for r in rows}, key=group_key)
    sel_groups = [g for g in groups if g.startswith(("select n=", "round n="))]
    for group in sel_groups:
        lines += table_for(group, [r for r in rows if r["group"] == group])
    e2e_groups = [g for g in groups if g.startswith("e2e ")]
    if e2e_groups:
        lines += [
            "## End-to-end overhead",
            "",
            "A loopback OpenAI-compatible server (child process) answers after "
            f"{e2e_delay(rows) * 1e3:g} ms. Median wall time per round (one request, or "
            "100 concurrent requests); overhead is the difference to raw httpx, per request.",
            "",
        ]
        over = e2e_overheads(rows)
        for group in e2e_groups:
            conc = int(group.split("=")[1])
            grp = sorted((r for r in rows if r["group"] == group), key=lambda r: r["median_s"])
            lines += [
                f"### {conc} concurrent request{'s' if conc > 1 else ''}",
                "",
                "| Contender | Median per round | IQR | Overhead per request |",
                "|---|---:|---:|---:|",
            ]
            for r in grp:
                fam = (
                    None
                    if r["contender"].startswith("raw")
                    else "orchestrator"
                    if r["contender"].startswith("orchestrator")
                    else "LiteLLM"
                )
                o = "—" if fam is None else fmt_time(over.get(conc, {}).get(fam, float("nan")))
                median, iqr = fmt_time(r["median_s"]), fmt_time(r["iqr_s"])
                lines.append(f"| {r['contender']} | {median} | {iqr} | {o} |")
            lines.append("")
    other = [g for g in groups if g not in sel_groups and g not in e2e_groups]
    if other:
        lines += ["## Other benchmarks", ""]
        for group in other:
            lines += table_for(group, [r for r in rows if r["group"] == group])
    q = data.get("quality")
    if q:
        lines += [
            "## Selection quality",
            "",
            f"Simulator `orchestrator.simulation`, {q['seeds']} seeds x {q['requests']:,} "
            "requests per scenario, the same seeds for every policy. Cumulative pseudo-regret "
            "(sum over requests of the best eligible model's expected reward minus the "
            "chosen one's) and failed requests: mean ± standard deviation over seeds, "
            "median [quartiles].",
            "",
        ]
        for scenario, strategies in q["summary"].items():
            lines += [
                f"### {scenario}",
                "",
                "| Policy | Regret mean ± sd | Regret median [q1, q3] "
                "| Failed requests mean ± sd |",
                "|---|---:|---:|---:|",
            ]
            for name, s in sorted(strategies.items(), key=lambda kv: kv[1]["regret_mean"]):
                lines.append(
                    f"| {name} | {s['regret_mean']:.1f} ± {s['regret_std']:.1f} | "
                    f"{s['regret_median']:.1f} [{s['regret_q1']:.1f}, {s['regret_q3']:.1f}] | "
                    f"{s['failures_mean']:.1f} ± {s['failures_std']:.1f} |"
                )
            lines.append("")
    lines += ["## Charts", ""]
    for png in sorted(results.glob("*.png")):
        lines.append(f"![{png.stem}]({png.name})")
    lines.append("")
    return "\n".join(lines)


def e2e_delay(rows: list[dict[str, Any]]) -> float:
    for r in rows:
        if "server_delay_s" in r["extra"]:
            return float(r["extra"]["server_delay_s"])
    return float("nan")


def table_for(group: str, rows: list[dict[str, Any]]) -> list[str]:
    rows = sorted(rows, key=lambda r: r["median_s"])
    fastest = rows[0]["median_s"]
    out = [
        f"### {group}",
        "",
        "| Contender | Median | IQR | Min | Rounds | x fastest |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['contender']} | {fmt_time(r['median_s'])} | {fmt_time(r['iqr_s'])} | "
            f"{fmt_time(r['min_s'])} | {r['rounds']:,} | {r['median_s'] / fastest:,.1f} |"
        )
    out.append("")
    return out


def charts(data: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["benchmarks"]
    for kind, title in (("select", "One pick"), ("round", "Pick + report one outcome")):
        contenders = sorted({r["contender"] for r in rows if r["group"].startswith(f"{kind} n=")})
        if not contenders:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        for c in contenders:
            pts = sorted(
                (r["extra"].get("models", 0), r["median_s"] * US, r["iqr_s"] * US)
                for r in rows
                if r["contender"] == c and r["group"].startswith(f"{kind} n=")
            )
            xs, ys, es = zip(*pts)
            ax.errorbar(xs, ys, yerr=[e / 2 for e in es], marker="o", label=c, capsize=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("models / deployments / arms")
        ax.set_ylabel("median µs per request (log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"speed_{kind}.png", dpi=110)
        plt.close(fig)
    q = data.get("quality")
    if q:
        scenarios = list(q["summary"])
        fig, axes = plt.subplots(1, len(scenarios), figsize=(4 * len(scenarios), 4.5))
        for ax, scenario in zip(axes if len(scenarios) > 1 else [axes], scenarios):
            s = q["summary"][scenario]
            names = list(s)
            ax.bar(
                range(len(names)),
                [s[n]["regret_mean"] for n in names],
                yerr=[s[n]["regret_std"] for n in names],
                color=["tab:orange" if n.startswith("mabwiser") else "tab:blue" for n in names],
                capsize=3,
            )
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
            ax.set_title(scenario)
            ax.set_ylabel("cumulative regret (mean ± sd)")
        fig.tight_layout()
        fig.savefig(out / "quality_regret.png", dpi=110)
        plt.close(fig)
    over = e2e_overheads(rows)
    if over:
        fig, ax = plt.subplots(figsize=(6, 4))
        concs = sorted(over)
        width = 0.35
        for k, fam in enumerate(("orchestrator", "LiteLLM")):
            ax.bar(
                [i + k * width for i in range(len(concs))],
                [over[c].get(fam, 0.0) * 1e3 for c in concs],
                width,
                label=fam,
            )
        ax.set_xticks([i + width / 2 for i in range(len(concs))])
        ax.set_xticklabels([f"{c} concurrent" for c in concs])
        ax.set_ylabel("overhead over raw httpx, ms per request")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "e2e_overhead.png", dpi=110)
        plt.close(fig)


# ----- comparing -------------------------------------------------------------------------


def compare(old_path: Path, new_path: Path) -> None:
    old = json.loads(old_path.read_text())
    new = json.loads(new_path.read_text())
    before = {(r["group"], r["contender"]): r for r in old["benchmarks"]}
    print(f"{'group':22} {'contender':62} {'old':>12} {'new':>12} {'change':>8}")
    for r in sorted(new["benchmarks"], key=lambda r: (group_key(r["group"]), r["contender"])):
        o = before.get((r["group"], r["contender"]))
        if o is None:
            continue
        change = (r["median_s"] / o["median_s"] - 1) * 100
        print(
            f"{r['group']:22} {r['contender'][:62]:62} {fmt_time(o['median_s']):>12} "
            f"{fmt_time(r['median_s']):>12} {change:+7.1f}%"
        )
    qo, qn = old.get("quality"), new.get("quality")
    if qo and qn:
        print("\nregret (mean)")
        for scenario, strategies in qn["summary"].items():
            for name, s in strategies.items():
                o = qo["summary"].get(scenario, {}).get(name)
                if o:
                    before, after = o["regret_mean"], s["regret_mean"]
                    print(f"{scenario:18} {name:20} {before:9.1f} -> {after:9.1f}")


def results_folder(args: argparse.Namespace) -> Path:
    """``benches/results`` for a full run; the untracked ``bench-results/`` for a
    partial one, so committed results only ever come from full runs."""
    partial = args.quick or args.k or args.files
    return BENCH_DIR.parent / "bench-results" if partial else BENCH_DIR / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, seeds and rounds")
    parser.add_argument("--full", action="store_true", help="also LiteLLM at 10,000 deployments")
    parser.add_argument("--compare", nargs="+", metavar="JSON", help="OLD.json [NEW.json]")
    parser.add_argument("--report-only", action="store_true", help="rewrite from benchmark.json")
    parser.add_argument("-k", help="pytest -k expression (a subset)")
    parser.add_argument("files", nargs="*", help="bench files (default: all of benches/)")
    parser.add_argument("--out", type=Path, help="results folder (default: see above)")
    args = parser.parse_args()
    results = args.out or results_folder(args)
    if args.compare:
        new = Path(args.compare[1]) if len(args.compare) > 1 else results / "latest.json"
        compare(Path(args.compare[0]), new)
        return 0
    results.mkdir(parents=True, exist_ok=True)
    code = 0
    if not args.report_only:
        stale = results / "quality.json"
        if stale.exists():
            stale.unlink()
        code = run_pytest(args, results)
        if not (results / "benchmark.json").exists():
            return code or 1
    data = collect(results, machine())
    charts(data, results)
    (results / "latest.json").write_text(json.dumps(data, indent=1))
    (results / "RESULTS.md").write_text(markdown(data, results))
    print(f"\nwrote {results / 'RESULTS.md'} and {results / 'latest.json'}")
    for row in targets(data):
        print(" | ".join(row))
    return code


if __name__ == "__main__":
    sys.exit(main())
