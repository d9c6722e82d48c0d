"""A loopback text-generation-inference server: ``/generate``,
``/generate_stream`` (SSE of token events, the last with ``generated_text``
and ``details``), ``/info``, ``/health``; errors as ``{"error", "error_type"}``."""

from __future__ import annotations

from typing import Any, Optional

from tests.servers._base import (
    Fault,
    JSONResponse,
    LoopbackServer,
    Request,
    Response,
    StreamResponse,
    sse,
    words,
)

_TYPES = {
    400: "validation",
    422: "validation",
    424: "generation",
    429: "overloaded",
    500: "generation",
    503: "overloaded",
}


class TGIServer(LoopbackServer):
    provider = "tgi"

    def __init__(
        self,
        *,
        reply: str = "Hello from the TGI loopback server.",
        model_id: str = "tiny/gpt2",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reply = reply
        self.model_id = model_id

    def error_response(self, status: int, kind: Optional[str], message: str) -> JSONResponse:
        if kind == "context_length":
            message = (
                "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. "
                "Given: 2000 `inputs` tokens and 100 `max_new_tokens`"
            )
        return JSONResponse(
            status, {"error": message, "error_type": _TYPES.get(status, "generation")}
        )

    async def route(self, request: Request, fault: Fault) -> Response:
        if request.method == "GET" and request.path == "/health":
            return JSONResponse(200, None)
        if request.method == "GET" and request.path == "/info":
            return JSONResponse(
                200,
                {
                    "model_id": self.model_id,
                    "model_dtype": "torch.float16",
                    "max_input_tokens": 1024,
                    "max_total_tokens": 2048,
                    "version": "2.4.0",
                },
            )
        body = request.json()
        if "inputs" not in body:
            return self.error_response(422, None, "missing field `inputs`")
        text = "" if fault.empty else self.reply
        pieces = [p for p in words(text) if p]
        details = {"finish_reason": "length", "generated_tokens": len(pieces), "seed": None}
        if request.path == "/generate":
            return JSONResponse(200, {"generated_text": text, "details": details})
        if request.path == "/generate_stream":
            events = []
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                events.append(
                    sse(
                        {
                            "index": i + 1,
                            "token": {
                                "id": 100 + i,
                                "text": piece,
                                "logprob": -0.5,
                                "special": False,
                            },
                            "generated_text": text if last else None,
                            "details": details if last else None,
                        }
                    )
                )
            if not pieces:
                events.append(
                    sse(
                        {
                            "index": 1,
                            "token": {"id": 0, "text": "</s>", "logprob": 0.0, "special": True},
                            "generated_text": "",
                            "details": details,
                        }
                    )
                )
            error = {
                "error": "Request failed during generation: Server error: CUDA out of memory",
                "error_type": "generation",
            }
            return StreamResponse(events, "text/event-stream", end_events=1, error_event=sse(error))
        return JSONResponse(404, {"error": "not found", "error_type": "not_found"})
