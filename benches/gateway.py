"""Gateway overhead benchmark, reproducible in one command:

    python benches/gateway.py                 # ~8 minutes
    python benches/gateway.py --quick         # shorter runs, fewer rates

One upstream (``benches/gateway_upstream.py``: a fixed OpenAI answer after a
fixed delay) is reached four ways, back to back in one run: (a) directly,
(b) through ``orchestrator serve``, (c) through LiteLLM's proxy (same
upstream, one deployment, simple routing), and (d) through the floor
(``benches/gateway_floor.py``: a pass-through proxy on the gateway's own
server stack and connection pool with none of its logic, which shows what
the stack alone adds on this machine). ``oha`` drives each at fixed
request rates (``-q``, with latency correction, so a slow server cannot hide
its queueing) and reports percentiles; the added latency of a gateway is its
percentile minus the direct one at the same rate. Then, with two workers
each, the highest rate each gateway sustains with < 1% errors, and the time
to the first streamed byte (blocks of sequential streamed requests, HTTP keep-alive, in
rounds: direct and every gateway back to back in each).

Needs ``oha`` (``cargo install oha``) and ``redis-server`` (the two gateway
workers share state through it); LiteLLM's proxy runs when ``litellm[proxy]``
is installed (its ``litellm`` command and FastAPI; ``--litellm PATH`` names the
command of another environment, such as a venv made for it, so that its
pins do not touch this one), and is otherwise left out of the run with a
note in the results saying why. Writes
``benches/results/gateway.json`` and ``benches/results/GATEWAY.md`` (a
``--quick`` run: the untracked ``bench-results/``, so it never overwrites the
committed figures); each figure is recorded with the machine's load average
at the time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
UPSTREAM_DELAY = 0.010  # seconds before the upstream answers
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "What is 6 x 7?"}]})
GATEWAY_KEY = "sk-bench-gateway-0123456789"
UPSTREAM_KEY = "sk-bench-upstream-0123456789"


def litellm_command(given: Optional[str]) -> tuple[Optional[str], str]:
    """The ``litellm`` command when its proxy can run (its environment has
    FastAPI, which only the ``proxy`` extra brings), else ``None``; and what
    was found, for the results."""
    found = given or shutil.which("litellm")
    if found is None:
        return None, "no litellm command (pip install 'litellm[proxy]', or --litellm PATH)"
    python = Path(found).with_name("python")
    if not python.is_file():
        return None, f"{found}: no python beside it, so not a litellm command of a venv"
    # The version from the package's metadata: importing litellm would fetch its cost map.
    code = "import fastapi, importlib.metadata as m; print(m.version('litellm'))"
    probe = [str(python), "-c", code]
    checked = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    if checked.returncode != 0:
        return None, f"{found}'s environment has no FastAPI: litellm[proxy] is not installed there"
    return found, f"LiteLLM proxy {checked.stdout.strip() or '(version unknown)'} ({found})"


def yardstick_ms() -> float:
    """Milliseconds a fixed pure-Python loop takes (the median of five): how
    fast this shared machine runs Python right now, so that runs made at
    different times can be compared (its speed varies by about 2x)."""

    def work() -> int:
        table: dict[int, int] = {}
        for i in range(200_000):
            table[i & 1023] = table.get(i & 1023, 0) + i
        return sum(table.values())

    times = []
    for _ in range(5):
        started = time.perf_counter()
        work()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    """One oha run: a target at a rate."""

    target: str
    rate: int
    workers: int
    requests: int
    success_rate: float
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    load_average: float
    #: CPU milliseconds the server (all its processes) spent per answered request.
    cpu_ms_per_request: float
    errors: dict[str, int] = field(default_factory=dict)
    #: A run of the search for the highest sustained rate.
    ceiling: bool = False
    #: Which round of the latency runs (each round measures every rate and target once).
    round: int = 0

    @property
    def sustained(self) -> bool:
        """< 1% errors and at least 95% of the asked rate delivered."""
        return self.success_rate >= 0.99 and self.achieved_rps >= 0.95 * self.rate


@contextlib.contextmanager
def process(
    args: list[str], log: Path, env: Optional[dict[str, str]] = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own session; SIGTERM (then SIGKILL) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    """Wait until ``url`` answers (LiteLLM's proxy takes minutes on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout} s; see {log}")
        time.sleep(0.5)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its
    live descendants (a gateway's workers), from ``/proc``."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # Fields after the command name, which may hold spaces: state, ppid, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, of in parents.items() if of == parent]
        tree.update(children)
        frontier += children
    return sum(times.get(member, 0.0) for member in tree)


def oha(
    url: str,
    rate: int,
    seconds: float,
    key: Optional[str],
    target: str,
    workers: int,
    server_pid: int,
) -> Run:
    """Drive ``url`` at ``rate`` requests per second for ``seconds``; the
    server's CPU time per answered request is measured too (unlike latency,
    it hardly depends on how loaded the machine is)."""
    args = [
        shutil.which("oha") or str(Path.home() / ".cargo/bin/oha"),
        "-z",
        f"{seconds}s",
        "-q",
        str(rate),
        "--latency-correction",
        "-c",
        str(max(32, rate // 10)),
        "--no-tui",
        "--wait-ongoing-requests-after-deadline",
        "--output-format",
        "json",
        "-m",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        BODY,
    ]
    if key:
        args += ["-H", f"authorization: Bearer {key}"]
    load = os.getloadavg()[0]
    cpu_before = tree_cpu_seconds(server_pid)
    out = subprocess.run(
        [*args, url], capture_output=True, check=True, timeout=seconds + 120
    ).stdout
    cpu = tree_cpu_seconds(server_pid) - cpu_before
    report = json.loads(out)
    summary = report["summary"]
    codes = {str(k): int(v) for k, v in report.get("statusCodeDistribution", {}).items()}
    errors = {str(k): int(v) for k, v in report.get("errorDistribution", {}).items()}
    total = sum(codes.values()) + sum(errors.values())
    ok = codes.get("200", 0)
    bad_status = {f"HTTP {k}": v for k, v in codes.items() if k != "200"}
    percentiles = report["latencyPercentiles"]
    return Run(
        target=target,
        rate=rate,
        workers=workers,
        requests=total,
        success_rate=ok / total if total else 0.0,
        achieved_rps=ok / float(summary["total"]),
        p50_ms=1000 * float(percentiles["p50"] or "nan"),
        p99_ms=1000 * float(percentiles["p99"] or "nan"),
        load_average=load,
        cpu_ms_per_request=1000 * cpu / ok if ok else math.nan,
        errors={**errors, **bad_status},
    )


def serve_command(port: int, workers: int, config: Path) -> list[str]:
    """The command that runs ``orchestrator serve`` on ``port`` with ``config``."""
    code = (
        "from orchestrator.server.command import serve; "
        f"serve(port={port}, workers={workers}, config_path={str(config)!r})"
    )
    return [sys.executable, "-c", code]


def upstream_command(port: int, delay: float = UPSTREAM_DELAY) -> list[str]:
    """The command that runs the benchmark's upstream on ``port``, answering
    after ``delay`` seconds."""
    return [sys.executable, str(BENCH_DIR / "gateway_upstream.py"), str(port), str(delay)]


def say(line: str) -> None:
    """One line of progress, flushed (a run takes minutes)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def add_round_options(parser: argparse.ArgumentParser) -> None:
    """The options of the side-by-side scripts: the rate and length of each
    ``oha`` run, the rounds, and the sequential requests per block."""
    parser.add_argument("--rate", type=int, default=500, help="requests per second of oha runs")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per oha run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measurement")
    parser.add_argument("--sequential", type=int, default=300, help="requests per block")


def alternating_runs(
    direct: tuple[str, int],
    targets: dict[str, tuple[str, int, Optional[str]]],
    options: argparse.Namespace,
) -> dict[str, list[tuple[float, float, float]]]:
    """``oha`` runs at ``options.rate`` alternating between ``targets`` (each
    a URL, its server's process id and the key it wants), with a run of the
    ``direct`` upstream (URL, process id) in each round: per target, each
    round's added P50, added P99 and CPU milliseconds per request."""
    added: dict[str, list[tuple[float, float, float]]] = {label: [] for label in targets}
    for round_ in range(options.rounds):
        base = oha(direct[0], options.rate, options.seconds, None, "direct", 1, direct[1])
        for label, (url, pid, key) in targets.items():
            run = oha(url, options.rate, options.seconds, key, label, 1, pid)
            figures = (run.p50_ms - base.p50_ms, run.p99_ms - base.p99_ms)
            added[label].append((*figures, run.cpu_ms_per_request))
            say(
                f"round {round_ + 1} {label}: {options.rate} RPS, added P50 {figures[0]:.2f} "
                f"P99 {figures[1]:.2f} ms, CPU {run.cpu_ms_per_request:.3f} ms/request, "
                f"{run.success_rate:.2%} answered"
            )
    return added


def first_byte_ms(
    url: str, key: Optional[str], model: str, count: int, *, stream: bool = True
) -> list[float]:
    """Milliseconds to the first body byte of ``count`` sequential streamed
    requests (with ``stream=False``, plain ones)."""
    body = {
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Stream it"}],
    }
    headers = {"authorization": f"Bearer {key}"} if key else {}
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(count + 10):
            started = time.perf_counter()
            with client.stream("POST", url, json=body, headers=headers) as response:
                chunks = response.iter_raw()
                next(chunks)
                elapsed = time.perf_counter() - started
                for _ in chunks:
                    pass
            if i >= 10:  # warm-up done
                times.append(1000 * elapsed)
    return times


class Bench:
    """The processes of one benchmark run, all on loopback."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.upstream_port = free_port()
        self.upstream_url = f"http://127.0.0.1:{self.upstream_port}/v1"
        #: The process id of each server, by name.
        self.pids: dict[str, int] = {}

    def gateway_config(self, state: str) -> Path:
        path = self.work / f"gateway-{state.split(':')[0]}.toml"
        path.write_text(
            "[server]\n"
            'api_keys = [{ env = "BENCH_GATEWAY_KEY" }]\n'
            "access_log = false\n"
            + ("" if state == "local" else f'[state]\nurl = "{state}"\n')
            + "[[models]]\n"
            'provider = "openai"\nname = "bench"\nmodel_id = "gpt-4o-mini"\n'
            f'base_url = "{self.upstream_url}"\napi_key_env = "BENCH_UPSTREAM_KEY"\n'
            "cost = { input_per_million = 0.15, output_per_million = 0.6 }\n"
            'capabilities = ["chat", "supports_streaming"]\n'
        )
        return path

    def litellm_config(self) -> Path:
        path = self.work / "litellm.yaml"
        path.write_text(
            "model_list:\n"
            "  - model_name: bench\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            f"      api_base: {self.upstream_url}\n"
            f"      api_key: {UPSTREAM_KEY}\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "  drop_params: true\n"
            "general_settings:\n"
            f"  master_key: {GATEWAY_KEY}\n"
        )
        return path

    def servers(
        self,
        stack: contextlib.ExitStack,
        redis_url: str,
        litellm: Optional[str],
        litellm_workers: int,
    ) -> dict[str, str]:
        """Start every server at once (LiteLLM's proxy takes minutes to start on
        a loaded machine), wait until all answer; their base URLs by name."""
        env = {"BENCH_GATEWAY_KEY": GATEWAY_KEY, "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
        lite_env = {
            "LITELLM_LOG": "ERROR",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
        }
        commands: dict[str, tuple[list[str], str, dict[str, str]]] = {
            "upstream": (
                upstream_command(self.upstream_port),
                "/v1/models",
                {},
            ),
        }
        urls = {"upstream": f"http://127.0.0.1:{self.upstream_port}"}
        for workers, state in ((1, "local"), (2, redis_url)):
            port = free_port()
            config = self.gateway_config(state)
            commands[f"orchestrator-{workers}"] = (
                serve_command(port, workers, config),
                "/healthz",
                env,
            )
            urls[f"orchestrator-{workers}"] = f"http://127.0.0.1:{port}"
            if workers == 1:
                port = free_port()
                floor = [sys.executable, str(BENCH_DIR / "gateway_floor.py"), str(port)]
                commands["floor-1"] = ([*floor, self.upstream_url, UPSTREAM_KEY], "/healthz", {})
                urls["floor-1"] = f"http://127.0.0.1:{port}"
            if litellm is None or (workers > 1 and litellm_workers == 1):
                continue
            port = free_port()
            commands[f"litellm-{workers}"] = (
                [
                    litellm,
                    "--config",
                    str(self.litellm_config()),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--num_workers",
                    str(workers),
                ],
                "/health/liveliness",
                lite_env,
            )
            urls[f"litellm-{workers}"] = f"http://127.0.0.1:{port}"
        started = {
            name: (stack.enter_context(process(args, self.work / f"{name}.log", extra)), ready)
            for name, (args, ready, extra) in commands.items()
        }
        for name, (proc, ready) in started.items():
            wait_ready(proc, urls[name] + ready, self.work / f"{name}.log", 900)
            self.pids[name] = proc.pid
        return urls


def _table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs and fewer rates")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per oha run")
    parser.add_argument("--litellm", default=None, help="the litellm command (default: PATH's)")
    parser.add_argument(
        "--litellm-workers",
        type=int,
        choices=(1, 2),
        default=2,
        help="LiteLLM's workers for its highest sustained rate (1: its 1-worker proxy)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the latency runs; the added latency is the median over rounds",
    )
    options = parser.parse_args()
    seconds = options.seconds or (4.0 if options.quick else 8.0)
    latency_rates = [100, 500] if options.quick else [100, 500, 1000]
    ceiling_rates = (
        [100, 250, 500, 1000, 1500]
        if options.quick
        else [100, 250, 500, 750, 1000, 1500, 2000, 3000]
    )
    runs: list[Run] = []
    ttfb: dict[str, dict[str, Any]] = {}
    litellm, litellm_found = litellm_command(options.litellm)
    sys.stderr.write(f"{litellm_found}{'' if litellm else ': left out'}\n")
    started = time.time()
    yardstick = [yardstick_ms()]
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))  # kept: the servers' logs
    sys.stderr.write(f"server logs in {work}\n")
    bench = Bench(work)
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    try:
        with contextlib.ExitStack() as stack:
            urls = bench.servers(stack, redis_url, litellm, options.litellm_workers)
            direct = f"{urls['upstream']}/v1/chat/completions"
            chat = {name: f"{url}/v1/chat/completions" for name, url in urls.items()}
            gateways = {"orchestrator": "auto", **({"litellm": "bench"} if litellm else {})}
            #: Measured for latency and first byte; the floor has no ceiling run.
            relays = {**gateways, "floor": "gpt-4o-mini"}
            for round_ in range(options.rounds):  # interleaved: the machine's load hits all alike
                for rate in latency_rates:
                    upstream = bench.pids["upstream"]
                    measured = [oha(direct, rate, seconds, None, "direct", 1, upstream)]
                    for name in relays:
                        served = chat[f"{name}-1"], bench.pids[f"{name}-1"]
                        measured.append(
                            oha(served[0], rate, seconds, GATEWAY_KEY, name, 1, served[1])
                        )
                    for run in measured:
                        run.round = round_
                    runs += measured
            count = 100 if options.quick else 300
            blocks: dict[str, list[FirstBytes]] = {"direct": [], **{name: [] for name in relays}}
            for _ in range(options.rounds):  # interleaved, as the latency runs are
                blocks["direct"].append(
                    FirstBytes.of(first_byte_ms(direct, None, "gpt-4o-mini", count))
                )
                for name, model in relays.items():
                    times = first_byte_ms(chat[f"{name}-1"], GATEWAY_KEY, model, count)
                    blocks[name].append(FirstBytes.of(times))
            ttfb = {name: FirstBytes.summary(measured) for name, measured in blocks.items()}
            ceiling_workers = {"orchestrator": 2, "litellm": options.litellm_workers}
            for name in gateways:
                workers = ceiling_workers[name]
                url, pid = chat[f"{name}-{workers}"], bench.pids[f"{name}-{workers}"]
                for rate in ceiling_rates:
                    run = oha(url, rate, seconds, GATEWAY_KEY, name, workers, pid)
                    run.ceiling = True
                    runs.append(run)
                    if not run.sustained:
                        break
    finally:
        redis.terminate()
        redis.wait(10)
    yardstick.append(yardstick_ms())
    report = summarise(runs, ttfb, latency_rates)
    report["yardstick_ms"] = yardstick
    report["rounds"] = options.rounds
    report["notes"] = [litellm_found if litellm else f"{litellm_found}: LiteLLM not measured"]
    report["started"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    report["seconds_per_run"] = seconds
    report["upstream_delay_ms"] = 1000 * UPSTREAM_DELAY
    report["cpus"] = os.cpu_count()
    out = BENCH_DIR.parent / "bench-results" if options.quick else RESULTS
    out.mkdir(exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render(report)
    (out / "GATEWAY.md").write_text(markdown)
    sys.stdout.write(markdown)


@dataclass
class FirstBytes:
    """One block of sequential requests' time to the first body byte."""

    p50_ms: float
    p99_ms: float
    load_average: float

    @classmethod
    def of(cls, values: list[float]) -> FirstBytes:
        p99 = statistics.quantiles(values, n=100)[98]
        return cls(statistics.median(values), p99, os.getloadavg()[0])

    @staticmethod
    def summary(blocks: list[FirstBytes]) -> dict[str, Any]:
        """The medians over a target's blocks, with each block's P50."""
        return {
            "p50_ms": statistics.median(b.p50_ms for b in blocks),
            "p99_ms": statistics.median(b.p99_ms for b in blocks),
            "load_average": statistics.median(b.load_average for b in blocks),
            "p50_by_round_ms": [b.p50_ms for b in blocks],
        }


def summarise(runs: list[Run], ttfb: dict[str, dict[str, Any]], rates: list[int]) -> dict[str, Any]:
    """Added latency per rate, the highest sustained rates, time to first byte."""
    latency = [r for r in runs if not r.ceiling]
    by = {(r.target, r.rate, r.round): r for r in latency}
    rounds = sorted({r.round for r in latency})
    gateways = [t for t in dict.fromkeys(r.target for r in runs) if t != "direct"]
    added = []
    for rate in rates:
        for target in gateways:
            pairs = [(by[(target, rate, n)], by[("direct", rate, n)]) for n in rounds]
            p50 = [run.p50_ms - base.p50_ms for run, base in pairs]
            p99 = [run.p99_ms - base.p99_ms for run, base in pairs]
            added.append(
                {
                    "target": target,
                    "rate": rate,
                    "p50_added_ms": statistics.median(p50),
                    "p99_added_ms": statistics.median(p99),
                    "p50_added_by_round_ms": p50,
                    "p99_added_by_round_ms": p99,
                    "success_rate": min(run.success_rate for run, _ in pairs),
                    "cpu_ms_per_request": statistics.median(
                        run.cpu_ms_per_request for run, _ in pairs
                    ),
                    "load_average": statistics.median(run.load_average for run, _ in pairs),
                }
            )
    ceilings = {}
    for target in gateways:
        searched = [r for r in runs if r.target == target and r.ceiling]
        if searched:  # the floor has none
            ok = [r.rate for r in searched if r.sustained]
            ceilings[target] = {"rps": max(ok) if ok else 0, "workers": searched[0].workers}
    first = dict(ttfb)
    first_added = {
        t: [
            block - base
            for block, base in zip(first[t]["p50_by_round_ms"], first["direct"]["p50_by_round_ms"])
        ]
        for t in gateways
    }
    return {
        "runs": [asdict(r) for r in runs],
        "added_latency": added,
        "highest_sustained_rps": ceilings,
        "first_byte": first,
        "first_byte_added_p50_ms": {t: statistics.median(v) for t, v in first_added.items()},
        "first_byte_added_by_round_ms": first_added,
    }


def _with_rounds(median: float, by_round: list[float]) -> str:
    if len(by_round) < 2:
        return f"{median:.2f}"
    return f"{median:.2f} ({', '.join(f'{v:.2f}' for v in by_round)})"


def _yardstick_line(yardstick: list[float]) -> str:
    if not yardstick:
        return ""
    return (
        "Machine yardstick (a fixed pure-Python loop; lower is faster, it varies about 2x "
        f"on these shared machines): {' ms at the start, '.join(f'{v:.0f}' for v in yardstick)}"
        " ms at the end.\n"
    )


def render(report: dict[str, Any]) -> str:
    """The Markdown of the README's gateway section."""
    rows = [
        [
            str(a["rate"]),
            a["target"],
            _with_rounds(a["p50_added_ms"], a.get("p50_added_by_round_ms", [])),
            _with_rounds(a["p99_added_ms"], a.get("p99_added_by_round_ms", [])),
            f"{100 * a['success_rate']:.2f}%",
            f"{a['cpu_ms_per_request']:.2f}",
            f"{a['load_average']:.1f}",
        ]
        for a in report["added_latency"]
    ]
    out = [
        f"Gateway benchmark, {report['started']}: upstream answers after "
        f"{report['upstream_delay_ms']:.0f} ms; {report['seconds_per_run']:.0f} s per run; "
        f"{report['cpus']} CPUs; added latency: the median of {report.get('rounds', 1)} "
        "rounds (each round's own figures in brackets), each round measuring direct and "
        "every gateway back to back.\n",
        _yardstick_line(report.get("yardstick_ms", [])),
        _table(
            rows,
            [
                "RPS",
                "gateway",
                "P50 added (ms)",
                "P99 added (ms)",
                "success",
                "gateway CPU / request (ms)",
                "load avg",
            ],
        ),
        "",
    ]
    runs = [
        [
            r["target"],
            str(r["workers"]),
            "ceiling" if r["ceiling"] else str(r.get("round", 0) + 1),
            str(r["rate"]),
            f"{r['achieved_rps']:.0f}",
            f"{100 * r['success_rate']:.2f}%",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['cpu_ms_per_request']:.2f}",
            f"{r['load_average']:.1f}",
        ]
        for r in report["runs"]
    ]
    out += [
        _table(
            runs,
            [
                "target",
                "workers",
                "round",
                "asked RPS",
                "served RPS",
                "success",
                "P50 (ms)",
                "P99 (ms)",
                "server CPU / request (ms)",
                "load avg",
            ],
        ),
        "",
    ]
    ceilings = report["highest_sustained_rps"]
    out.append(
        "Highest rate sustained with < 1% errors: "
        + ", ".join(f"{k} {v['rps']} RPS ({v['workers']} workers)" for k, v in ceilings.items())
        + "\n"
    )
    first = report["first_byte"]
    rows = [
        [
            name,
            _with_rounds(v["p50_ms"], v.get("p50_by_round_ms", [])),
            f"{v['p99_ms']:.2f}",
            f"{v['load_average']:.1f}",
        ]
        for name, v in first.items()
    ]
    out += [_table(rows, ["first streamed byte", "P50 (ms)", "P99 (ms)", "load avg"]), ""]
    added = report["first_byte_added_p50_ms"]
    by_round = report.get("first_byte_added_by_round_ms", {})
    out.append(
        "First byte added, P50 (the median over rounds of each round's gateway block minus its "
        "direct block): "
        + ", ".join(f"{k} {_with_rounds(v, by_round.get(k, []))} ms" for k, v in added.items())
        + "\n"
    )
    out += [f"Note: {note}\n" for note in report.get("notes", [])]
    return "\n".join(out)


if __name__ == "__main__":
    main()
