"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, gateways):
Chat Completions with SSE streaming and usage, embeddings, models list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Optional, Unpack

from orchestrator.core.model import Prompt
from orchestrator.errors import ContentFilteredError, MalformedResponseError, NotFoundError
from orchestrator.integrations._http import (
    HTTPModel,
    HTTPOptions,
    ShapeGuard,
    chat_messages,
    error_detail,
    error_for_payload,
    same_model,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIModel(HTTPModel):
    """A chat model served over the OpenAI API.

    The key comes from ``api_key`` or ``OPENAI_API_KEY`` (read at call time),
    the endpoint from ``base_url`` or ``OPENAI_BASE_URL``. A key is required
    for the official endpoint; other servers get one only if it is set.
    The other keywords (``capabilities``, ``cost``, ``speed``, ``timeout``,
    ``max_retries``, ``deadline``, ``validate_model``, ``http_client``,
    ``client_pool``) are :class:`~orchestrator.integrations._http.HTTPOptions`.
    Answers' model labels are checked only at ``api.openai.com``: vLLM,
    llama.cpp and LM Studio label answers with their own name or file path."""

    api_key_env = ("OPENAI_API_KEY",)
    base_url_env = "OPENAI_BASE_URL"
    default_base_url = DEFAULT_BASE_URL
    official_hosts = frozenset({"api.openai.com"})

    def __init__(
        self,
        name: str,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        model_id: Optional[str] = None,
        organization: Optional[str] = None,
        embedding_model: Optional[str] = None,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(
            name, "openai", base_url=base_url, api_key=api_key, model_id=model_id, **options
        )
        self.requires_key = self.endpoint.url == DEFAULT_BASE_URL
        self.organization = organization
        self.embedding_model = embedding_model or self.model_id

    def _headers(self) -> Mapping[str, str]:
        headers = {}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        return headers

    def cache_settings(self) -> dict[str, Any]:
        """The endpoint and model, plus organization and embedding model."""
        return {
            **super().cache_settings(),
            "organization": self.organization,
            "embedding_model": self.embedding_model,
        }

    def _body(self, prompt: Prompt, params: dict[str, Any], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model_id, "messages": chat_messages(prompt)}
        body.update(params)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _parse(self, data: Any) -> tuple[str, Mapping[str, Any]]:
        with ShapeGuard(self.name):
            self._check_model(data.get("model"))
            choices = data["choices"]
            if not choices:
                raise MalformedResponseError("response has no choices", model=self.name)
            choice = choices[0]
            message = choice.get("message") or {}
            if message.get("refusal"):
                raise ContentFilteredError(str(message["refusal"]), model=self.name)
            if choice.get("finish_reason") == "content_filter":
                raise ContentFilteredError("answer withheld by content filter", model=self.name)
            text = message.get("content")
            if not text and message.get("tool_calls"):
                text = json.dumps(message["tool_calls"])
            if not isinstance(text, str) or not text:
                raise self._empty()
            return text, data.get("usage") or {}

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """One chat completion; ``params`` go into the request body as given
        (``temperature``, ``max_tokens``, ``response_format``, ...)."""
        self._require_key()
        body = self._body(prompt, params, stream=False)
        text, usage = await self._transport.request_json(
            "POST", "/chat/completions", json_body=body, parse=self._parse
        )
        self.record_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        return text

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """Stream a chat completion over SSE, ending at ``data: [DONE]``;
        usage comes from the last chunk (``stream_options.include_usage``)."""
        self._require_key()
        body = self._body(prompt, params, stream=True)
        produced = False
        async for _, chunk in self._transport.stream_sse(
            "POST", "/chat/completions", json_body=body, is_end=_never, sentinel="[DONE]"
        ):
            with ShapeGuard(self.name):
                if "error" in chunk:
                    raise error_for_payload(error_detail(chunk), status=None, model=self.name)
                self._check_model(chunk.get("model"))
                usage = chunk.get("usage")
                if usage:
                    self.record_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        produced = True
                        yield content
                    if choice.get("finish_reason") == "content_filter":
                        raise ContentFilteredError("answer cut by content filter", model=self.name)
        if not produced:
            raise self._empty()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings from ``/embeddings`` with ``embedding_model`` (default: this model)."""
        self._require_key()
        items = list(texts)
        if not items:
            return []

        def parse(data: Any) -> list[list[float]]:
            with ShapeGuard(self.name):
                rows = sorted(data["data"], key=lambda d: d["index"])
                vectors = [[float(x) for x in row["embedding"]] for row in rows]
            if len(vectors) != len(items):
                raise MalformedResponseError(
                    f"{len(vectors)} embeddings for {len(items)} inputs", model=self.name
                )
            return vectors

        return await self._transport.request_json(
            "POST",
            "/embeddings",
            json_body={"model": self.embedding_model, "input": items, "encoding_format": "float"},
            parse=parse,
        )

    async def _probe(self) -> None:
        """``GET /models`` (free): the model must be listed, if the server lists any."""

        def parse(data: Any) -> None:
            with ShapeGuard(self.name):
                ids = [str(m["id"]) for m in data["data"]]
            if ids and not any(same_model(self.model_id, i) for i in ids):
                raise NotFoundError(
                    f"model {self.model_id!r} not among the {len(ids)} served", model=self.name
                )

        await self._transport.request_json("GET", "/models", parse=parse, retry=False)


def _never(_: Any) -> bool:
    return False
