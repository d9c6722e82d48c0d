"""A loopback Anthropic Messages API: ``/v1/messages`` (JSON, and SSE with
message_start / content_block_start / ping / content_block_delta /
content_block_stop / message_delta / message_stop, and ``error`` events),
``/v1/models``; errors as ``{"type": "error", "error": {type, message}}``."""

from __future__ import annotations

import datetime
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
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}

#: Short names the API accepts, as the real one resolves them.
ALIASES = {
    "claude-3-opus-latest": "claude-3-opus-20240229",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}


class AnthropicServer(LoopbackServer):
    """``api_key`` (if set) must come as ``x-api-key`` (or a bearer token); ``anthropic-version``
    is required; ``models`` are the ids it serves."""

    provider = "anthropic"

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        reply: str = "Hello from the Anthropic loopback server.",
        models: tuple[str, ...] = (
            "claude-3-opus-20240229",
            "claude-3-5-sonnet-20241022",
            "claude-3-5-haiku-20241022",
            "claude-sonnet-4-20250514",
        ),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.reply = reply
        self.models = list(models)

    rate_limit_header_names = (
        ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
        ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    )

    def rate_limit_reset(self, seconds: float) -> str:
        """An RFC 3339 time, as Anthropic writes its resets."""
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        return when.isoformat().replace("+00:00", "Z")

    def error_response(self, status: int, kind: Optional[str], message: str) -> JSONResponse:
        etype = _ERRORS.get(status, "api_error")
        if kind == "context_length":
            message = "prompt is too long: 208310 tokens > 200000 maximum"
        body = {"type": "error", "error": {"type": etype, "message": message}}
        return JSONResponse(status, body, {"request-id": "req_loopback"})

    async def route(self, request: Request, fault: Fault) -> Response:
        if self.api_key is not None:
            # The documented header is x-api-key; recent SDKs send the key as a bearer token.
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            if self.api_key not in (request.headers.get("x-api-key"), bearer):
                return self.error_response(401, None, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return self.error_response(400, None, "anthropic-version: header is required")
        path = request.path
        if request.method == "GET" and path == "/v1/models":
            data = [self._model_info(m) for m in self.models]
            return JSONResponse(
                200,
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"],
                    "last_id": data[-1]["id"],
                },
            )
        if request.method == "GET" and path.startswith("/v1/models/"):
            model = ALIASES.get(path.rsplit("/", 1)[1], path.rsplit("/", 1)[1])
            if model not in self.models:
                return self.error_response(404, None, f"model: {model}")
            return JSONResponse(200, self._model_info(model))
        if request.method == "POST" and path == "/v1/messages":
            return self._messages(request.json(), fault)
        return self.error_response(404, None, "Not found")

    def content_filtered(self, model: str, stream: bool) -> Response:
        """What Claude sends when its classifiers intervene: ``stop_reason:
        "refusal"`` (in a stream, on the ``message_delta`` event)."""
        message: dict[str, Any] = {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": "refusal",
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        if not stream:
            return JSONResponse(200, message)
        start = dict(message, stop_reason=None)
        delta = {"stop_reason": "refusal", "stop_sequence": None}
        events = [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse(
                {"type": "message_delta", "delta": delta, "usage": {"output_tokens": 0}},
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]
        return StreamResponse(events, "text/event-stream; charset=utf-8", end_events=1)

    @staticmethod
    def _model_info(model: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "2024-02-29T00:00:00Z",
        }

    def _messages(self, body: Any, fault: Fault) -> Response:
        for key in ("model", "messages", "max_tokens"):
            if key not in body:
                return self.error_response(400, None, f"{key}: Field required")
        requested = ALIASES.get(body["model"], body["model"])
        if requested not in self.models:
            return self.error_response(404, None, f"model: {body['model']}")
        refused = self.refusal(
            requested, body["messages"], body["max_tokens"], bool(body.get("stream"))
        )
        if refused is not None:
            return refused
        model = "claude-2.1" if fault.wrong_model else requested
        text = "" if fault.empty else self.reply
        input_tokens = count_tokens(body["messages"]) + count_tokens(body.get("system", ""))
        output_tokens = len(text.split())
        message: dict[str, Any] = {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        if not body.get("stream"):
            return JSONResponse(200, message)
        start = dict(message, content=[], stop_reason=None)
        start["usage"] = {"input_tokens": input_tokens, "output_tokens": 1}
        events = [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]
        for piece in words(text):
            if piece:
                delta = {"type": "text_delta", "text": piece}
                events.append(
                    sse(
                        {"type": "content_block_delta", "index": 0, "delta": delta},
                        "content_block_delta",
                    )
                )
        events += [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return StreamResponse(
            events,
            "text/event-stream; charset=utf-8",
            end_events=1,
            malformed_event=b"event: content_block_delta\ndata: {not json\n\n",
            error_event=sse(error, "error"),
        )
