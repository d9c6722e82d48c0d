"""Google Gemini API: ``generateContent``, ``streamGenerateContent?alt=sse``,
``batchEmbedContents``, with ``usageMetadata``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Optional, Unpack

from orchestrator.core.model import Prompt
from orchestrator.errors import ContentFilteredError, MalformedResponseError
from orchestrator.integrations._http import (
    HTTPModel,
    HTTPOptions,
    ShapeGuard,
    chat_messages,
    error_detail,
    error_for_payload,
)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

_CONFIG_NAMES = {
    "max_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "stop": "stopSequences",
    "stop_sequences": "stopSequences",
    "candidate_count": "candidateCount",
    "response_mime_type": "responseMimeType",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


class GoogleModel(HTTPModel):
    """A Gemini model over the Gemini API (``x-goog-api-key``).

    The key comes from ``api_key``, else ``GOOGLE_API_KEY`` or
    ``GEMINI_API_KEY`` (google-genai's order: ``GOOGLE_API_KEY`` first), read
    at call time; the endpoint from ``base_url`` or ``GOOGLE_GEMINI_BASE_URL``;
    ``api_version`` defaults to ``v1beta``. Other keywords:
    :class:`~orchestrator.integrations._http.HTTPOptions`."""

    api_key_env = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    default_base_url = DEFAULT_BASE_URL
    official_hosts = frozenset({"generativelanguage.googleapis.com"})

    def __init__(
        self,
        name: str,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        api_version: str = "v1beta",
        model_id: Optional[str] = None,
        embedding_model: Optional[str] = None,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(
            name,
            "google",
            base_url=base_url,
            api_key=api_key,
            model_id=(model_id or name).removeprefix("models/"),
            **options,
        )
        self.api_version = api_version.strip("/")
        self.embedding_model = (embedding_model or self.model_id).removeprefix("models/")

    def cache_settings(self) -> dict[str, Any]:
        """The endpoint and model, plus API version and embedding model."""
        return {
            **super().cache_settings(),
            "api_version": self.api_version,
            "embedding_model": self.embedding_model,
        }

    def _headers(self) -> Mapping[str, str]:
        key = self._key()
        return {"x-goog-api-key": key} if key else {}

    def _path(self, model: str, method: str) -> str:
        return f"/{self.api_version}/models/{model}:{method}"

    def _body(self, prompt: Prompt, params: dict[str, Any]) -> dict[str, Any]:
        system: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for msg in chat_messages(prompt):
            parts = msg["content"] if isinstance(msg["content"], list) else None
            if parts is None:
                parts = [{"text": str(msg["content"])}]
            if msg["role"] == "system":
                system.extend(parts)
            else:
                role = "model" if msg["role"] in ("assistant", "model") else "user"
                contents.append({"role": role, "parts": parts})
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        config: dict[str, Any] = {}
        for key, value in params.items():
            if key in ("safety_settings", "safetySettings"):
                body["safetySettings"] = value
            elif key in ("tools", "toolConfig", "tool_config"):
                body["toolConfig" if key != "tools" else "tools"] = value
            else:
                name = _CONFIG_NAMES.get(key, key)
                if name == "stopSequences" and isinstance(value, str):
                    value = [value]
                config[name] = value
        if config:
            body["generationConfig"] = config
        return body

    def _record(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        output = usage.get("candidatesTokenCount")
        thoughts = usage.get("thoughtsTokenCount")
        if isinstance(output, int) and isinstance(thoughts, int):
            output += thoughts  # thinking tokens are billed as output
        self.record_usage(usage.get("promptTokenCount"), output)

    def _chunk_text(self, data: Any, final: bool) -> str:
        """Text of one response (or stream chunk); raises on a blocked answer."""
        with ShapeGuard(self.name):
            feedback = data.get("promptFeedback") or {}
            if feedback.get("blockReason"):
                raise ContentFilteredError(
                    f"prompt blocked: {feedback['blockReason']}", model=self.name
                )
            self._check_model(data.get("modelVersion"))
            candidates = data.get("candidates") or []
            if not candidates:
                if final:
                    raise MalformedResponseError("response has no candidates", model=self.name)
                return ""
            candidate = candidates[0]
            if candidate.get("finishReason") in _BLOCKED:
                raise ContentFilteredError(
                    f"answer blocked: {candidate['finishReason']}", model=self.name
                )
            parts = (candidate.get("content") or {}).get("parts") or []
            return "".join(
                p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
            )

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """One ``generateContent``; ``params`` go into ``generationConfig``
        (``max_tokens`` -> ``maxOutputTokens``, ``top_p`` -> ``topP``, ...)."""
        self._require_key()

        def parse(data: Any) -> tuple[str, Any]:
            text = self._chunk_text(data, final=True)
            if not text:
                raise self._empty()
            return text, data.get("usageMetadata")

        text, usage = await self._transport.request_json(
            "POST",
            self._path(self.model_id, "generateContent"),
            json_body=self._body(prompt, params),
            parse=parse,
        )
        self._record(usage)
        return text

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """``streamGenerateContent?alt=sse``; the chunk with a ``finishReason`` ends it."""
        self._require_key()
        produced = False
        async for _, chunk in self._transport.stream_sse(
            "POST",
            self._path(self.model_id, "streamGenerateContent"),
            params={"alt": "sse"},
            json_body=self._body(prompt, params),
            is_end=_has_finish_reason,
        ):
            if isinstance(chunk, dict) and "error" in chunk:
                raise error_for_payload(error_detail(chunk), status=None, model=self.name)
            text = self._chunk_text(chunk, final=False)
            self._record(chunk.get("usageMetadata"))
            if text:
                produced = True
                yield text
        if not produced:
            raise self._empty()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings from ``batchEmbedContents`` with ``embedding_model``."""
        self._require_key()
        items = list(texts)
        if not items:
            return []
        model = f"models/{self.embedding_model}"

        def parse(data: Any) -> list[list[float]]:
            with ShapeGuard(self.name):
                vectors = [[float(x) for x in e["values"]] for e in data["embeddings"]]
            if len(vectors) != len(items):
                raise MalformedResponseError(
                    f"{len(vectors)} embeddings for {len(items)} inputs", model=self.name
                )
            return vectors

        body = {"requests": [{"model": model, "content": {"parts": [{"text": t}]}} for t in items]}
        return await self._transport.request_json(
            "POST",
            self._path(self.embedding_model, "batchEmbedContents"),
            json_body=body,
            parse=parse,
        )

    async def _probe(self) -> None:
        """``GET models/{id}`` (free)."""
        await self._transport.request_json(
            "GET", f"/{self.api_version}/models/{self.model_id}", retry=False
        )


def _has_finish_reason(chunk: Any) -> bool:
    if not isinstance(chunk, dict):
        return False
    return any(isinstance(c, dict) and c.get("finishReason") for c in chunk.get("candidates") or ())
