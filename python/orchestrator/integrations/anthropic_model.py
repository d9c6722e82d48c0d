"""Anthropic: the Messages API (``/v1/messages``) with its SSE event stream and usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
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

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

_PARAM_NAMES = {"stop": "stop_sequences"}


class AnthropicModel(HTTPModel):
    """A Claude model over the Messages API.

    Short names from the catalogue (``claude-3-opus``) resolve to the dated
    id the API expects (``claude-3-opus-20240229``). The key comes from
    ``api_key`` or ``ANTHROPIC_API_KEY`` (read at call time), the endpoint
    from ``base_url`` or ``ANTHROPIC_BASE_URL``. ``max_tokens``, required by
    the API, defaults to ``default_max_tokens``. Other keywords:
    :class:`~orchestrator.integrations._http.HTTPOptions`."""

    api_key_env = ("ANTHROPIC_API_KEY",)
    base_url_env = "ANTHROPIC_BASE_URL"
    default_base_url = DEFAULT_BASE_URL
    official_hosts = frozenset({"api.anthropic.com"})

    def __init__(
        self,
        name: str,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        model_id: Optional[str] = None,
        default_max_tokens: int = 1024,
        api_version: str = API_VERSION,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(
            name, "anthropic", base_url=base_url, api_key=api_key, model_id=model_id, **options
        )
        if default_max_tokens <= 0:
            raise ValueError("default_max_tokens must be > 0")
        limit = self.capabilities.max_tokens
        self.default_max_tokens = min(default_max_tokens, limit) if limit else default_max_tokens
        self.api_version = api_version

    def cache_settings(self) -> dict[str, Any]:
        """The endpoint and model, plus the default ``max_tokens`` and API version."""
        return {
            **super().cache_settings(),
            "default_max_tokens": self.default_max_tokens,
            "api_version": self.api_version,
        }

    def _headers(self) -> Mapping[str, str]:
        headers = {"anthropic-version": self.api_version}
        key = self._key()
        if key:
            headers["x-api-key"] = key
        return headers

    def _body(self, prompt: Prompt, params: dict[str, Any], stream: bool) -> dict[str, Any]:
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        for msg in chat_messages(prompt):
            if msg["role"] == "system":
                system.append(str(msg["content"]))
            else:
                messages.append({"role": msg["role"], "content": msg["content"]})
        body: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": self.default_max_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = "\n\n".join(system)
        for key, value in params.items():
            body[_PARAM_NAMES.get(key, key)] = value
        if isinstance(body.get("stop_sequences"), str):
            body["stop_sequences"] = [body["stop_sequences"]]
        if stream:
            body["stream"] = True
        return body

    def _record(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        inputs = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens")]
        inputs.append(usage.get("cache_read_input_tokens"))
        counted = [int(v) for v in inputs if isinstance(v, int)]
        self.record_usage(sum(counted) if counted else None, usage.get("output_tokens"))

    def _parse(self, data: Any) -> tuple[str, Any]:
        with ShapeGuard(self.name):
            if data.get("type") != "message":
                raise MalformedResponseError(
                    f"expected a message, got type {data.get('type')!r}", model=self.name
                )
            self._check_model(data.get("model"))
            if data.get("stop_reason") == "refusal":
                raise ContentFilteredError("the model refused to answer", model=self.name)
            text = "".join(
                block["text"] for block in data["content"] if block.get("type") == "text"
            )
            if not text:
                raise self._empty()
            return text, data.get("usage")

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """One message; ``params`` go into the body (``stop`` becomes ``stop_sequences``)."""
        self._require_key()
        text, usage = await self._transport.request_json(
            "POST",
            "/v1/messages",
            json_body=self._body(prompt, params, stream=False),
            parse=self._parse,
        )
        self._record(usage)
        return text

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """Stream a message: text from ``content_block_delta`` events, usage from
        ``message_start``/``message_delta``; ends at ``message_stop``."""
        self._require_key()
        produced = False
        usage: dict[str, Any] = {}
        async for _, event in self._transport.stream_sse(
            "POST",
            "/v1/messages",
            json_body=self._body(prompt, params, stream=True),
            is_end=_is_message_stop,
        ):
            with ShapeGuard(self.name):
                kind = event.get("type")
                if kind == "error":
                    raise error_for_payload(error_detail(event), status=None, model=self.name)
                if kind == "message_start":
                    message = event["message"]
                    self._check_model(message.get("model"))
                    usage.update(message.get("usage") or {})
                elif kind == "content_block_delta":
                    delta = event["delta"]
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        produced = True
                        yield delta["text"]
                elif kind == "message_delta":
                    usage.update(event.get("usage") or {})
                    if (event.get("delta") or {}).get("stop_reason") == "refusal":
                        raise ContentFilteredError("the model refused to answer", model=self.name)
                self._record(usage)
        if not produced:
            raise self._empty()

    async def _probe(self) -> None:
        """``GET /v1/models/{id}`` (free)."""
        await self._transport.request_json("GET", f"/v1/models/{self.model_id}", retry=False)


def _is_message_stop(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") == "message_stop"
