"""Two builds of the gateway side by side, in one run, against one upstream:

    git worktree add /tmp/before <rev>            # and build its extension there,
    (cd /tmp/before && python -m pip install -q --no-deps -e .)   # or copy _core*.so in
    python benches/gateway_compare.py /tmp/before .

The machine's speed varies about 2x over hours (``benches/gateway.py``
records a yardstick of it), so figures from runs at different times compare
the machine as much as the code. Here every figure of one build has one of
the other taken just before or after it: ``oha`` runs at a fixed rate
alternate between the builds (with a direct run to the upstream in each
round), then blocks of sequential requests alternate too (first streamed
byte, and a plain answer). Each build's gateway runs as ``orchestrator
serve`` with one worker, from its tree's ``python/`` (``PYTHONPATH``).
Prints each round and the medians; writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

from gateway import (
    BENCH_DIR,
    GATEWAY_KEY,
    UPSTREAM_DELAY,
    UPSTREAM_KEY,
    Bench,
    first_byte_ms,
    free_port,
    oha,
    process,
    serve_command,
    wait_ready,
)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def sequential_ms(url: str, key: str, model: str, count: int, *, stream: bool) -> float:
    """The median milliseconds to the first body byte of ``count`` sequential requests."""
    return statistics.median(first_byte_ms(url, key, model, count, stream=stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs=2, type=Path, help="the two checkouts: before, after")
    parser.add_argument("--rate", type=int, default=500, help="requests per second of oha runs")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per oha run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measurement")
    parser.add_argument("--sequential", type=int, default=300, help="requests per block")
    options = parser.parse_args()
    trees = [tree.resolve() for tree in options.trees]
    for tree in trees:
        if not list((tree / "python" / "orchestrator").glob("_core*.so")):
            sys.exit(f"{tree}: no built extension in python/orchestrator (see the docstring)")
    work = Path(tempfile.mkdtemp(prefix="gateway-compare-"))
    bench = Bench(work)
    config = bench.gateway_config("local")
    env = {"BENCH_GATEWAY_KEY": GATEWAY_KEY, "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
    upstream_args = [
        sys.executable,
        str(BENCH_DIR / "gateway_upstream.py"),
        str(bench.upstream_port),
        str(UPSTREAM_DELAY),
    ]
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(process(upstream_args, work / "upstream.log"))
        direct = f"http://127.0.0.1:{bench.upstream_port}/v1/chat/completions"
        models = direct.replace("chat/completions", "models")
        wait_ready(upstream, models, work / "upstream.log", 60)
        gateways: dict[str, tuple[str, int]] = {}
        for label, tree in zip(("before", "after"), trees):
            port = free_port()
            log = work / f"{label}.log"
            tree_env = {**env, "PYTHONPATH": str(tree / "python")}
            proc = stack.enter_context(process(serve_command(port, 1, config), log, tree_env))
            wait_ready(proc, f"http://127.0.0.1:{port}/healthz", log, 120)
            gateways[label] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid)
        loaded: dict[str, list[tuple[float, float, float]]] = {label: [] for label in gateways}
        for round_ in range(options.rounds):
            base = oha(direct, options.rate, options.seconds, None, "direct", 1, upstream.pid)
            for label, (url, pid) in gateways.items():
                run = oha(url, options.rate, options.seconds, GATEWAY_KEY, label, 1, pid)
                added = (run.p50_ms - base.p50_ms, run.p99_ms - base.p99_ms)
                loaded[label].append((*added, run.cpu_ms_per_request))
                say(
                    f"round {round_ + 1} {label}: {options.rate} RPS, added P50 {added[0]:.2f} "
                    f"P99 {added[1]:.2f} ms, CPU {run.cpu_ms_per_request:.3f} ms/request"
                )
        blocks: dict[str, dict[str, list[float]]] = {
            label: {"stream": [], "plain": []} for label in gateways
        }
        count = options.sequential
        for round_ in range(options.rounds):
            for kind in ("stream", "plain"):
                stream = kind == "stream"
                baseline = sequential_ms(direct, "", "gpt-4o-mini", count, stream=stream)
                for label, (url, _) in gateways.items():
                    ms = sequential_ms(url, GATEWAY_KEY, "auto", count, stream=stream)
                    blocks[label][kind].append(ms - baseline)
                    say(
                        f"round {round_ + 1} {label}: sequential {kind}, first byte added "
                        f"{ms - baseline:.2f} ms"
                    )
    say(f"\nmedians over {options.rounds} rounds (server logs in {work}):")
    for label in gateways:
        p50, p99, cpu = (statistics.median(values) for values in zip(*loaded[label]))
        stream_ms = statistics.median(blocks[label]["stream"])
        plain_ms = statistics.median(blocks[label]["plain"])
        say(
            f"{label:>6}: {options.rate} RPS added P50 {p50:.2f} / P99 {p99:.2f} ms, "
            f"CPU {cpu:.3f} ms/request; sequential first byte added {stream_ms:.2f} ms "
            f"(streamed), {plain_ms:.2f} ms (plain)"
        )


if __name__ == "__main__":
    main()
