"""``serve`` as a process: graceful shutdown and workers sharing learning."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.redis_server import RedisServer
from tests.server.harness import config_text, model_table, serve_process
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(120)


def _ask(url: str, i: int) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": f"question {i}"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    with OpenAIServer(answer_delay=1.5) as slow:
        config = tmp_path / "gateway.toml"
        config.write_text(config_text([model_table("slow", slow.url)]))
        with serve_process(config) as (process, url):
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                pending = [pool.submit(_ask, url, i) for i in range(8)]
                deadline = time.monotonic() + 20
                while len(slow.requests) < 8 and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert len(slow.requests) == 8  # all in flight upstream
                process.send_signal(signal.SIGTERM)
                answers = [f.result() for f in pending]
            # uvicorn re-raises SIGTERM once drained, so the exit is by that signal
            assert process.wait(30) in (0, -signal.SIGTERM)
    assert [a.status_code for a in answers] == [200] * 8
    assert all(a.json()["choices"][0]["message"]["content"] for a in answers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def _fresh_get(url: str) -> dict[str, Any]:
    with httpx.Client() as fresh:  # a new connection: either worker may take it
        answer: dict[str, Any] = fresh.get(url, timeout=10).json()
    return answer


def test_two_workers_share_cache_and_breakers_through_redis(
    tmp_path: Path, upstream: OpenAIServer
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    broken = OpenAIServer()
    broken.start()
    broken.add_fault(status=500, times=-1)
    try:
        config = tmp_path / "gateway.toml"
        extra = f"""
        [cache]
        enabled = true
        backend = "redis"
        redis_url = "{redis.url}"
        [health]
        failure_threshold = 1
        base_cooldown = 300
        [state]
        url = "{redis.url}"
        """
        models = [model_table("broken", broken.url, price=0.1), model_table("mini", upstream.url)]
        config.write_text(config_text(models, extra))
        with serve_process(config, workers=2) as (_, url):
            pids = set()
            deadline = time.monotonic() + 30
            while len(pids) < 2 and time.monotonic() < deadline:
                pids.add(_fresh_get(f"{url}/v1/status")["worker_pid"])
            assert len(pids) == 2, "both workers answer"
            answers = []
            for _ in range(12):
                with httpx.Client() as fresh:
                    body = {"model": "auto", "messages": [{"role": "user", "content": "same"}]}
                    answers.append(fresh.post(f"{url}/v1/chat/completions", json=body, timeout=30))
            assert [a.status_code for a in answers] == [200] * 12
            assert len(upstream.requests) == 1, "one answer computed, then served from Redis"
            # The breaker one worker opened is open in the other too (pub/sub).
            states: dict[int, str] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = _fresh_get(f"{url}/v1/status")
                states[status["worker_pid"]] = status["models"][0]["health"]
                if len(states) == 2 and set(states.values()) == {"open"}:
                    break
            assert states == {pid: "open" for pid in pids}
            # One attempt is 1 + max_retries (2) HTTP requests: only one worker ever tried it.
            assert len(broken.requests) == 3, "the second worker never tried the broken model"
    finally:
        broken.stop()
        redis.kill()
