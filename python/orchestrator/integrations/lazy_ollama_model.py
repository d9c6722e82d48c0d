"""An Ollama model that pulls itself (``/api/pull``) the first time it is needed."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from orchestrator.core.model import Prompt
from orchestrator.errors import ModelError
from orchestrator.integrations._http import RetryPolicy, error_detail, error_for_payload
from orchestrator.integrations.ollama_model import OllamaModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullProgress:
    """One ``/api/pull`` progress line: ``status``, and bytes when a layer downloads."""

    status: str
    digest: Optional[str] = None
    total: Optional[int] = None
    completed: Optional[int] = None

    @property
    def fraction(self) -> Optional[float]:
        if self.total and self.completed is not None:
            return min(1.0, self.completed / self.total)
        return None


ProgressCallback = Callable[[PullProgress], None]


class LazyOllamaModel(OllamaModel):
    """Like :class:`OllamaModel`, but before the first call checks ``/api/tags``
    and, if the model is missing, pulls it, reporting progress through
    ``logging`` and ``progress`` (a callable taking :class:`PullProgress`).
    An :class:`asyncio.Lock` makes concurrent first calls wait for one pull.
    ``pull_timeout`` bounds the whole pull."""

    def __init__(
        self,
        name: str,
        base_url: Optional[str] = None,
        *,
        progress: Optional[ProgressCallback] = None,
        pull_timeout: float = 3600.0,
        insecure: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, base_url, **kwargs)
        self.progress = progress
        self.insecure = insecure
        self._ready = False
        self._lock = asyncio.Lock()
        self.pulls = 0
        self._pull_transport = dataclasses.replace(
            self._transport,
            policy=RetryPolicy(max_retries=1, timeout=pull_timeout, deadline=pull_timeout),
            on_retry_after=None,
        )

    @property
    def ready(self) -> bool:
        """Whether the model is known to be on the server."""
        return self._ready

    async def ensure_available(self) -> None:
        """Pull the model unless the server has it; at most one pull at a time,
        and none once it is known to be there."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            if not await self.has_model():
                await self.pull()
            if not self._shown:
                try:
                    await self.refresh_capabilities()
                except ModelError as exc:
                    logger.info("%s: /api/show failed after pull: %s", self.name, exc)
            self._ready = True

    async def pull(self) -> None:
        """Pull the model, streaming ``/api/pull`` progress; ends at ``success``."""
        self.pulls += 1
        logger.info("pulling %s from %s", self.model_id, self.base_url)
        body = {"model": self.model_id, "stream": True, "insecure": self.insecure}
        last_status = ""
        async for data in self._pull_transport.stream_ndjson(
            "POST", "/api/pull", json_body=body, is_end=_pull_finished
        ):
            if "error" in data:
                raise error_for_payload(error_detail(data), status=None, model=self.name)
            event = PullProgress(
                status=str(data.get("status", "")),
                digest=data.get("digest"),
                total=data.get("total"),
                completed=data.get("completed"),
            )
            if event.status != last_status:
                logger.info("pull %s: %s", self.model_id, event.status)
                last_status = event.status
            elif event.fraction is not None:
                logger.debug(
                    "pull %s: %s %.0f%%", self.model_id, event.status, 100 * event.fraction
                )
            if self.progress is not None:
                self.progress(event)
        logger.info("pulled %s", self.model_id)

    async def generate_response(self, prompt: Prompt, **params: Any) -> str:
        """Pull if needed, then generate (see :meth:`OllamaModel.generate_response`)."""
        await self.ensure_available()
        return await super().generate_response(prompt, **params)

    async def stream_response(self, prompt: Prompt, **params: Any) -> AsyncIterator[str]:
        """Pull if needed, then stream."""
        await self.ensure_available()
        async for chunk in super().stream_response(prompt, **params):
            yield chunk

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Pull if needed, then embed."""
        await self.ensure_available()
        return await super().embed(texts)

    async def _probe(self) -> None:
        """The server answers ``/api/tags`` (a missing model is pulled on first use)."""
        await self.list_models()


def _pull_finished(data: Any) -> bool:
    return isinstance(data, dict) and (data.get("status") == "success" or "error" in data)
