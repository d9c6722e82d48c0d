"""The official ``openai`` SDK and ``curl`` drive the gateway over loopback."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import openai
import pytest

from tests.server.harness import UPSTREAM_KEY, ThreadGateway
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway: ThreadGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def test_chat_completion_carries_routing_headers_and_is_cached(gateway: ThreadGateway) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from the OpenAI loopback server."
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    assert raw.headers["x-orchestrator-model"] == "mini"
    assert raw.headers["x-orchestrator-provider"] == "openai"
    assert raw.headers["x-orchestrator-cache"] == "miss"
    assert raw.headers["x-orchestrator-attempts"] == "1"
    assert float(raw.headers["x-orchestrator-cost-usd"]) > 0
    assert answer.id == raw.headers["x-request-id"]
    again = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES
    )
    assert again.headers["x-orchestrator-cache"] == "hit"
    assert float(again.headers["x-orchestrator-cost-usd"]) == 0.0


async def test_async_client_and_alias(gateway: ThreadGateway) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as c:
        answer = await c.chat.completions.create(model="cheap", messages=MESSAGES, temperature=0.2)
    assert answer.model == "mini"
    assert answer.choices[0].message.content.startswith("Hello")


def test_streaming_sends_usage_chunk_and_done(
    gateway: ThreadGateway, upstream: OpenAIServer
) -> None:
    stream = client(gateway).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "stream this"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the OpenAI loopback server."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert upstream.requests[-1].json()["stream"] is True


def test_embeddings_and_models(gateway: ThreadGateway) -> None:
    c = client(gateway)
    vectors = c.embeddings.create(model="auto", input=["alpha", "beta"])  # SDK asks base64
    assert [len(d.embedding) for d in vectors.data] == [8, 8]
    floats = c.embeddings.create(model="mini", input="alpha", encoding_format="float")
    assert floats.data[0].embedding == vectors.data[0].embedding
    assert [m.id for m in c.models.list()] == ["auto", "cheap", "mini"]


def test_errors_are_sdk_exceptions_naming_the_field(gateway: ThreadGateway) -> None:
    c = client(gateway)
    with pytest.raises(openai.NotFoundError, match="'gpt-9' does not exist"):
        c.chat.completions.create(model="gpt-9", messages=MESSAGES)
    nan = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], '
        b'"temperature": NaN}',
    )
    assert nan.status_code == 400 and nan.json()["error"]["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(
            model="auto", messages=MESSAGES, extra_body={"orchestrator": {"max_cost": "cheap"}}
        )
    assert bad.value.body["param"] == "orchestrator.max_cost"  # type: ignore[index]
    for bad in (0, -1, "a lot", True):
        with pytest.raises(openai.BadRequestError, match="willingness_to_pay"):
            c.chat.completions.create(
                model="auto",
                messages=MESSAGES,
                extra_body={"orchestrator": {"willingness_to_pay": bad}},
            )
    # A valid one is passed to selection (a bandit strategy accepts it unchanged).
    assert c.chat.completions.create(
        model="auto", messages=MESSAGES, extra_body={"orchestrator": {"willingness_to_pay": 1}}
    ).choices
    with pytest.raises(openai.BadRequestError, match="no registered model satisfies"):
        c.chat.completions.create(
            model="auto", messages=MESSAGES, extra_body={"orchestrator": {"max_cost": 0.0}}
        )
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(model="auto", messages=[{"role": "robot", "content": "x"}])
    assert bad.value.body["param"] == "messages[0].role"  # type: ignore[index]


def test_constraints_from_headers(gateway: ThreadGateway) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError, match="no registered model"):
        c.chat.completions.create(
            model="auto", messages=MESSAGES, extra_headers={"x-orchestrator-exclude-models": "mini"}
        )
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(
            model="auto", messages=MESSAGES, extra_headers={"x-orchestrator-max-cost": "lots"}
        )
    assert bad.value.body["param"] == "x-orchestrator-max-cost"  # type: ignore[index]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_stream_through_the_cache_says_miss_then_hit(
    gateway: ThreadGateway, upstream: OpenAIServer
) -> None:
    messages = [{"role": "user", "content": "stream this once"}]
    seen = []
    for _ in range(2):
        raw = client(gateway).chat.completions.with_raw_response.create(
            model="auto", messages=messages, stream=True
        )
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices
        )
        seen.append((raw.headers["x-orchestrator-cache"], text))
    (first, first_text), (second, second_text) = seen
    assert (first, second) == ("miss", "hit")
    assert second_text == first_text != ""
    assert sum(1 for r in upstream.requests if r.json().get("stream")) == 1  # replayed


def test_curl_plain_and_streaming(gateway: ThreadGateway) -> None:
    body = json.dumps({"model": "auto", "messages": MESSAGES})
    url = f"{gateway.url}/v1/chat/completions"
    plain = subprocess.run(
        ["curl", "-sS", "-i", "-H", "content-type: application/json", "-d", body, url],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    assert plain.startswith("HTTP/1.1 200")
    assert "x-orchestrator-model: mini" in plain
    assert UPSTREAM_KEY not in plain
    streamed = subprocess.run(
        [
            "curl",
            "-sS",
            "-N",
            "-d",
            json.dumps({"model": "auto", "messages": MESSAGES, "stream": True}),
            url,
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    events = [line for line in streamed.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"
