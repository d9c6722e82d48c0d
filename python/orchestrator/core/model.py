"""The model abstraction: what a model can do, what it costs, what was observed
of it, and the base class every provider adapter and user model extends.

Every call of :meth:`Model.generate_response` or :meth:`Model.stream_response`,
including overrides in subclasses, is measured (latency, time to first token,
tokens, cost, success or error class) and reported to every registry the model
is registered in, so their selectors learn with no code from the user.

A model does not know the registry: each registration gives it a
:class:`Binding` to an :class:`OutcomeSink` (the registry implements it), and
the model reports every measured outcome, or releases the selection's ticket
when no outcome is owed (a cache hit, an abandoned stream, a cancelled call).
"""

from __future__ import annotations

import abc
import contextvars
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Optional, Protocol, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator import _core
from orchestrator.core.cache import ModelCache
from orchestrator.core.cache_identity import cache_identity_of
from orchestrator.core.call_result import CallResult as CallResult  # re-exported: its old home
from orchestrator.core.rate_limits import ReportedLimits
from orchestrator.core.tokens import estimate_tokens as estimate_tokens  # re-exported: its old home
from orchestrator.errors import (
    MalformedResponseError,
    UnsupportedOperationError,
    error_class_of,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)

#: A prompt is a string or a list of chat messages (``{"role", "content"}``).
Prompt = Union[str, Sequence[dict[str, Any]]]

CAPABILITY_NAMES: tuple[str, ...] = tuple(_core.CAPABILITY_NAMES)
ERROR_CLASSES: tuple[str, ...] = tuple(_core.ERROR_CLASSES)


class ModelCapabilities(BaseModel):
    """What a model can do. The boolean flags are the capability names that
    ``select_model(capabilities=[...])`` accepts."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True)

    text_generation: bool = True
    code_generation: bool = False
    chat: bool = False
    embeddings: bool = False
    vision: bool = False
    function_calling: bool = False
    json_mode: bool = False
    supports_streaming: bool = False
    audio: bool = False
    reasoning: bool = False
    context_length: int = Field(0, ge=0, description="Context window in tokens; 0 if unknown.")
    max_tokens: Optional[int] = Field(None, gt=0, description="Most output tokens per request.")

    def names(self) -> list[str]:
        """The capability flags that are set."""
        return [name for name in CAPABILITY_NAMES if getattr(self, name)]


def check_capability_names(names: Sequence[str]) -> list[str]:
    """Validate capability names, raising ``ValueError`` that lists the known ones."""
    if isinstance(names, str):
        raise TypeError("capabilities must be a list of capability names, not a string")
    unknown = [n for n in names if n not in CAPABILITY_NAMES]
    if unknown:
        raise ValueError(
            f"unknown capability {unknown[0]!r}; known capabilities: {', '.join(CAPABILITY_NAMES)}"
        )
    return list(names)


class ModelCost(BaseModel):
    """Prices in USD: per million input tokens, per million output tokens, and
    an optional fixed fee per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: float = Field(0.0, ge=0, allow_inf_nan=False)
    output_per_million: float = Field(0.0, ge=0, allow_inf_nan=False)
    per_request: float = Field(0.0, ge=0, allow_inf_nan=False)

    @property
    def is_free(self) -> bool:
        return self.input_per_million == self.output_per_million == self.per_request == 0.0

    def price(self, input_tokens: int, output_tokens: int) -> float:
        """USD cost of one request with these token counts."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError(
                f"token counts must be >= 0, got input_tokens={input_tokens}, "
                f"output_tokens={output_tokens}"
            )
        return (
            input_tokens * self.input_per_million / 1e6
            + output_tokens * self.output_per_million / 1e6
            + self.per_request
        )


class ModelMetrics(BaseModel):
    """What a registry observed of a model: a snapshot read from the Rust core.
    Latencies are in seconds; ``None`` means not observed yet.
    ``recent_latency_p50`` is the median of the latest 20 successes and
    ``baseline_latency_p50`` of up to 200 before them; ``idle_for`` is the
    time since the latest outcome."""

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    successes: int = 0
    failures: int = 0
    failures_by_class: dict[str, int] = Field(default_factory=dict)
    success_rate: Optional[float] = None
    mean_reward: Optional[float] = None
    latency_p50: Optional[float] = None
    latency_p95: Optional[float] = None
    time_to_first_token_p50: Optional[float] = None
    time_to_first_token_p95: Optional[float] = None
    tokens_per_second: Optional[float] = None
    input_tokens: int = 0
    output_tokens: int = 0
    total_cost: float = 0.0
    pending: int = 0
    recent_latency_p50: Optional[float] = None
    baseline_latency_p50: Optional[float] = None
    idle_for: Optional[float] = None

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> ModelMetrics:
        requests = int(snap["requests"])
        successes = int(snap["successes"])
        return cls(
            **snap,
            failures=requests - successes,
            success_rate=successes / requests if requests else None,
        )


class ModelConstraints(BaseModel):
    """One request's constraints: the keyword arguments of ``select_model``.

    * ``max_cost``: the most the request may cost, in USD, priced from
      ``input_tokens``/``output_tokens`` when given, else from the default
      request size (100 input and 100 output tokens, a short chat turn).
    * ``min_speed``: output tokens per second, observed, else declared.
    * ``context_length``: the context window the request needs, in tokens
      (models of unknown window are excluded).
    * ``input_tokens``/``output_tokens``: the request's size. When
      ``input_tokens`` is given, a model whose *known* window is smaller than
      it plus the ``output_tokens`` given (if any) is not eligible (one of
      unknown window is).
    * ``tags``: tags the model must all have (``Model(tags=...)``).
    * ``session_id``: the conversation to keep on one model while it stays
      eligible (see "Session affinity" in the README).
    * ``alias``: a routing alias (``ModelRegistry.add_alias``) or a logical
      model's name (its deployments) the model must belong to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    capabilities: list[str] = Field(default_factory=list)
    max_cost: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    min_speed: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    context_length: Optional[int] = Field(None, gt=0)
    exclude_models: list[str] = Field(default_factory=list)
    input_tokens: Optional[int] = Field(None, ge=0)
    output_tokens: Optional[int] = Field(None, ge=0)
    tags: list[str] = Field(default_factory=list)
    session_id: Optional[str] = None
    alias: Optional[str] = None
    #: Whose spend budgets apply (see ``ModelRegistry.add_budget``).
    tenant: Optional[str] = None

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: list[str]) -> list[str]:
        return check_capability_names(value)

    @field_validator("session_id", "tags", mode="before")
    @classmethod
    def _core_checked(cls, value: object, info: ValidationInfo) -> object:
        # Before pydantic's own check, which takes a str subclass as its text:
        # the core's one conversion of the field refuses those too.
        try:
            _core.Request(**{info.field_name: value})  # type: ignore[arg-type]
        except TypeError as exc:
            raise ValueError(str(exc)) from None  # reported as this field's error
        return value

    @field_validator("tenant")
    @classmethod
    def _valid_tenant(cls, value: Optional[str]) -> Optional[str]:
        _core.Request(tenant=value)  # the core's one rule for a request's names
        return value

    def request(self) -> _core.Request:
        """These constraints as the core's typed request (the same
        conversion ``select_model``'s keyword arguments go through)."""
        return _core.Request(
            self.capabilities,
            self.max_cost,
            self.min_speed,
            self.context_length,
            self.exclude_models,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            tags=self.tags,
            session_id=self.session_id,
            alias=self.alias,
            tenant=self.tenant,
        )

    @classmethod
    def of(cls, request: _core.Request) -> ModelConstraints:
        """The constraints a core request holds (for explanations)."""
        return cls(
            capabilities=request.capabilities,
            max_cost=request.max_cost,
            min_speed=request.min_speed,
            context_length=request.context_length,
            exclude_models=request.exclude_models,
            input_tokens=request.given_input_tokens,
            output_tokens=request.given_output_tokens,
            tags=request.tags,
            session_id=request.session_id,
            alias=request.alias,
            tenant=request.tenant,
        )


@dataclass
class CallRecord:
    """Measurements of one model call, filled in by the adapter as it goes."""

    model: Model
    started: float = field(default_factory=time.perf_counter)
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cost: Optional[float] = None
    first_token_at: Optional[float] = None
    retry_after: float = 0.0
    quality: Optional[float] = None
    #: The latest rate-limit headers of the call's responses.
    reported_limits: ReportedLimits = field(default_factory=ReportedLimits)


class Usage(NamedTuple):
    """What a call stopped after it was sent had used: its budgets are
    charged this (``cost``, else the model's price of the token counts)."""

    input_tokens: int
    output_tokens: int
    cost: Optional[float] = None


class OutcomeSink(Protocol):
    """Where a model reports its measured calls: the registry implements it.
    The model holds a sink per registration and never imports the registry."""

    def record(
        self,
        model: Model,
        slot: int,
        ticket: int,
        outcome: _core.Outcome,
        error: Optional[BaseException],
    ) -> None:
        """Count one call's outcome (under ``ticket``; 0 when the call was
        not selected through this sink)."""

    def release(
        self, slot: int, ticket: int, sent: bool = False, usage: Optional[Usage] = None
    ) -> None:
        """Release a selection's ticket for which no outcome is owed; ``sent``:
        the request may have reached the provider (a call cancelled after it
        started), so its rate-limit reservation stays counted and its budgets
        are charged ``usage`` (unknown: the expected cost)."""

    def update_model(self, model: Model) -> None:
        """Take in the model's changed capabilities, cost or speed."""


@dataclass(eq=False)
class Binding:
    """A model's place in one registry: the sink it reports to, the core
    holding its statistics and its slot there."""

    sink: OutcomeSink
    core: _core.SelectionCore
    slot: int

    @property
    def registry(self) -> OutcomeSink:
        """The sink under its former name (adapters written before the sink
        protocol); new code uses :meth:`Model.declarations_changed`."""
        return self.sink


#: A call's selection tickets, one per registration of the model at the time.
Tickets = list[tuple[Binding, int]]


_ACTIVE_CALL: contextvars.ContextVar[Optional[CallRecord]] = contextvars.ContextVar(
    "orchestrator_active_call", default=None
)


def take_tickets(bindings: Iterable[Binding]) -> Tickets:
    """Take the tickets this task holds for each registration (the core
    holds them per task from ``select_model`` on)."""
    return [(b, b.core.take_held(b.slot)) for b in bindings]


def release_selection(model: Model) -> None:
    """Release the tickets this task holds for ``model`` when it will not be
    called after all (a prompt refused before sending): no outcome is owed
    and nothing was sent, so its rate-limit reservation is returned."""
    release_tickets(take_tickets(model._bindings))


def release_tickets(tickets: Tickets, sent: bool = False, usage: Optional[Usage] = None) -> None:
    """Release tickets for which no outcome is owed (``sent``, ``usage``:
    see :meth:`OutcomeSink.release`)."""
    for binding, ticket in tickets:
        if ticket:
            binding.sink.release(binding.slot, ticket, sent, usage)


def current_call() -> Optional[CallRecord]:
    """The measurements of the model call running in this task, if any."""
    return _ACTIVE_CALL.get()


#: The result of the latest measured provider call made by this task.
_LAST_CALL: contextvars.ContextVar[Optional[CallResult]] = contextvars.ContextVar(
    "orchestrator_last_call", default=None
)


def last_call() -> Optional[CallResult]:
    """What this task's latest ``generate_response`` cost: the provider's token
    counts, the price and the latency. An answer from a cache is ``cached``,
    with cost 0 and the token counts of the call that produced it. ``None``
    when the call failed."""
    return _LAST_CALL.get()


def check_prompt(prompt: object) -> None:
    """Refuse a prompt no provider can be sent: text that is not valid
    Unicode (a lone surrogate cannot be encoded as UTF-8). The error is the
    caller's, raised before any request, so no model is charged for it."""
    parts: list[object] = [prompt]
    while parts:
        part = parts.pop()
        if isinstance(part, str):
            try:
                part.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"invalid prompt: {part[exc.start : exc.end]!r} at index {exc.start} "
                    "is not valid Unicode text (a lone surrogate cannot be encoded as UTF-8)"
                ) from None
        elif isinstance(part, (list, tuple)):
            parts.extend(part)
        elif isinstance(part, (dict, Mapping)):  # dict first: the Mapping ABC's check is slow
            parts.extend(part.values())


def _checked_tickets(model: Model, prompt: Prompt) -> Tickets:
    """This task's tickets for ``model``, once ``prompt`` passed
    :func:`check_prompt`; a refused prompt releases them, owing no outcome."""
    tickets = take_tickets(model._bindings)
    try:
        check_prompt(prompt)
    except ValueError:
        release_tickets(tickets)
        raise
    return tickets


T = TypeVar("T")

GenerateFn = Callable[..., Awaitable[str]]
StreamFn = Callable[..., AsyncIterator[str]]
EmbedFn = Callable[..., Awaitable[list[list[float]]]]


def _measured_generate(fn: GenerateFn) -> GenerateFn:
    @functools.wraps(fn)
    async def generate_response(self: Model, prompt: Prompt, **kwargs: Any) -> str:
        active = _ACTIVE_CALL.get()
        if active is not None and active.model is self:
            return await fn(self, prompt, **kwargs)  # nested: the outer call measures
        use_cache = kwargs.pop("cache", True)
        refresh = kwargs.pop("refresh_cache", False)
        _LAST_CALL.set(None)
        tickets = _checked_tickets(self, prompt)
        if self._cache is None or not use_cache:
            return (await self._run_measured(fn, prompt, kwargs, tickets)).text
        ran = False

        def call() -> Awaitable[CallResult]:
            nonlocal ran
            ran = True
            return self._run_measured(fn, prompt, kwargs, tickets)

        try:
            answer = await self._cache.generate(self, prompt, kwargs, call, refresh)
            if answer.cached:
                _LAST_CALL.set(answer)
            return answer.text
        finally:
            if not ran:  # served from the cache: no outcome is owed
                release_tickets(tickets)

    generate_response.__orchestrator_measured__ = True  # type: ignore[attr-defined]
    return generate_response


def _measured_stream(fn: StreamFn) -> StreamFn:
    @functools.wraps(fn)
    def stream_response(self: Model, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        active = _ACTIVE_CALL.get()
        if active is not None and active.model is self:
            return fn(self, prompt, **kwargs)
        use_cache = kwargs.pop("cache", True)
        refresh = kwargs.pop("refresh_cache", False)
        tickets = _checked_tickets(self, prompt)
        if self._cache is None or not use_cache:
            return MeasuredStream(self, fn, prompt, kwargs, tickets)
        return CachedStream(self, self._cache, fn, prompt, kwargs, tickets, refresh)

    stream_response.__orchestrator_measured__ = True  # type: ignore[attr-defined]
    return stream_response


def _cached_embed(fn: EmbedFn) -> EmbedFn:
    """Serve ``embed`` per text from the model's cache (embedding models only):
    only the texts that missed reach the provider, in one measured call
    (reported like a generation: its tokens and cost count in the model's
    statistics, rate limits and budgets). All texts served from the cache:
    no call, and the selection's tickets are released."""

    @functools.wraps(fn)
    async def embed(self: Model, texts: Sequence[str], **kwargs: Any) -> list[list[float]]:
        active = _ACTIVE_CALL.get()
        if active is not None and active.model is self:
            return await fn(self, texts, **kwargs)  # nested: the outer call measures
        use_cache = kwargs.pop("cache", True)
        refresh = kwargs.pop("refresh_cache", False)
        tickets = take_tickets(self._bindings)
        ran = False

        async def compute(missing: Sequence[str]) -> list[list[float]]:
            nonlocal ran
            ran = True
            return await self._run_embedding(fn, missing, kwargs, tickets)

        try:
            if self._cache is not None and use_cache and self.capabilities.embeddings:
                return await self._cache.embed(self, texts, compute, refresh, kwargs)
            return await compute(texts)
        finally:
            if not ran:  # every text from the cache: no outcome is owed
                release_tickets(tickets)

    embed.__orchestrator_measured__ = True  # type: ignore[attr-defined]
    return embed


class CachedStream:
    """A model's stream through its cache. When the cache serves the answer,
    no measured call runs, so the selection's tickets are released when the
    stream ends or is closed."""

    def __init__(
        self,
        model: Model,
        cache: ModelCache,
        fn: StreamFn,
        prompt: Prompt,
        params: dict[str, Any],
        tickets: Tickets,
        refresh: bool,
    ) -> None:
        self._model, self._fn, self._prompt, self._params = model, fn, prompt, params
        self._tickets = tickets
        self._measured: Optional[MeasuredStream] = None
        self._answered = False
        self._inner = cache.stream(model, prompt, params, self._start, refresh)

    def _start(self) -> MeasuredStream:
        """The measured call, when the cache misses."""
        self._measured = MeasuredStream(
            self._model, self._fn, self._prompt, self._params, self._tickets
        )
        return self._measured

    def __aiter__(self) -> CachedStream:
        return self

    async def __anext__(self) -> str:
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._answered = True
            self._settle()
            raise
        except BaseException:
            self._settle()
            raise
        self._answered = True
        return chunk

    @property
    def result(self) -> Optional[CallResult]:
        return None if self._measured is None else self._measured.result

    @property
    def from_cache(self) -> Optional[bool]:
        """Whether the cache serves this answer (no provider call was made):
        known once the first chunk arrived or the stream ended, ``None`` before."""
        return self._measured is None if self._answered else None

    def _settle(self) -> None:
        if self._measured is None:
            release_tickets(self._tickets)
            self._tickets = []

    async def aclose(self) -> None:
        self._settle()
        closer = getattr(self._inner, "aclose", None)
        if closer is not None:
            await closer()


class MeasuredStream:
    """An async iterator over a model's streamed chunks that measures the call
    and reports it when the stream ends. ``result`` is set once it completed."""

    def __init__(
        self,
        model: Model,
        fn: StreamFn,
        prompt: Prompt,
        params: dict[str, Any],
        tickets: Tickets,
    ) -> None:
        self._model = model
        self._fn = fn
        self._prompt = prompt
        self._params = params
        self._inner: Optional[AsyncIterator[str]] = None
        self._record: Optional[CallRecord] = None
        self._tickets = tickets
        self._chunks: list[str] = []
        self._done = False
        self.result: Optional[CallResult] = None

    def __aiter__(self) -> MeasuredStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        if self._record is None:
            self._record = CallRecord(self._model)
        token = _ACTIVE_CALL.set(self._record)
        try:
            if self._inner is None:
                self._inner = self._fn(self._model, self._prompt, **self._params)
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._done = True
            self.result = self._model._finish(
                self._record, self._tickets, self._prompt, "".join(self._chunks), None
            )
            raise
        except BaseException as exc:
            self._done = True
            self._model._finish(self._record, self._tickets, self._prompt, None, exc)
            raise
        finally:
            _ACTIVE_CALL.reset(token)
        if self._record.first_token_at is None:
            self._record.first_token_at = time.perf_counter()
        self._chunks.append(chunk)
        return chunk

    async def aclose(self) -> None:
        """Stop early: the call is not reported as an outcome, and its
        selection ticket is released (its request stays counted against the
        model's rate limit: the provider received it; its budgets are charged
        the prompt and the chunks streamed so far)."""
        if not self._done and self._record is not None:
            self._done = True
            record = self._record
            usage = Usage(
                record.input_tokens
                if record.input_tokens is not None
                else estimate_tokens(self._prompt),
                record.output_tokens
                if record.output_tokens is not None
                else estimate_tokens("".join(self._chunks)),
                record.cost,
            )
            release_tickets(self._tickets, sent=True, usage=usage)
        if self._inner is not None and hasattr(self._inner, "aclose"):
            await self._inner.aclose()


class Model(abc.ABC):
    """A model that can be registered, selected and called.

    Subclasses implement :meth:`generate_response` and :meth:`health_check`,
    and may implement :meth:`stream_response` and :meth:`embed`. Adapters
    call :meth:`record_usage` with the provider's token counts; otherwise
    tokens are estimated from the text.
    """

    _measured_methods: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "generate_response": _measured_generate,
        "stream_response": _measured_stream,
        "embed": _cached_embed,
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, wrap in Model._measured_methods.items():
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "__orchestrator_measured__", False):
                setattr(cls, name, wrap(fn))

    def __init__(
        self,
        name: str,
        provider: str,
        capabilities: Optional[ModelCapabilities] = None,
        cost: Optional[ModelCost] = None,
        *,
        speed: Optional[float] = None,
        rpm: Optional[int] = None,
        tpm: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        deployment: Optional[str] = None,
    ) -> None:
        """``cost=None`` marks the model unpriced: ``max_cost`` then excludes it.
        ``speed`` declares output tokens per second until speed is observed.
        ``rpm``/``tpm``: the most requests/tokens it may be sent in any 60 s
        (``None``: unlimited); a model whose window is full is not eligible.
        ``tags``: labels a request can require (``select_model(tags=["eu"])``),
        each ``[a-z0-9][a-z0-9_.:-]{0,63}``. ``deployment``: this model is one
        deployment of the logical model ``name`` (the same model through
        another provider, region or key); its ``name`` is then
        ``"<name>@<deployment>"``, the key a registry knows it by, and
        ``model_name`` is the logical name."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"invalid name: {name!r} (a non-empty string is required)")
        if not isinstance(provider, str) or not provider.strip():
            raise ValueError(f"invalid provider: {provider!r} (a non-empty string is required)")
        if capabilities is None:
            capabilities = ModelCapabilities()
        elif not isinstance(capabilities, ModelCapabilities):
            kind = type(capabilities).__name__
            raise TypeError(f"invalid capabilities: expected ModelCapabilities, got {kind}")
        if cost is not None and not isinstance(cost, ModelCost):
            raise TypeError(f"invalid cost: expected ModelCost or None, got {type(cost).__name__}")
        if speed is not None and (
            not isinstance(speed, (int, float)) or not speed >= 0 or speed == float("inf")
        ):
            raise ValueError(f"invalid speed: {speed!r} (output tokens per second, >= 0)")
        self.deployment: Optional[str] = _core.check_deployment(deployment)
        #: The logical model's name; ``name`` is this deployment's.
        self.model_name = name
        self.name = name if self.deployment is None else f"{name}@{self.deployment}"
        self.provider = provider
        self.capabilities = capabilities
        self.cost = cost
        self.speed = None if speed is None else float(speed)
        self.rpm, self.tpm = _core.check_rate_limits(rpm, tpm)
        self.tags: tuple[str, ...] = tuple(_core.check_tags(tags))
        self._bindings: list[Binding] = []
        self._cache: Optional[ModelCache] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, provider={self.provider!r})"

    # ----- what subclasses implement -----------------------------------------

    @abc.abstractmethod
    async def generate_response(self, prompt: Prompt, **kwargs: Any) -> str:
        """Generate a completion for a prompt or a list of chat messages.

        Keyword arguments are generation parameters (``temperature``,
        ``max_tokens``, ...); ``cache=False`` skips the cache for this call and
        ``refresh_cache=True`` replaces the cached answer."""

    @abc.abstractmethod
    async def health_check(self) -> bool:
        """Whether the model answers, using the provider's cheapest probe."""

    async def stream_response(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[str]:
        """Stream a completion as text chunks. The default yields the whole
        answer of :meth:`generate_response` as one chunk."""
        yield await self.generate_response(prompt, **kwargs)

    async def count_tokens(self, prompt: Prompt) -> Optional[int]:
        """The prompt's size in this model's own tokens, from its tokenizer,
        or ``None`` when it has none (the default). Failover calls it before
        sending: a prompt that cannot fit the model's known context window
        (with ``max_tokens``) is not sent. A tokenizer that may miss the
        provider's own overhead (chat template, per-message tokens) must
        count low rather than high: a count above the real one refuses a
        prompt that would have fit."""
        return None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts, for models with the ``embeddings`` capability."""
        raise UnsupportedOperationError(f"{self.name} does not offer embeddings", model=self.name)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the model holds (connections, weights)."""

    # ----- identity and caching ----------------------------------------------

    def cache_identity(self) -> str:
        """What identifies this model's answers in a cache key: name, provider
        and every setting that can change an answer (see
        :mod:`orchestrator.core.cache_identity`; credentials never appear)."""
        return cache_identity_of(self)

    def enable_caching(self, cache: ModelCache) -> None:
        """Serve identical requests from ``cache`` (see :mod:`orchestrator.core.cache`)."""
        if not isinstance(cache, ModelCache):
            raise TypeError(f"invalid cache: expected ModelCache, got {type(cache).__name__}")
        self._cache = cache

    def disable_caching(self) -> None:
        self._cache = None

    @property
    def cache(self) -> Optional[ModelCache]:
        return self._cache

    # ----- measurement --------------------------------------------------------

    @staticmethod
    def record_usage(
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        cost: Optional[float] = None,
    ) -> None:
        """Record the provider's token counts (and cost, if it billed one) for
        the call running in this task."""
        record = _ACTIVE_CALL.get()
        if record is None:
            return
        if input_tokens is not None:
            record.input_tokens = int(input_tokens)
        if output_tokens is not None:
            record.output_tokens = int(output_tokens)
        if cost is not None:
            record.cost = float(cost)

    @staticmethod
    def record_retry_after(seconds: float) -> None:
        """Record a provider's ``Retry-After`` for the running call."""
        record = _ACTIVE_CALL.get()
        if record is not None and seconds > 0:
            record.retry_after = max(record.retry_after, float(seconds))

    @staticmethod
    def record_rate_limits(reported: ReportedLimits) -> None:
        """Record what the provider's rate-limit headers reported for the
        running call (the latest response's replace earlier ones)."""
        record = _ACTIVE_CALL.get()
        if record is not None:
            record.reported_limits = reported

    def declarations_changed(self) -> None:
        """Tell every registry this model is in that its capabilities, cost
        or speed changed (adapters call it after discovering them)."""
        for binding in list(self._bindings):
            binding.sink.update_model(self)

    @property
    def metrics(self) -> ModelMetrics:
        """What the first registry this model is registered in observed."""
        if not self._bindings:
            return ModelMetrics()
        b = self._bindings[0]
        return ModelMetrics.from_snapshot(b.core.snapshot(b.slot))

    async def _measure(
        self, call: Callable[[], Awaitable[T]], prompt: Prompt, tickets: Tickets
    ) -> tuple[T, CallRecord]:
        """Run one provider call as this task's active call; a call that
        raises is reported (as its error) before the error goes on."""
        record = CallRecord(self)
        token = _ACTIVE_CALL.set(record)
        try:
            value = await call()
        except BaseException as exc:
            self._finish(record, tickets, prompt, None, exc)
            raise
        finally:
            _ACTIVE_CALL.reset(token)
        return value, record

    async def _run_measured(
        self, fn: GenerateFn, prompt: Prompt, params: dict[str, Any], tickets: Tickets
    ) -> CallResult:
        text, record = await self._measure(lambda: fn(self, prompt, **params), prompt, tickets)
        if not isinstance(text, str):
            exc = MalformedResponseError(
                f"generate_response returned {type(text).__name__}, expected str", model=self.name
            )
            self._finish(record, tickets, prompt, None, exc)
            raise exc
        result = self._finish(record, tickets, prompt, text, None)
        _LAST_CALL.set(result)
        return result

    async def _run_embedding(
        self,
        fn: EmbedFn,
        texts: Sequence[str],
        params: dict[str, Any],
        tickets: Tickets,
    ) -> list[list[float]]:
        """One measured embedding call of ``texts``: reported with the texts'
        tokens as input and no output."""
        as_prompt = [{"content": text} for text in texts]  # tokens are counted per text
        vectors, record = await self._measure(lambda: fn(self, texts, **params), as_prompt, tickets)
        self._finish(record, tickets, as_prompt, "", None)
        return vectors

    def _finish(
        self,
        record: CallRecord,
        tickets: Tickets,
        prompt: Prompt,
        text: Optional[str],
        exc: Optional[BaseException],
    ) -> CallResult:
        """Report a finished call to every registry the model is still in;
        returns its result."""
        latency = time.perf_counter() - record.started
        if exc is not None and not isinstance(exc, Exception):
            # Cancelled or interrupted: not the model's fault, not an outcome,
            # but the request may have reached the provider.
            release_tickets(tickets, sent=True)
            return CallResult("", self.name, 0, 0, 0.0, latency)
        input_tokens = (
            record.input_tokens if record.input_tokens is not None else estimate_tokens(prompt)
        )
        output_tokens = (
            record.output_tokens
            if record.output_tokens is not None
            else (estimate_tokens(text) if text is not None else 0)
        )
        cost = record.cost
        if cost is None:
            cost = self.cost.price(input_tokens, output_tokens) if self.cost is not None else 0.0
        ttft = record.first_token_at - record.started if record.first_token_at is not None else None
        retry_after = record.retry_after or float(getattr(exc, "retry_after", None) or 0.0)
        reported = record.reported_limits
        outcome = _core.Outcome(
            exc is None,
            latency,
            error_class="none" if exc is None else error_class_of(exc),
            time_to_first_token=ttft,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            quality=record.quality,
            retry_after=retry_after,
            remaining_requests=reported.remaining_requests,
            requests_reset=reported.requests_reset,
            remaining_tokens=reported.remaining_tokens,
            tokens_reset=reported.tokens_reset,
        )
        current = self._bindings
        for binding, ticket in tickets:
            if binding in current:  # unregistered mid-call: that registry's ticket is gone
                binding.sink.record(self, binding.slot, ticket, outcome, exc)
        return CallResult(text or "", self.name, input_tokens, output_tokens, cost, latency)
