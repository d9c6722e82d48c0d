"""The server stacks the gateway could run on, side by side in one run:

    python benches/gateway_servers.py            # ~5 minutes
    python benches/gateway_servers.py --rounds 5

The issue behind ``orchestrator serve`` asks for uvicorn (uvloop, httptools)
or granian, measured. The question here is what each stack costs before any
of the gateway's logic, so each runs the benchmark's floor
(``benches/gateway_floor.py``: one pass-through relay on the library's
pooled connections) against one upstream: on uvicorn with the gateway's own
protocol, on granian's ASGI interface, and on granian's RSGI interface
(granian's native one, which an ASGI application does not speak). ``oha``
runs at a fixed rate alternate between the stacks, with a direct run to the
upstream in each round, then blocks of sequential streamed requests
alternate too (the first body byte). Prints each round, then the medians;
writes ``benches/results/SERVERS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gateway import (
    BENCH_DIR,
    RESULTS,
    UPSTREAM_DELAY,
    UPSTREAM_KEY,
    add_round_options,
    alternating_runs,
    first_byte_ms,
    free_port,
    process,
    say,
    upstream_command,
    wait_ready,
    yardstick_ms,
)
from gateway_floor import SERVERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_options(parser)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-servers-"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    yardstick = yardstick_ms()
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
    direct = f"{upstream_url}/chat/completions"
    upstream_args = upstream_command(upstream_port)
    first_bytes: dict[str, list[float]] = {name: [] for name in SERVERS}
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(process(upstream_args, work / "upstream.log"))
        wait_ready(upstream, f"{upstream_url}/models", work / "upstream.log", 60)
        floors: dict[str, tuple[str, int]] = {}
        for name in SERVERS:
            port, log = free_port(), work / f"{name}.log"
            args = [sys.executable, str(BENCH_DIR / "gateway_floor.py"), str(port)]
            args += [upstream_url, UPSTREAM_KEY, "--server", name]
            floor = stack.enter_context(process(args, log))
            wait_ready(floor, f"http://127.0.0.1:{port}/healthz", log, 60)
            floors[name] = (f"http://127.0.0.1:{port}/v1/chat/completions", floor.pid)
        targets = {name: (url, pid, None) for name, (url, pid) in floors.items()}
        added = alternating_runs((direct, upstream.pid), targets, options)
        for round_ in range(options.rounds):
            baseline = statistics.median(
                first_byte_ms(direct, None, "gpt-4o-mini", options.sequential)
            )
            for name, (url, _) in floors.items():
                ms = statistics.median(first_byte_ms(url, None, "auto", options.sequential))
                first_bytes[name].append(ms - baseline)
                say(f"round {round_ + 1} {name}: first streamed byte added {ms - baseline:.2f} ms")
    rows = []
    for name in SERVERS:
        p50, p99, cpu = (statistics.median(values) for values in zip(*added[name]))
        first = statistics.median(first_bytes[name])
        rounds = ", ".join(f"{value[0]:.2f}" for value in added[name])
        rows.append(f"| {name} | {p50:.2f} ({rounds}) | {p99:.2f} | {cpu:.3f} | {first:.2f} |")
    report = "\n".join(
        [
            "# The floor on each server stack",
            "",
            f"`python benches/gateway_servers.py`, {started}: the floor relay "
            f"(`benches/gateway_floor.py`) on each stack, one worker, against an upstream "
            f"that answers after {UPSTREAM_DELAY * 1000:.0f} ms; {options.rate} RPS for "
            f"{options.seconds:g} s per run, medians of {options.rounds} alternating rounds "
            f"(each round's P50 in brackets); the first streamed byte over blocks of "
            f"{options.sequential} sequential requests. Machine yardstick "
            f"{yardstick:.0f} ms (see GATEWAY.md).",
            "",
            "| stack | P50 added (ms) | P99 added (ms) | CPU / request (ms) "
            "| first byte added (ms) |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "SERVERS.md").write_text(report)
    say(f"\n{report}\nserver logs in {work}")


if __name__ == "__main__":
    main()
