"""``serve --workers 2`` on a real Redis: feedback for another worker's
request id reaches the worker that answered it, and ``/metrics`` counts the
whole gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.server.feedback_relay import owner_of
from tests.redis_server import RedisServer
from tests.server.harness import config_text, model_table, serve_process
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(180)

#: Two workers sharing a contextual router, so feedback is learned, not only counted.
_SHARED = """
[selection]
strategy = "contextual"
hash_bits = 12
[state]
url = "{url}"
"""


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


def _config(tmp_path: Path, upstream: OpenAIServer, redis_url: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(
        config_text([model_table("mini", upstream.url)], _SHARED.format(url=redis_url))
    )
    return config


def _worker(response: httpx.Response) -> str:
    """The tag of the worker that answered (the head of its request id)."""
    owner = owner_of(response.headers["x-request-id"])
    assert owner is not None, response.headers["x-request-id"]
    return owner


def _fresh(method: str, url: str, body: Optional[dict[str, Any]] = None) -> httpx.Response:
    """One request on a new connection, so that either worker may accept it."""
    with httpx.Client(timeout=30) as client:
        return client.request(method, url, json=body)


def _ask(url: str, i: int) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": f"question {i}"}]}
    answer = _fresh("POST", f"{url}/v1/chat/completions", body)
    assert answer.status_code == 200, answer.text
    return answer


def _answers_from_both_workers(url: str) -> list[httpx.Response]:
    """Chat answers on fresh connections until both workers have answered
    some (bounded: the kernel spreads new connections over the workers)."""
    answers: list[httpx.Response] = []
    for i in range(200):
        answers.append(_ask(url, i))
        if i >= 9 and len({_worker(a) for a in answers}) == 2:
            return answers
    raise AssertionError("one worker took every connection")


def test_feedback_for_another_workers_request_is_learned_by_it(
    tmp_path: Path, upstream: OpenAIServer, redis_url: str
) -> None:
    with serve_process(_config(tmp_path, upstream, redis_url), workers=2) as (_, url):
        answers = _answers_from_both_workers(url)
        workers = {_worker(a) for a in answers}
        crossed = []
        for answer in answers:
            request_id = answer.headers["x-request-id"]
            # Send it until another worker than the one that answered takes it.
            for _ in range(100):
                scored = _fresh(
                    "POST", f"{url}/v1/feedback", body={"request_id": request_id, "quality": 0.9}
                )
                if scored.status_code == 409:
                    continue  # an earlier try reached the owner itself and was kept
                assert scored.status_code == 200, scored.text
                assert scored.json() == {
                    "request_id": request_id,
                    "model": "mini",
                    "accepted": True,
                    "learned": True,
                }
                if _worker(scored) != _worker(answer):
                    crossed.append(request_id)
                break
        assert crossed, "no score was forwarded to the other worker"
        # Forwarded or not, one score per answer: any worker says 409 now.
        for _ in range(4):
            again = _fresh(
                "POST", f"{url}/v1/feedback", body={"request_id": crossed[0], "quality": 0.1}
            )
            assert again.status_code == 409, again.text
            assert again.json()["error"]["code"] == "feedback_already_given"
        # An id of a worker that does not exist (or stopped) is unknown, as is
        # a well-formed id nobody made on a live worker.
        absent = "0" * 8 if "0" * 8 not in workers else "f" * 8
        for request_id in (f"req_{absent}{'0' * 16}", f"req_{next(iter(workers))}{'0' * 16}"):
            unknown = _fresh(
                "POST", f"{url}/v1/feedback", body={"request_id": request_id, "quality": 0.5}
            )
            assert unknown.status_code == 404, unknown.text
            assert unknown.json()["error"]["param"] == "request_id"


def _chat_requests_counted(url: str) -> tuple[float, str]:
    """The chat requests answered 200, summed over ``/metrics`` as parsed by
    prometheus_client, and the worker that answered the scrape."""
    scrape = _fresh("GET", f"{url}/metrics")
    total = 0.0
    for family in text_string_to_metric_families(scrape.text):
        if family.name == "orchestrator_gateway_requests":
            for sample in family.samples:
                if (
                    sample.name == "orchestrator_gateway_requests_total"
                    and sample.labels["route"] == "/v1/chat/completions"
                    and sample.labels["status"] == "200"
                ):
                    total += sample.value
    return total, _worker(scrape)


def test_metrics_sum_every_worker(tmp_path: Path, upstream: OpenAIServer, redis_url: str) -> None:
    # An operator's own directory, holding a file of an earlier run: wiped at start.
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_999999999.db"
    stale.write_bytes(b"left over from an earlier run")
    config = _config(tmp_path, upstream, redis_url)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with serve_process(config, workers=2, env=env) as (_, url):
        assert not stale.exists()
        answers = _answers_from_both_workers(url)
        counts: dict[str, float] = {}
        for _ in range(200):  # scrape on fresh connections until both workers have answered
            counted, scraper = _chat_requests_counted(url)
            # Each worker counts a request after its answer has left: a
            # scrape may come before the last ones are counted, never after more.
            assert counted <= len(answers)
            if counted == len(answers):
                counts[scraper] = counted
            if len(counts) == 2:
                break
        assert counts == {worker: len(answers) for worker in {_worker(a) for a in answers}}
        assert list(metrics_dir.glob("*.db")), "the workers write where the operator said"


def test_metrics_directory_of_the_gateway_is_removed_at_exit(
    tmp_path: Path, upstream: OpenAIServer, redis_url: str
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    config = _config(tmp_path, upstream, redis_url)
    with serve_process(config, workers=2, env={"TMPDIR": str(temporary)}) as (process, url):
        _ask(url, 0)
        made = list(temporary.glob("orchestrator-metrics-*"))
        assert len(made) == 1 and list(made[0].glob("*.db"))
        process.terminate()
        process.wait(30)
    assert not made[0].exists()
