"""A loopback Gemini API: ``/{version}/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:embedContent``, ``:batchEmbedContents``,
``GET /{version}/models[/{model}]``; key in ``x-goog-api-key`` (or ``?key=``);
errors as ``{"error": {code, message, status}}``."""

from __future__ import annotations

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
from tests.servers.openai_server import embedding_of

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiServer(LoopbackServer):
    """``api_key`` (if set) is checked; ``versions`` are the API versions served;
    ``served_as`` maps a model to the ``modelVersion`` its answers carry."""

    provider = "google"

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        reply: str = "Hello from the Gemini loopback server.",
        models: tuple[str, ...] = (
            "gemini-1.5-flash",
            "gemini-2.0-flash",
            "gemini-2.5-flash",
            "text-embedding-004",
        ),
        served_as: Optional[dict[str, str]] = None,
        versions: tuple[str, ...] = ("v1beta", "v1"),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.reply = reply
        self.models = list(models)
        self.versions = versions
        self.served_as = (
            {"gemini-1.5-flash": "gemini-1.5-flash-002"} if served_as is None else served_as
        )

    def error_response(self, status: int, kind: Optional[str], message: str) -> JSONResponse:
        err: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS.get(status, "UNKNOWN"),
        }
        if kind == "context_length":
            err["message"] = (
                "The input token count (1200000) exceeds the maximum number of tokens "
                "allowed (1048576)."
            )
        if status == 429:
            err["message"] = "Resource has been exhausted (e.g. check quota)."
            err["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}
            ]
        return JSONResponse(status, {"error": err})

    async def route(self, request: Request, fault: Fault) -> Response:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if self.api_key is not None and key != self.api_key:
            resp = self.error_response(400, None, "API key not valid. Please pass a valid API key.")
            resp.body["error"]["details"] = [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ]
            resp.status = 400
            return resp
        parts = request.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] not in self.versions or parts[1] != "models":
            return self.error_response(404, None, f"Not found: {request.path}")
        if request.method == "GET" and len(parts) == 2:
            return JSONResponse(200, {"models": [self._info(m) for m in self.models]})
        if len(parts) != 3:
            return self.error_response(404, None, f"Not found: {request.path}")
        model, _, method = parts[2].partition(":")
        if model not in self.models:
            return self.error_response(
                404, None, f"models/{model} is not found for API version {parts[0]}"
            )
        if request.method == "GET" and not method:
            return JSONResponse(200, self._info(model))
        body = request.json()
        if method in ("generateContent", "streamGenerateContent"):
            config = body.get("generationConfig") or {}
            refused = self.refusal(
                model,
                body.get("contents", []),
                config.get("maxOutputTokens"),
                method == "streamGenerateContent",
            )
            if refused is not None:
                return refused
        if method == "generateContent":
            return JSONResponse(200, self._answer(model, body, fault, stream=False)[0])
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return JSONResponse(200, self._answer(model, body, fault, stream=False))
            chunks = self._answer(model, body, fault, stream=True)
            events = [sse(c, newline="\r\n") for c in chunks]
            error = {
                "error": {
                    "code": 503,
                    "message": "The model is overloaded.",
                    "status": "UNAVAILABLE",
                }
            }
            return StreamResponse(
                events,
                "text/event-stream",
                end_events=1,
                malformed_event=b"data: {not json\r\n\r\n",
                error_event=sse(error, newline="\r\n"),
            )
        if method == "embedContent":
            text = body["content"]["parts"][0]["text"]
            return JSONResponse(200, {"embedding": {"values": embedding_of(text)}})
        if method == "batchEmbedContents":
            vectors = [
                {"values": embedding_of(r["content"]["parts"][0]["text"])} for r in body["requests"]
            ]
            return JSONResponse(200, {"embeddings": vectors})
        return self.error_response(404, None, f"unknown method {method}")

    def content_filtered(self, model: str, stream: bool) -> Response:
        """What Gemini sends for a prompt its safety filter blocks: no
        candidates, ``promptFeedback.blockReason: "SAFETY"``."""
        body = {
            "promptFeedback": {
                "blockReason": "SAFETY",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                ],
            },
            "usageMetadata": {"promptTokenCount": 0, "totalTokenCount": 0},
            "modelVersion": self.served_as.get(model, model),
        }
        if not stream:
            return JSONResponse(200, body)
        return StreamResponse([sse(body, newline="\r\n")], "text/event-stream", end_events=1)

    @staticmethod
    def _info(model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model,
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }

    def _answer(self, model: str, body: Any, fault: Fault, stream: bool) -> list[dict[str, Any]]:
        version = "gemini-0.9-pro" if fault.wrong_model else self.served_as.get(model, model)
        text = "" if fault.empty else self.reply
        prompt_tokens = count_tokens(body.get("contents", [])) + count_tokens(
            (body.get("systemInstruction") or {}).get("parts", [])
        )
        out_tokens = len(text.split())
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }

        def response(
            piece: str, finish: Optional[str], usage_now: dict[str, Any]
        ) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": piece}], "role": "model"},
                "index": 0,
            }
            if finish:
                candidate["finishReason"] = finish
            return {
                "candidates": [candidate],
                "usageMetadata": usage_now,
                "modelVersion": version,
                "responseId": "loopback-response",
            }

        if not stream:
            return [response(text, "STOP", usage)]
        pieces = [p for p in words(text) if p] or [""]
        partial = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        chunks = [response(p, None, partial) for p in pieces[:-1]]
        chunks.append(response(pieces[-1], "STOP", usage))
        return chunks
