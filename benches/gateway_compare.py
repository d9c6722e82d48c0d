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
    GATEWAY_KEY,
    UPSTREAM_KEY,
    Bench,
    add_round_options,
    alternating_runs,
    first_byte_ms,
    free_port,
    process,
    say,
    serve_command,
    upstream_command,
    wait_ready,
)


def sequential_ms(url: str, key: str, model: str, count: int, *, stream: bool) -> float:
    """The median milliseconds to the first body byte of ``count`` sequential requests."""
    return statistics.median(first_byte_ms(url, key, model, count, stream=stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs=2, type=Path, help="the two checkouts: before, after")
    add_round_options(parser)
    options = parser.parse_args()
    trees = [tree.resolve() for tree in options.trees]
    for tree in trees:
        if not list((tree / "python" / "orchestrator").glob("_core*.so")):
            sys.exit(f"{tree}: no built extension in python/orchestrator (see the docstring)")
    work = Path(tempfile.mkdtemp(prefix="gateway-compare-"))
    bench = Bench(work)
    config = bench.gateway_config("local")
    env = {"BENCH_GATEWAY_KEY": GATEWAY_KEY, "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
    upstream_args = upstream_command(bench.upstream_port)
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
        targets = {label: (url, pid, GATEWAY_KEY) for label, (url, pid) in gateways.items()}
        loaded = alternating_runs((direct, upstream.pid), targets, options)
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
