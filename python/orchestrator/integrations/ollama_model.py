"""Ollama: ``/api/chat`` (NDJSON streaming), ``/api/embed``, and ``/api/tags`` +
``/api/show`` for health, context length and capabilities."""

from __future__ import annotations

import ipaddress
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Optional, Unpack

from orchestrator.core.model import ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import MalformedResponseError, NotFoundError
from orchestrator.integrations._http import (
    HTTPModel,
    HTTPOptions,
    ShapeGuard,
    chat_messages,
    error_detail,
    error_for_payload,
    push_capabilities,
    same_model,
)

logger = logging.getLogger(__name__)

#: Top-level ``/api/chat`` fields; every other parameter goes into ``options``.
_TOP_LEVEL = {"format", "keep_alive", "tools", "think"}
_OPTION_NAMES = {"max_tokens": "num_predict"}
#: Ollama capability -> our capability flag.
_CAPABILITIES = {
    "completion": ("text_generation", "chat"),
    "tools": ("function_calling",),
    "vision": ("vision",),
    "embedding": ("embeddings",),
    "thinking": ("reasoning",),
    "insert": ("code_generation",),
}


def parse_host(host: Optional[str]) -> str:
    """``OLLAMA_HOST`` as a base URL, read as the ollama client reads it
    (``http`` and port 11434 by default; ``http://host`` means port 80)."""
    host, port = (host or "").strip(), 11434
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    name = split.hostname or "127.0.0.1"
    port = split.port or port
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}/{path}" if path else f"{scheme}://{name}:{port}"


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class OllamaModel(HTTPModel):
    """A model served by Ollama. The endpoint comes from ``base_url`` or
    ``OLLAMA_HOST``; no key is needed (one given is sent as a bearer token,
    for a proxy). Local models have no per-token bill: ``cost`` defaults to
    free. :meth:`refresh_capabilities` (run by :meth:`health_check`) reads
    the context length and capabilities from ``/api/show``. Other keywords:
    :class:`~orchestrator.integrations._http.HTTPOptions` (here ``timeout``
    defaults to 120 s and ``deadline`` to 300 s)."""

    echoes_model_name = True

    def __init__(
        self,
        name: str,
        base_url: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        model_id: Optional[str] = None,
        keep_alive: Optional[str] = None,
        **options: Unpack[HTTPOptions],
    ) -> None:
        options.setdefault("timeout", 120.0)  # local generation is slower to start
        options.setdefault("deadline", 300.0)
        super().__init__(
            name,
            "ollama",
            base_url=base_url or parse_host(os.environ.get("OLLAMA_HOST")),
            api_key=api_key,
            model_id=model_id or name,
            default_cost=ModelCost(),
            use_alias_id=False,
            **options,
        )
        self.requires_key = False
        self.keep_alive = keep_alive
        self._user_capabilities = options.get("capabilities") is not None
        self._shown = False

    def _headers(self) -> Mapping[str, str]:
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, prompt: Prompt, params: dict[str, Any], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": chat_messages(prompt),
            "stream": stream,
        }
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        options: dict[str, Any] = {}
        for key, value in params.items():
            if key in _TOP_LEVEL:
                body[key] = value
            elif key == "options" and isinstance(value, Mapping):
                options.update(value)
            else:
                options[_OPTION_NAMES.get(key, key)] = value
        if options:
            body["options"] = options
        return body

    def _check(self, data: Any) -> None:
        if isinstance(data, dict) and "error" in data:
            raise error_for_payload(error_detail(data), status=None, model=self.name)
        self._check_model(data.get("model"))

    def _record(self, data: Mapping[str, Any]) -> None:
        self.record_usage(data.get("prompt_eval_count"), data.get("eval_count"))

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """One ``/api/chat`` call; ``params`` go into ``options`` (``max_tokens``
        -> ``num_predict``), except ``format``, ``keep_alive``, ``tools``, ``think``."""

        def parse(data: Any) -> tuple[str, Mapping[str, Any]]:
            with ShapeGuard(self.name):
                self._check(data)
                if data.get("done") is not True:
                    raise MalformedResponseError("answer not marked done", model=self.name)
                text = data["message"].get("content") or ""
            if not text:
                raise self._empty()
            return text, data

        text, data = await self._transport.request_json(
            "POST", "/api/chat", json_body=self._body(prompt, params, False), parse=parse
        )
        self._record(data)
        return text

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """Stream ``/api/chat`` NDJSON until the object with ``done: true``."""
        produced = False
        async for data in self._transport.stream_ndjson(
            "POST", "/api/chat", json_body=self._body(prompt, params, True), is_end=_is_done
        ):
            with ShapeGuard(self.name):
                self._check(data)
                text = (data.get("message") or {}).get("content") or ""
                if data.get("done"):
                    self._record(data)
            if text:
                produced = True
                yield text
        if not produced:
            raise self._empty()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings from ``/api/embed``."""
        items = list(texts)
        if not items:
            return []

        def parse(data: Any) -> list[list[float]]:
            with ShapeGuard(self.name):
                self._check(data)
                vectors = [[float(x) for x in row] for row in data["embeddings"]]
            if len(vectors) != len(items):
                raise MalformedResponseError(
                    f"{len(vectors)} embeddings for {len(items)} inputs", model=self.name
                )
            return vectors

        return await self._transport.request_json(
            "POST", "/api/embed", json_body={"model": self.model_id, "input": items}, parse=parse
        )

    async def list_models(self) -> list[str]:
        """Names of the models the server has (``/api/tags``)."""

        def parse(data: Any) -> list[str]:
            with ShapeGuard(self.name):
                return [str(m.get("name") or m["model"]) for m in data["models"]]

        return await self._transport.request_json("GET", "/api/tags", parse=parse, retry=False)

    async def has_model(self) -> bool:
        """Whether ``/api/tags`` lists this model."""
        wanted = _tagged(self.model_id)
        return any(_tagged(n) == wanted or same_model(wanted, n) for n in await self.list_models())

    async def refresh_capabilities(self) -> ModelCapabilities:
        """Read context length and capabilities from ``/api/show`` into
        ``self.capabilities`` (capabilities the user passed are kept; only an
        unknown context length is filled in)."""
        data: Any = await self._transport.request_json(
            "POST", "/api/show", json_body={"model": self.model_id}, retry=False
        )
        with ShapeGuard(self.name):
            info = data.get("model_info") or {}
            context = next((int(v) for k, v in info.items() if k.endswith(".context_length")), 0)
            names = [str(c) for c in data.get("capabilities") or ()]
        current = self.capabilities
        if self._user_capabilities:
            if context and not current.context_length:
                self.capabilities = current.model_copy(update={"context_length": context})
        elif names or context:
            flags: dict[str, Any] = {}
            if names:
                flags = {"supports_streaming": "completion" in names}
                for name in names:
                    for flag in _CAPABILITIES.get(name, ()):
                        flags[flag] = True
                flags.setdefault("text_generation", False)
                flags.setdefault("chat", False)
                flags["code_generation"] = current.code_generation or flags.get(
                    "code_generation", False
                )
            if context:
                flags["context_length"] = context
            self.capabilities = current.model_copy(update=flags)
        self._shown = True
        if self.capabilities != current:
            push_capabilities(self)
        logger.debug("%s: capabilities from /api/show: %s", self.name, self.capabilities)
        return self.capabilities

    async def _probe(self) -> None:
        """``/api/tags`` must list the model; ``/api/show`` then fills capabilities once."""
        if not await self.has_model():
            raise NotFoundError(f"{self.model_id!r} is not pulled on the server", model=self.name)
        if not self._shown:
            await self.refresh_capabilities()


def _is_done(data: Any) -> bool:
    return isinstance(data, dict) and (data.get("done") is True or "error" in data)
