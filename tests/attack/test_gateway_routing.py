"""Attacks on the gateway's prompt-aware routing (``[selection] strategy =
"contextual"``) over real loopback HTTP and the openai SDK: hostile
``willingness_to_pay`` and constraint numbers, feedback bodies, concurrent
feedback for one answer, and clients stalled in their request head or body
while others are served."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.server.harness import UPSTREAM_KEY, ThreadGateway, config_text, model_table
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "Say hello"}]
#: Far longer than the test: a stalled head is never cut while it runs.
HEADER_TIMEOUT = 600
STALLED_CLIENTS = 100
HALF_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
HUGE_INTEGER = "1" + "0" * 400  # a JSON number no float holds


@pytest.fixture
def routed() -> Iterator[ThreadGateway]:
    """A contextual gateway of two priced models on a loopback OpenAI server,
    heads allowed to stall."""
    with OpenAIServer(api_key=UPSTREAM_KEY) as upstream:
        text = config_text(
            [model_table("mini", upstream.url), model_table("maxi", upstream.url, price=20.0)],
            f"""
            [selection]
            strategy = "contextual"
            hash_bits = 12
            [server]
            header_timeout = {HEADER_TIMEOUT}
            """,
        )
        with ThreadGateway(text) as gateway:
            yield gateway


@pytest.fixture
def sdk(routed: ThreadGateway) -> Iterator[openai.OpenAI]:
    """An openai SDK client of the gateway, closed after the test."""
    with openai.OpenAI(base_url=f"{routed.url}/v1", api_key="x", max_retries=0) as client:
        yield client


def post(gateway: ThreadGateway, path: str, body: str) -> httpx.Response:
    """A POST whose JSON body is sent as written (NaN, huge integers...)."""
    return httpx.post(
        f"{gateway.url}{path}",
        content=body.encode(),
        headers={"content-type": "application/json"},
        timeout=20,
    )


@pytest.mark.parametrize("field", ["willingness_to_pay", "max_cost", "min_speed"])
def test_a_huge_json_integer_constraint_is_a_400_naming_it(
    routed: ThreadGateway, field: str
) -> None:
    """Reproduction (fixed): ``"orchestrator": {"willingness_to_pay":
    1000...0}`` (400 digits) answered 500 ``internal gateway error``:
    ``math.isfinite`` of a Python int that large raises OverflowError."""
    body = (
        '{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
        f'"orchestrator": {{"{field}": {HUGE_INTEGER}}}}}'
    )
    answer = post(routed, "/v1/chat/completions", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == f"orchestrator.{field}"


@pytest.mark.parametrize("bad", [0, -1, "a lot", True, None, [1], {"usd": 1}])
def test_bad_willingness_to_pay_through_the_sdk_is_a_400(sdk: openai.OpenAI, bad: object) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="auto",
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_body={"orchestrator": {"willingness_to_pay": bad}},
        )
    assert refused.value.body["param"] == "orchestrator.willingness_to_pay"  # type: ignore[index]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_json_literals_are_a_400(routed: ThreadGateway, literal: str) -> None:
    body = (
        '{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
        f'"orchestrator": {{"willingness_to_pay": {literal}}}}}'
    )
    answer = post(routed, "/v1/chat/completions", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "orchestrator.willingness_to_pay"


@pytest.mark.parametrize("willingness_to_pay", [1e-7, 1e308])
def test_extreme_but_valid_willingness_to_pay_is_served(
    sdk: openai.OpenAI, willingness_to_pay: float
) -> None:
    answer = sdk.chat.completions.create(
        model="auto",
        messages=MESSAGES,  # type: ignore[arg-type]
        extra_body={"orchestrator": {"willingness_to_pay": willingness_to_pay}},
    )
    assert answer.model in {"mini", "maxi"} and answer.choices


@pytest.mark.parametrize("content", ['"\\ud800"', '"ok \\udfff"'])
def test_a_lone_surrogate_prompt_is_a_400_naming_the_message(
    routed: ThreadGateway, content: str
) -> None:
    body = f'{{"model": "auto", "messages": [{{"role": "user", "content": {content}}}]}}'
    answer = post(routed, "/v1/chat/completions", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "messages[0].content"


@pytest.mark.parametrize(
    "quality", ["NaN", "Infinity", "1e400", HUGE_INTEGER, "true", '"0.5"', "null", "-0.5", "1.5"]
)
def test_bad_feedback_quality_is_a_400_and_leaves_the_answer_open(
    routed: ThreadGateway, sdk: openai.OpenAI, quality: str
) -> None:
    answer_id = sdk.chat.completions.create(model="auto", messages=MESSAGES).id  # type: ignore[arg-type]
    refused = post(routed, "/v1/feedback", f'{{"request_id": "{answer_id}", "quality": {quality}}}')
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "quality"
    accepted = post(routed, "/v1/feedback", f'{{"request_id": "{answer_id}", "quality": 1}}')
    assert accepted.status_code == 200 and accepted.json()["learned"] is True, accepted.text


def test_concurrent_feedback_for_one_answer_is_learned_exactly_once(
    routed: ThreadGateway, sdk: openai.OpenAI
) -> None:
    registry = routed.gateway.registry
    answer_id = sdk.chat.completions.create(model="auto", messages=MESSAGES).id  # type: ignore[arg-type]
    before = sum(c.observations or 0 for c in registry.explain_selection(prompt="x").candidates)
    statuses: list[int] = []
    start = threading.Barrier(16)

    def give() -> None:
        start.wait()
        body = f'{{"request_id": "{answer_id}", "quality": 1.0}}'
        statuses.append(post(routed, "/v1/feedback", body).status_code)

    threads = [threading.Thread(target=give) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 15
    after = sum(c.observations or 0 for c in registry.explain_selection(prompt="x").candidates)
    assert after == before + 1


def test_stalled_heads_and_bodies_do_not_hold_up_other_clients(
    routed: ThreadGateway, sdk: openai.OpenAI
) -> None:
    """A hundred connections stalled in their head and one in its body (the
    head bound is 600 s, so none is cut while the test runs): a complete
    request on a new connection is still answered, and so is feedback."""
    stalled: list[socket.socket] = []
    try:
        for _ in range(STALLED_CLIENTS):
            conn = socket.create_connection(("127.0.0.1", routed.port))
            conn.sendall(HALF_HEAD)
            stalled.append(conn)
        body_stall = socket.create_connection(("127.0.0.1", routed.port))
        body_stall.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b'content-type: application/json\r\ncontent-length: 100\r\n\r\n{"mo'
        )
        stalled.append(body_stall)
        answer = sdk.chat.completions.create(model="auto", messages=MESSAGES)  # type: ignore[arg-type]
        assert answer.choices
        feedback = post(routed, "/v1/feedback", f'{{"request_id": "{answer.id}", "quality": 0.5}}')
        assert feedback.status_code == 200, feedback.text
    finally:
        for conn in stalled:
            conn.close()
