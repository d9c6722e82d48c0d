"""A loopback OpenAI API: ``/v1/chat/completions`` (JSON and SSE with
``stream_options.include_usage`` and ``data: [DONE]``), ``/v1/embeddings``
(float and base64), ``/v1/models``; errors as ``{"error": {message, type,
param, code}}``."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, Optional

from tests.servers._base import (
    Fault,
    JSONResponse,
    LoopbackServer,
    Request,
    Response,
    StreamResponse,
    count_tokens,
    sse,
    words,
)

_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


class OpenAIServer(LoopbackServer):
    """``api_key`` (if set) must come as ``Authorization: Bearer``; ``reply``
    is the answer text; ``served_as`` maps a requested model to the (dated)
    name the answer carries; ``models`` is what ``/v1/models`` lists."""

    base_path = "/v1"
    provider = "openai"

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        reply: str = "Hello from the OpenAI loopback server.",
        models: tuple[str, ...] = ("gpt-4", "gpt-4-0613", "gpt-3.5-turbo", "gpt-4o-mini"),
        served_as: Optional[dict[str, str]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.reply = reply
        self.models = list(models)
        self.served_as = {"gpt-4": "gpt-4-0613"} if served_as is None else served_as

    rate_limit_header_names = (
        ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    )

    def error_response(self, status: int, kind: Optional[str], message: str) -> JSONResponse:
        etype, code = _ERRORS.get(status, ("server_error", None))
        if kind == "context_length":
            etype, code = "invalid_request_error", "context_length_exceeded"
            message = (
                "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9000 tokens. Please reduce the length of the messages."
            )
        elif kind == "content_filter":
            etype, code = "invalid_request_error", "content_policy_violation"
            message = "Your request was rejected as a result of our safety system."
        elif kind == "quota":
            etype, code = "insufficient_quota", "insufficient_quota"
            message = "You exceeded your current quota, please check your plan and billing details."
        body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
        return JSONResponse(status, body, {"x-request-id": "req_loopback"})

    async def route(self, request: Request, fault: Fault) -> Response:
        if self.api_key is not None:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                return self.error_response(401, None, "Incorrect API key provided.")
        path = request.path.removeprefix(self.base_path)
        if request.method == "GET" and path == "/models":
            data = [
                {"id": m, "object": "model", "created": 1686935002, "owned_by": "openai"}
                for m in self.models
            ]
            return JSONResponse(200, {"object": "list", "data": data})
        if request.method == "POST" and path == "/chat/completions":
            return self._chat(request.json(), fault)
        if request.method == "POST" and path == "/embeddings":
            return self._embeddings(request.json(), fault)
        return self.error_response(404, None, f"Unknown request URL: {request.method} {path}")

    def content_filtered(self, model: str, stream: bool) -> Response:
        """What OpenAI sends when its filter withholds the answer: no
        content, ``finish_reason: "content_filter"`` (in a stream, on the
        last chunk)."""
        choice = {"index": 0, "logprobs": None, "finish_reason": "content_filter"}
        if not stream:
            message = {"role": "assistant", "content": None, "refusal": None}
            body = {
                "id": "chatcmpl-loopback",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{**choice, "message": message}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
            return JSONResponse(200, body)
        chunk = {"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "model": model}
        events = [
            sse({**chunk, "choices": [{**choice, "delta": {}, "finish_reason": None}]}),
            sse({**chunk, "choices": [{**choice, "delta": {}}]}),
            sse("[DONE]"),
        ]
        return StreamResponse(events, "text/event-stream; charset=utf-8", end_events=1)

    def _model(self, body: Any, fault: Fault) -> str:
        if fault.wrong_model:
            return "some-other-model"
        requested = str(body["model"])
        return self.served_as.get(requested, requested)

    def _chat(self, body: Any, fault: Fault) -> Response:
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            return self.error_response(400, None, "you must provide a model and messages")
        refused = self.refusal(
            str(body["model"]), body["messages"], body.get("max_tokens"), bool(body.get("stream"))
        )
        if refused is not None:
            return refused
        model = self._model(body, fault)
        text = "" if fault.empty else self.reply
        prompt_tokens = count_tokens(body["messages"])
        completion_tokens = len(text.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse(
                200,
                {
                    "id": "chatcmpl-loopback",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_loopback",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: Optional[str] = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": "chatcmpl-loopback",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_loopback",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        events = [sse(chunk({"role": "assistant", "content": "", "refusal": None}))]
        events += [sse(chunk({"content": piece})) for piece in words(text) if piece]
        events.append(sse(chunk({}, "stop")))
        if include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = usage
            events.append(sse(final))
        events.append(sse("[DONE]"))
        error = {"error": {"message": "The server had an error", "type": "server_error"}}
        return StreamResponse(
            events, "text/event-stream; charset=utf-8", end_events=1, error_event=sse(error)
        )

    def _embeddings(self, body: Any, fault: Fault) -> Response:
        inputs = body["input"]
        if isinstance(inputs, str):
            inputs = [inputs]
        fmt = body.get("encoding_format") or "float"
        data = []
        for i, text in enumerate(inputs):
            vector = embedding_of(str(text))
            value: Any = vector
            if fmt == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(str(t).split()) for t in inputs)
        return JSONResponse(
            200,
            {
                "object": "list",
                "data": data,
                "model": self._model(body, fault),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def embedding_of(text: str, dims: int = 8) -> list[float]:
    """A deterministic embedding: exact in float32, so base64 round-trips."""
    return [float((sum(map(ord, text)) * (i + 1)) % 97) / 4.0 for i in range(dims)]
