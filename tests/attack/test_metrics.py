"""Attacks on the gateway's ``/metrics`` in prometheus multiprocess mode: an
operator's ``PROMETHEUS_MULTIPROC_DIR`` holding an earlier run's files, and
one that is not a directory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.errors import ServeError
from orchestrator.server.metrics import MULTIPROC_ENV, multiprocess_directory
from tests.redis_server import RedisServer
from tests.server.harness import config_text, model_table, serve_process
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(180)

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def chat_requests_counted(url: str) -> float:
    """The chat completions answered 200, as ``/metrics`` counts them."""
    with httpx.Client(timeout=30) as client:
        scrape = client.get(f"{url}/metrics")
    assert scrape.status_code == 200, scrape.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape.text)
        if family.name == "orchestrator_gateway_requests"
        for sample in family.samples
        if sample.name == "orchestrator_gateway_requests_total"
        and sample.labels["route"] == "/v1/chat/completions"
        and sample.labels["status"] == "200"
    )


def ask(url: str, times: int) -> None:
    for _ in range(times):
        with httpx.Client(timeout=30) as client:
            answer = client.post(f"{url}/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("workers", [1, 2])
def test_an_earlier_runs_metric_files_are_not_counted(
    tmp_path: Path, upstream: OpenAIServer, redis_server: RedisServer, workers: int
) -> None:
    """The operator's directory keeps the files of a two-worker run that
    answered 3 requests; the next run (one worker or two) counts its own only."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    config = tmp_path / "gateway.toml"
    state = f'[state]\nurl = "{redis_server.url}"\n'
    config.write_text(config_text([model_table("mini", upstream.url)], state))
    env = {MULTIPROC_ENV: str(metrics_dir)}
    with serve_process(config, workers=2, env=env) as (_, url):
        ask(url, 3)
    assert list(metrics_dir.glob("*.db")), "the earlier run left its files"
    with serve_process(config, workers=workers, env=env) as (_, url):
        ask(url, 1)
        assert chat_requests_counted(url) == 1.0


def test_a_multiproc_dir_that_is_a_file_is_a_serve_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_directory = tmp_path / "metrics"
    not_a_directory.write_text("a file")
    monkeypatch.setenv(MULTIPROC_ENV, str(not_a_directory))
    with pytest.raises(ServeError, match=MULTIPROC_ENV), multiprocess_directory():
        pass
    assert not_a_directory.read_text() == "a file"
