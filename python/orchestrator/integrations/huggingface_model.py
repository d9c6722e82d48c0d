"""Hugging Face models: local generation with ``transformers`` (the optional extra
``orchestrator-router[huggingface]``) run off the event loop, or a
text-generation-inference (TGI) endpoint over HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import httpx

from orchestrator.core.model import Model, ModelCapabilities, ModelCost, Prompt
from orchestrator.errors import MalformedResponseError, UnsupportedOperationError
from orchestrator.integrations._http import (
    DEFAULT_POOL,
    ClientPool,
    Endpoint,
    RetryPolicy,
    Secret,
    ShapeGuard,
    Transport,
    chat_messages,
    error_detail,
    error_for_payload,
    push_capabilities,
)

logger = logging.getLogger(__name__)

_STREAM_END = object()


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UnsupportedOperationError(
            "local Hugging Face models need transformers and torch: "
            "pip install 'orchestrator-router[huggingface]'"
        ) from exc
    return transformers


def load_pretrained(path: str, *, allow_download: bool, **model_kwargs: Any) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local path or a hub id; with
    ``allow_download=False`` only files already on disk are used."""
    folder = Path(path).expanduser()
    if path.startswith((".", "/", "~")) and not folder.is_dir():
        raise FileNotFoundError(
            f"model_path {path!r}: no such directory (expected a folder with config.json, "
            "the tokenizer files and the weights)"
        )
    transformers = _require_transformers()
    local = not allow_download
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=local, **model_kwargs
        )
    except (OSError, ValueError) as exc:  # transformers: no such model id, no usable files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "no usable model in that directory" if folder.is_dir() else "not found"
        if not folder.is_dir() and local:
            where += " (not a local directory, and allow_download=False)"
        raise FileNotFoundError(f"model_path {path!r}: {where}: {reason}") from None
    model.eval()
    return model, tokenizer


def _plain_prompt(messages: list[dict[str, Any]]) -> str:
    """A chat as plain text, for tokenizers without a chat template."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return str(messages[0]["content"])
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


class HuggingFaceModel(Model):
    """A Hugging Face causal language model.

    Give an already-built ``model`` and ``tokenizer``, or ``model_path`` (a
    local directory or hub id, default ``name``), loaded with
    ``local_files_only`` unless ``allow_download=True``. Generation runs in a
    dedicated worker thread, so the event loop never blocks; the tokenizer's
    chat template is used when it has one. With ``endpoint_url`` the model is
    a text-generation-inference server instead (``/generate``,
    ``/generate_stream``), reached through ``http_client`` or ``client_pool``
    when given (see :class:`~orchestrator.integrations._http.HTTPOptions`).
    Local weights have no per-token bill: ``cost`` defaults to free there, and
    to unpriced for an endpoint."""

    def __init__(
        self,
        name: str,
        model: Any = None,
        tokenizer: Any = None,
        *,
        model_path: Optional[str] = None,
        allow_download: bool = False,
        endpoint_url: Optional[str] = None,
        api_key: Optional[str] = None,
        max_new_tokens: int = 256,
        model_kwargs: Optional[Mapping[str, Any]] = None,
        capabilities: Optional[ModelCapabilities] = None,
        cost: Optional[ModelCost] = None,
        speed: Optional[float] = None,
        rpm: Optional[int] = None,
        tpm: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        deployment: Optional[str] = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        deadline: float = 300.0,
        http_client: Optional[httpx.AsyncClient] = None,
        client_pool: Optional[ClientPool] = None,
        _load_now: bool = True,
    ) -> None:
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        if endpoint_url is not None and model is not None:
            raise ValueError("pass either a local model or endpoint_url, not both")
        if max_new_tokens <= 0:
            raise ValueError("max_new_tokens must be > 0")
        if capabilities is None:
            capabilities = ModelCapabilities(
                text_generation=True, chat=True, supports_streaming=True
            )
        if cost is None and endpoint_url is None:
            cost = ModelCost()
        super().__init__(
            name,
            "huggingface",
            capabilities,
            cost,
            speed=speed,
            rpm=rpm,
            tpm=tpm,
            tags=tags,
            deployment=deployment,
        )
        self.model_path = model_path or (name if model is None and endpoint_url is None else None)
        self.allow_download = allow_download
        self.max_new_tokens = max_new_tokens
        self.model_kwargs = dict(model_kwargs or {})
        endpoint = Endpoint.parse(endpoint_url, "endpoint_url") if endpoint_url else None
        #: The endpoint as it may be shown (no userinfo; credential query values ``***``).
        self.endpoint_url = endpoint.public() if endpoint is not None else None
        self._api_key = Secret(api_key) if api_key else None
        self._model = model
        self._tokenizer = tokenizer
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._transport: Optional[Transport] = None
        if endpoint is not None:
            self._transport = Transport(
                endpoint,
                name,
                headers=self._headers,
                policy=RetryPolicy(max_retries=max_retries, timeout=timeout, deadline=deadline),
                on_retry_after=self.record_retry_after,
                http_client=http_client,
                pool=client_pool or DEFAULT_POOL,
            )
        elif http_client is not None or client_pool is not None:
            raise ValueError("http_client and client_pool are for an endpoint_url model only")
        elif model is None and _load_now:
            self._model, self._tokenizer = self._load()
        if self._tokenizer is not None:
            self._fill_context_length()

    def __repr__(self) -> str:
        where = (
            f"endpoint_url={self.endpoint_url!r}"
            if self.endpoint_url
            else f"model_path={self.model_path!r}"
        )
        return f"{type(self).__name__}(name={self.name!r}, {where})"

    def _headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._api_key.get()}"} if self._api_key else {}

    def cache_settings(self) -> dict[str, Any]:
        """Endpoint or weights, and the generation defaults, so answers of
        different weights or settings never mix."""
        where: Any = None
        if self._transport is not None:
            where = self._transport.endpoint.identity()
        elif self.model_path:
            where = self.model_path
        elif self._model is not None:
            where = str(getattr(self._model, "name_or_path", "") or id(self._model))
        return {
            "where": where,
            "max_new_tokens": self.max_new_tokens,
            "model_kwargs": self.model_kwargs,
        }

    def cache_credentials(self) -> tuple[str, ...]:
        """The endpoint's key and URL credentials (fingerprinted by a cache, never stored)."""
        if self._transport is None:
            return ()
        key = (f"key={self._api_key.get()}",) if self._api_key else ()
        return (*key, *self._transport.endpoint.credentials())

    # ----- local weights ---------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        if self.model_path is None:
            raise UnsupportedOperationError("no model_path to load", model=self.name)
        logger.info("loading %s from %s", self.name, self.model_path)
        return load_pretrained(
            self.model_path, allow_download=self.allow_download, **self.model_kwargs
        )

    def _fill_context_length(self) -> None:
        config = getattr(self._model, "config", None)
        context = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        if isinstance(context, int) and context > 0 and not self.capabilities.context_length:
            self.capabilities = self.capabilities.model_copy(update={"context_length": context})
            push_capabilities(self)

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"hf-{self.name}"
            )
        return self._executor

    async def _weights(self) -> tuple[Any, Any]:
        """The loaded model and tokenizer (the lazy subclass loads them here)."""
        if self._model is None:
            raise UnsupportedOperationError("model is not loaded", model=self.name)
        return self._model, self._tokenizer

    def _encode(self, tokenizer: Any, prompt: Prompt) -> Any:
        messages = chat_messages(prompt)
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return tokenizer(text, return_tensors="pt", add_special_tokens=False)
        return tokenizer(_plain_prompt(messages), return_tensors="pt")

    async def count_tokens(self, prompt: Prompt) -> Optional[int]:
        """The prompt's exact size for local weights: their own tokenizer and
        chat template, as :meth:`generate_response` encodes it (``None`` at a
        TGI endpoint, or before lazily loaded weights are in)."""
        if self._transport is not None or self._tokenizer is None:
            return None
        return int(self._encode(self._tokenizer, prompt)["input_ids"].shape[-1])

    def _generate_kwargs(self, tokenizer: Any, params: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(params)
        kwargs["max_new_tokens"] = kwargs.pop("max_tokens", None) or kwargs.get(
            "max_new_tokens", self.max_new_tokens
        )
        temperature = kwargs.get("temperature")
        if temperature is not None:
            kwargs["do_sample"] = temperature > 0
            if temperature <= 0:
                kwargs.pop("temperature")
        kwargs.setdefault("do_sample", False)
        if "stop" in kwargs:
            stop = kwargs.pop("stop")
            kwargs["stop_strings"] = [stop] if isinstance(stop, str) else list(stop)
            kwargs["tokenizer"] = tokenizer
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        if pad is not None:
            kwargs.setdefault("pad_token_id", pad)
        return kwargs

    def _run_generate(self, model: Any, tokenizer: Any, inputs: Any, kwargs: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            return model.generate(**inputs, **kwargs)

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """Generate locally in the worker thread (or at the TGI endpoint).
        ``max_tokens``/``max_new_tokens``, ``temperature``, ``top_p``, ``stop``
        and other ``generate`` arguments are accepted."""
        if self._transport is not None:
            return await self._tgi_generate(prompt, params)
        model, tokenizer = await self._weights()
        inputs = self._encode(tokenizer, prompt)
        kwargs = self._generate_kwargs(tokenizer, params)
        loop = asyncio.get_running_loop()
        output = await loop.run_in_executor(
            self._worker(), self._run_generate, model, tokenizer, inputs, kwargs
        )
        prompt_len = int(inputs["input_ids"].shape[-1])
        new_tokens = output[0][prompt_len:]
        text = str(tokenizer.decode(new_tokens, skip_special_tokens=True))
        self.record_usage(prompt_len, int(new_tokens.shape[-1]))
        if not text.strip():
            raise MalformedResponseError("empty completion", model=self.name)
        return text

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """Stream through a ``TextIteratorStreamer`` fed by the worker thread;
        stopping early stops generation."""
        if self._transport is not None:
            async for chunk in self._tgi_stream(prompt, params):
                yield chunk
            return
        transformers = _require_transformers()
        model, tokenizer = await self._weights()
        inputs = self._encode(tokenizer, prompt)
        kwargs = self._generate_kwargs(tokenizer, params)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        streamer = _make_streamer(transformers, tokenizer, loop, queue)

        criteria_base: Any = transformers.StoppingCriteria

        class _StopWhenAsked(criteria_base):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                import torch

                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        criteria = transformers.StoppingCriteriaList([_StopWhenAsked()])
        kwargs.update(streamer=streamer, stopping_criteria=criteria)
        future = loop.run_in_executor(
            self._worker(), self._run_generate, model, tokenizer, inputs, kwargs
        )
        produced = False
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    future.result()  # generation failed before ending the stream: raise it
                    if queue.empty():
                        break
                    continue
                item = getter.result()
                if item is _STREAM_END:
                    break
                if item:
                    produced = True
                    yield item
            await future
        finally:
            stop.set()
        self.record_usage(int(inputs["input_ids"].shape[-1]), streamer.generated)
        if not produced:
            raise MalformedResponseError("empty completion", model=self.name)

    # ----- text-generation-inference ------------------------------------------------

    def _tgi_body(self, prompt: Prompt, params: dict[str, Any], stream: bool) -> dict[str, Any]:
        messages = chat_messages(prompt)
        tokenizer = self._tokenizer
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            inputs = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            inputs = _plain_prompt(messages)
        parameters = dict(params)
        parameters["max_new_tokens"] = parameters.pop("max_tokens", None) or parameters.get(
            "max_new_tokens", self.max_new_tokens
        )
        if "stop" in parameters and isinstance(parameters["stop"], str):
            parameters["stop"] = [parameters["stop"]]
        parameters["details"] = True
        return {"inputs": inputs, "parameters": parameters, "stream": stream}

    async def _tgi_generate(self, prompt: Prompt, params: dict[str, Any]) -> str:
        assert self._transport is not None

        def parse(data: Any) -> tuple[str, Any]:
            with ShapeGuard(self.name):
                if isinstance(data, list):
                    data = data[0]
                if "error" in data:
                    raise error_for_payload(error_detail(data), status=None, model=self.name)
                text = data["generated_text"]
                details = data.get("details") or {}
            if not isinstance(text, str) or not text:
                raise MalformedResponseError("empty completion", model=self.name)
            return text, details.get("generated_tokens")

        text, generated = await self._transport.request_json(
            "POST", "/generate", json_body=self._tgi_body(prompt, params, False), parse=parse
        )
        self.record_usage(output_tokens=generated)
        return text

    async def _tgi_stream(self, prompt: Prompt, params: dict[str, Any]) -> AsyncIterator[str]:
        assert self._transport is not None
        produced = False
        async for _, event in self._transport.stream_sse(
            "POST",
            "/generate_stream",
            json_body=self._tgi_body(prompt, params, True),
            is_end=_tgi_finished,
        ):
            with ShapeGuard(self.name):
                if "error" in event:
                    raise error_for_payload(error_detail(event), status=None, model=self.name)
                token = event["token"]
                if not token.get("special") and token.get("text"):
                    produced = True
                    yield token["text"]
                details = event.get("details")
                if details:
                    self.record_usage(output_tokens=details.get("generated_tokens"))
        if not produced:
            raise MalformedResponseError("empty completion", model=self.name)

    # ----- health and cleanup ------------------------------------------------------

    async def health_check(self) -> bool:
        """Local: the weights are loaded (or loadable). Endpoint: ``GET /info``."""
        if self._transport is None:
            return self._model is not None or self.model_path is not None
        try:
            info: Any = await self._transport.request_json("GET", "/info", retry=False)
        except Exception as exc:
            logger.warning("health check of %s failed: %s", self.name, exc)
            return False
        context = info.get("max_total_tokens") if isinstance(info, dict) else None
        if isinstance(context, int) and context > 0 and not self.capabilities.context_length:
            self.capabilities = self.capabilities.model_copy(update={"context_length": context})
            push_capabilities(self)
        return True

    async def aclose(self) -> None:
        """Stop the worker thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _tgi_finished(event: Any) -> bool:
    return isinstance(event, dict) and (
        event.get("generated_text") is not None or event.get("details") is not None
    )


def _make_streamer(
    transformers: Any, tokenizer: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]
) -> Any:
    """A ``TextIteratorStreamer`` that hands text to the event loop's queue
    (no thread blocks on the loop side) and counts generated tokens."""

    streamer_base: Any = transformers.TextIteratorStreamer

    class _LoopStreamer(streamer_base):  # type: ignore[misc]
        generated = 0

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.generated += int(value.numel())
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                loop.call_soon_threadsafe(queue.put_nowait, text)
            if stream_end:
                loop.call_soon_threadsafe(queue.put_nowait, _STREAM_END)

    return _LoopStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
