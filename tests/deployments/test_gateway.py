"""The gateway routes ``model=<alias>`` (a registry routing alias, or a
logical model's name for its deployments) and lists both in ``GET /v1/models``;
driven by the official ``openai`` SDK over loopback."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import openai
import pytest

from tests.server.harness import ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def deployment_table(name: str, deployment: str, url: str) -> str:
    return model_table(name, url) + f'deployment = "{deployment}"\n'


@pytest.fixture
def gateway() -> Iterator[ThreadGateway]:
    with OpenAIServer(api_key="sk-upstream-secret-0123456789") as upstream:
        text = config_text(
            [
                deployment_table("mini", "eu", upstream.url),
                deployment_table("mini", "us", upstream.url),
                model_table("other", upstream.url, price=50.0),
                textwrap.dedent(
                    """
                    [[aliases]]
                    name = "pool"
                    models = ["mini@eu", "other"]
                    """
                ),
            ]
        )
        with ThreadGateway(text) as running:
            yield running


def client(gateway: ThreadGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def test_models_lists_routing_aliases_and_logical_models(gateway: ThreadGateway) -> None:
    ids = [m.id for m in client(gateway).models.list()]
    assert ids == ["auto", "pool", "mini", "mini@eu", "mini@us", "other"]


def test_model_names_an_alias_or_a_logical_model(gateway: ThreadGateway) -> None:
    c = client(gateway)
    for _ in range(6):
        raw = c.chat.completions.with_raw_response.create(model="pool", messages=MESSAGES)
        assert raw.headers["x-orchestrator-model"] in {"mini@eu", "other"}
        raw = c.chat.completions.with_raw_response.create(model="mini", messages=MESSAGES)
        assert raw.headers["x-orchestrator-model"] in {"mini@eu", "mini@us"}
    pinned = c.chat.completions.with_raw_response.create(model="mini@us", messages=MESSAGES)
    assert pinned.headers["x-orchestrator-model"] == "mini@us"
    with pytest.raises(openai.NotFoundError, match="pool, mini"):
        c.chat.completions.create(model="poool", messages=MESSAGES)
