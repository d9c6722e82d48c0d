"""A Hugging Face model that loads its weights on first use and can unload them
after an idle time to free memory."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

from orchestrator.core.model import Prompt
from orchestrator.integrations.huggingface_model import HuggingFaceModel

logger = logging.getLogger(__name__)

Loader = Callable[[], tuple[Any, Any]]


class LazyHuggingFaceModel(HuggingFaceModel):
    """Like :class:`HuggingFaceModel`, but the weights are loaded (in a worker
    thread) by the first call, exactly once even when many first calls come at
    once, and dropped again once no call used them for
    ``idle_unload_seconds`` (``None``: never). ``loader`` replaces the default
    ``from_pretrained`` loading. With ``endpoint_url`` there is nothing to load."""

    def __init__(
        self,
        name: str,
        *,
        model_path: Optional[str] = None,
        loader: Optional[Loader] = None,
        idle_unload_seconds: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        if idle_unload_seconds is not None and idle_unload_seconds <= 0:
            raise ValueError("idle_unload_seconds must be > 0 or None")
        super().__init__(name, model_path=model_path, _load_now=False, **kwargs)
        self.loader = loader
        self.idle_unload_seconds = idle_unload_seconds
        self.loads = 0
        self.unloads = 0
        self._lock = asyncio.Lock()
        self._active = 0
        self._last_used = time.monotonic()
        self._timer: Optional[asyncio.TimerHandle] = None

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory now."""
        return self._model is not None

    async def load(self) -> None:
        """Load the weights unless loaded; concurrent callers share one load."""
        if self._model is not None:
            return
        async with self._lock:
            if self._model is not None:
                return
            loop = asyncio.get_running_loop()
            load = self.loader or self._load
            model, tokenizer = await loop.run_in_executor(self._worker(), load)
            self._model, self._tokenizer = model, tokenizer
            self.loads += 1
            self._fill_context_length()
            logger.info("%s: weights loaded", self.name)

    def unload(self) -> None:
        """Drop the weights now (they load again on the next call)."""
        if self._model is None:
            return
        self._model = None
        self._tokenizer = None
        self.unloads += 1
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
        logger.info("%s: weights unloaded after %ss idle", self.name, self.idle_unload_seconds)

    async def _weights(self) -> tuple[Any, Any]:
        await self.load()
        return await super()._weights()

    def _begin(self) -> None:
        self._active += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self) -> None:
        self._active -= 1
        self._last_used = time.monotonic()
        if self.idle_unload_seconds is not None and self._active == 0 and self._transport is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.idle_unload_seconds, self._unload_if_idle)

    def _unload_if_idle(self) -> None:
        self._timer = None
        idle = time.monotonic() - self._last_used
        if self._active == 0 and self.idle_unload_seconds is not None:
            if idle >= self.idle_unload_seconds * 0.999:
                self.unload()
            else:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.idle_unload_seconds - idle, self._unload_if_idle)

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """Load if needed, then generate (see :meth:`HuggingFaceModel.generate_response`)."""
        self._begin()
        try:
            return await super().generate_response(prompt, **params)
        finally:
            self._end()

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """Load if needed, then stream."""
        self._begin()
        try:
            async for chunk in super().stream_response(prompt, **params):
                yield chunk
        finally:
            self._end()

    async def health_check(self) -> bool:
        """Loadable (local) or the endpoint answers; never loads weights."""
        if self._transport is None:
            return self._model is not None or self.model_path is not None or self.loader is not None
        return await super().health_check()

    async def aclose(self) -> None:
        """Cancel the idle timer, drop the weights, stop the worker."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.unload()
        await super().aclose()
