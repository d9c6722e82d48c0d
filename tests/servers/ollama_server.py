"""A loopback Ollama server: ``/api/chat`` (NDJSON streaming by default, as
Ollama does), ``/api/embed``, ``/api/tags``, ``/api/show``, ``/api/pull``
(NDJSON progress ending in ``success``), ``/api/version``; errors as
``{"error": "..."}``."""

from __future__ import annotations

import asyncio
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
    ndjson,
    words,
)
from tests.servers.openai_server import embedding_of


def _tagged(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


class OllamaServer(LoopbackServer):
    """``models`` are pulled already; ``library`` can be pulled (taking
    ``pull_delay`` seconds); ``context_length`` and ``capabilities`` are what
    ``/api/show`` reports; ``pulls`` counts pulls served."""

    provider = "ollama"

    def __init__(
        self,
        *,
        reply: str = "Hello from the Ollama loopback server.",
        models: tuple[str, ...] = ("llama3.2:latest", "nomic-embed-text:latest"),
        library: tuple[str, ...] = ("qwen2.5:0.5b", "llama3.2:latest"),
        context_length: int = 131072,
        capabilities: tuple[str, ...] = ("completion", "tools"),
        pull_delay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reply = reply
        self.models = [_tagged(m) for m in models]
        self.library = [_tagged(m) for m in library]
        self.context_length = context_length
        self.capabilities = list(capabilities)
        self.pull_delay = pull_delay
        self.pulls = 0

    def error_response(self, status: int, kind: Optional[str], message: str) -> JSONResponse:
        if kind == "context_length":
            message = "input length exceeds the context length"
        return JSONResponse(status, {"error": message})

    async def route(self, request: Request, fault: Fault) -> Response:
        path = request.path
        if request.method == "GET" and path == "/api/version":
            return JSONResponse(200, {"version": "0.6.0"})
        if request.method in ("GET", "HEAD") and path == "/":
            return JSONResponse(200, "Ollama is running")
        if request.method == "GET" and path == "/api/tags":
            return JSONResponse(200, {"models": [self._tag(m) for m in self.models]})
        body = request.json() or {}
        if request.method == "POST" and path == "/api/pull":
            return await self._pull(body, fault)
        model = _tagged(str(body.get("model") or body.get("name") or ""))
        if (
            request.method == "POST"
            and path in ("/api/chat", "/api/embed", "/api/show")
            and model not in self.models
        ):
            return self.error_response(
                404, None, f'model "{body.get("model")}" not found, try pulling it first'
            )
        if request.method == "POST" and path == "/api/show":
            return JSONResponse(200, self._show(model))
        if request.method == "POST" and path == "/api/embed":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return JSONResponse(
                200,
                {
                    "model": body["model"],
                    "embeddings": [embedding_of(str(t)) for t in inputs],
                    "total_duration": 1000,
                    "load_duration": 100,
                    "prompt_eval_count": sum(len(str(t).split()) for t in inputs),
                },
            )
        if request.method == "POST" and path == "/api/chat":
            return self._chat(body, fault)
        return JSONResponse(404, {"error": "404 page not found"})

    def _tag(self, model: str) -> dict[str, Any]:
        return {
            "name": model,
            "model": model,
            "modified_at": "2025-01-01T00:00:00.000000000Z",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    def _show(self, model: str) -> dict[str, Any]:
        return {
            "modelfile": f"FROM {model}\n",
            "parameters": 'stop "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": self._tag(model)["details"],
            "model_info": {
                "general.architecture": "llama",
                "general.parameter_count": 3212749888,
                "llama.context_length": self.context_length,
                "llama.embedding_length": 3072,
            },
            "capabilities": self.capabilities,
            "modified_at": "2025-01-01T00:00:00.000000000Z",
        }

    async def _pull(self, body: Any, fault: Fault) -> Response:
        model = _tagged(str(body.get("model") or body.get("name")))
        if model not in self.library and model not in self.models:
            return JSONResponse(500, {"error": "pull model manifest: file does not exist"})
        self.pulls += 1
        if self.pull_delay:
            await asyncio.sleep(self.pull_delay)
        digest = "sha256:" + "ab" * 32
        total = 1000
        events = [ndjson({"status": "pulling manifest"})]
        for done in (0, 400, 1000):
            events.append(
                ndjson(
                    {
                        "status": f"pulling {digest[7:19]}",
                        "digest": digest,
                        "total": total,
                        "completed": done,
                    }
                )
            )
        events += [
            ndjson({"status": "verifying sha256 digest"}),
            ndjson({"status": "writing manifest"}),
            ndjson({"status": "success"}),
        ]
        if not (fault.cut or fault.truncate or fault.malformed) and model not in self.models:
            self.models.append(model)
        if body.get("stream") is False:
            return JSONResponse(200, {"status": "success"})
        return StreamResponse(
            events, "application/x-ndjson", end_events=1, malformed_event=b"{not json\n"
        )

    def _chat(self, body: Any, fault: Fault) -> Response:
        model = "mistral:latest" if fault.wrong_model else body["model"]
        text = "" if fault.empty else self.reply
        prompt_tokens = count_tokens(body["messages"])
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            "total_duration": 5_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 1_000_000,
            "eval_count": len(text.split()),
            "eval_duration": 3_000_000,
        }
        if body.get("stream") is False:
            final["message"] = {"role": "assistant", "content": text}
            return JSONResponse(200, final)
        events = [
            ndjson(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": p},
                    "done": False,
                }
            )
            for p in words(text)
            if p
        ]
        events.append(ndjson(final))
        return StreamResponse(
            events,
            "application/x-ndjson",
            end_events=1,
            malformed_event=b'{"model": "x", "message": \n',
            error_event=ndjson({"error": "an error was encountered while running the model"}),
        )
