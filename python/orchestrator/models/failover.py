"""Failover calls: select a model, call it, and on a retryable failure try the
next-best eligible model, within a retry budget and a total deadline.

Each model is tried at most once per request (the failed ones are excluded
from the next selection), so a dead endpoint is never retried in a loop, and
every outcome reaches the breakers like any other call. The exception is a
rate-limited model that said when to come back (``Retry-After``): the core
keeps it ineligible until then, so it stays a candidate. When every eligible
model is rate limited (its ``rpm``/``tpm`` window is full, its provider's
headers say its allowance is spent, or its ``Retry-After`` runs), a request
with a ``deadline`` waits for the soonest slot if it comes before the
deadline, then selects again; otherwise (or with no deadline) it fails at
once with the error it would have raised. After a deployment of a model
fails, the model's other deployments (the same answers through another
provider, region or key) are tried first, within the request's alias; only
when none is eligible does the request move to other models. Used
through ``ModelRegistry.generate`` and ``ModelRegistry.stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from orchestrator.core.model import Model, ModelConstraints, Prompt, check_prompt, last_call
from orchestrator.core.tokens import estimate_tokens
from orchestrator.errors import (
    FailoverError,
    FailoverExhaustedError,
    FailoverTimeoutError,
    NoEligibleModelsError,
    RateLimitError,
    error_class_of,
    is_retryable,
)

if TYPE_CHECKING:
    from orchestrator.models.model_registry import ModelRegistry

logger = logging.getLogger(__name__)

__all__ = [
    "SELECTION_KEYS",
    "Attempt",
    "FailoverError",
    "FailoverExhaustedError",
    "FailoverStream",
    "FailoverTimeoutError",
    "GenerationResult",
    "generate",
    "stream",
]

#: Keyword arguments the contextual router reads beside the prompt.
ROUTING_KEYS = frozenset({"embedding", "willingness_to_pay"})

#: Keyword arguments that constrain selection; every other one is a generation parameter.
SELECTION_KEYS = frozenset(ModelConstraints.model_fields) | {"constraints"} | ROUTING_KEYS


class Attempt(NamedTuple):
    """One try: the model's name, ``"ok"`` or the error class, and seconds taken."""

    model: str
    outcome: str
    latency: float


@dataclass(frozen=True)
class GenerationResult:
    """The answer of :meth:`ModelRegistry.generate`: which model answered and
    everything that was tried. Token counts and ``cost`` are the answering
    call's, as the provider reported them (an answer served from a cache cost
    nothing; its tokens are estimated from the text); ``latency`` is the whole
    request's, failed attempts included."""

    text: str
    model: str
    attempts: list[Attempt]
    input_tokens: int
    output_tokens: int
    cost: float
    latency: float
    request_id: Optional[int] = None
    """Under the contextual strategy, the answering decision's id for
    :meth:`ModelRegistry.report_quality`; ``None`` otherwise."""


@dataclass
class _Plan:
    """One failover request's settings and progress."""

    registry: ModelRegistry
    prompt: Prompt
    constraints: ModelConstraints
    routing: dict[str, Any]
    params: dict[str, Any]
    retry_budget: int
    deadline: Optional[float]
    attempt_timeout: Optional[float]
    started: float = field(default_factory=time.monotonic)
    attempts: list[Attempt] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    last_error: Optional[BaseException] = None
    #: The logical model whose deployment failed last: its other
    #: deployments (the same answers) are tried before other models.
    failed_model: Optional[str] = None

    def remaining(self) -> Optional[float]:
        """Seconds left for the next attempt (``None``: unlimited)."""
        limits = []
        if self.deadline is not None:
            left = self.deadline - (time.monotonic() - self.started)
            if left <= 0:
                raise self.timed_out()
            limits.append(left)
        if self.attempt_timeout is not None:
            limits.append(self.attempt_timeout)
        return min(limits) if limits else None

    def timed_out(self) -> FailoverTimeoutError:
        tried = ", ".join(f"{a.model} ({a.outcome})" for a in self.attempts) or "nothing"
        error = FailoverTimeoutError(
            f"deadline of {self.deadline:g}s passed; tried {tried}", self.attempts, self.last_error
        )
        error.__cause__ = self.last_error
        return error

    async def select(self) -> tuple[Model, Optional[int]]:
        """The next-best eligible model not tried yet (for this prompt, under
        the contextual strategy) and its decision's request id, waiting for
        the soonest slot when every eligible one is rate limited (see the module)."""
        while True:
            if len(self.attempts) > self.retry_budget:
                raise self.exhausted(f"retry budget of {self.retry_budget} spent")
            exclude = [*self.constraints.exclude_models, *self.excluded]
            sibling = self.select_sibling(exclude)
            if sibling is not None:
                return sibling
            constraints = self.constraints.model_copy(update={"exclude_models": exclude})
            try:
                return self.registry.select_for_call(constraints, self.prompt, **self.routing)
            except NoEligibleModelsError as exc:
                wait = self.wait_for(exc)
                if wait is None:
                    if not self.attempts:
                        raise
                    raise self.exhausted("no eligible model left to try") from exc
            logger.info("every eligible model is rate limited; waiting %.2fs for a slot", wait)
            await asyncio.sleep(wait)

    def select_sibling(self, exclude: list[str]) -> Optional[tuple[Model, Optional[int]]]:
        """Another eligible deployment of the logical model that failed last
        (within the request's alias, if it gave one), or ``None``."""
        if self.failed_model is None:
            return None
        deployments = [m.name for m in self.registry.deployments(self.failed_model)]
        if len(deployments) < 2:
            return None
        alias = self.constraints.alias
        outside: list[str] = []
        if alias is not None:
            try:
                members = set(self.registry.alias_members(alias))
            except ValueError:  # the alias was removed meanwhile: selection says so
                return None
            outside = [d for d in deployments if d not in members]
        constraints = self.constraints.model_copy(
            update={"alias": self.failed_model, "exclude_models": [*exclude, *outside]}
        )
        try:
            return self.registry.select_for_call(constraints, self.prompt, **self.routing)
        except NoEligibleModelsError:
            return None

    def wait_for(self, exc: NoEligibleModelsError) -> Optional[float]:
        """Seconds to wait for the soonest slot, or ``None`` when there is no
        deadline or no slot comes before it (or the core's clock is virtual:
        real waiting would bring no slot nearer)."""
        if exc.retry_in is None or self.deadline is None or self.registry.core.is_virtual_clock():
            return None
        left = self.deadline - (time.monotonic() - self.started)
        return exc.retry_in if exc.retry_in < left else None

    def exhausted(self, why: str) -> FailoverExhaustedError:
        tried = ", ".join(f"{a.model} ({a.outcome})" for a in self.attempts)
        error = FailoverExhaustedError(f"{why}; tried {tried}", self.attempts, self.last_error)
        error.__cause__ = self.last_error
        return error

    def failed(self, model: Model, exc: BaseException, started: float) -> None:
        """Record a failed attempt; raise at once unless another model may succeed."""
        self.attempts.append(
            Attempt(model.name, error_class_of(exc), time.perf_counter() - started)
        )
        self.last_error = exc
        if not is_retryable(exc):
            with contextlib.suppress(AttributeError, TypeError):
                exc.attempts = self.attempts  # type: ignore[attr-defined]
            raise exc
        self.failed_model = model.model_name
        if not (isinstance(exc, RateLimitError) and exc.retry_after):
            self.excluded.append(model.name)  # a rate limit with a known end stays a candidate
        logger.info("%s failed (%s); failing over", model.name, error_class_of(exc))

    def report_timeout(self, model: Model, started: float) -> float:
        """Report a call cut by the deadline as a ``timeout`` outcome to the
        core and the breaker; returns its latency."""
        latency = time.perf_counter() - started
        with contextlib.suppress(LookupError, ValueError):
            self.registry.report_outcome(model.name, False, latency, error_class="timeout")
        return latency

    def hung(self, model: Model, started: float) -> None:
        """A call cut by the deadline or ``attempt_timeout``: the model's
        wrapper reports no outcome for a cancelled call, so report a timeout
        here, or a hanging model would never trip its breaker."""
        latency = self.report_timeout(model, started)
        error = TimeoutError(f"{model.name} did not answer within the time left")
        self.attempts.append(Attempt(model.name, "timeout", latency))
        self.last_error = error
        self.excluded.append(model.name)
        self.failed_model = model.model_name
        logger.info("%s timed out; failing over", model.name)


def _plan(
    registry: ModelRegistry,
    prompt: Prompt,
    retry_budget: int,
    deadline: Optional[float],
    attempt_timeout: Optional[float],
    kwargs: dict[str, Any],
) -> _Plan:
    check_prompt(prompt)  # the caller's error: before any model is selected or charged
    if not isinstance(retry_budget, int) or isinstance(retry_budget, bool) or retry_budget < 0:
        raise ValueError(f"invalid retry_budget: {retry_budget!r} (an integer >= 0)")
    for name, value in (("deadline", deadline), ("attempt_timeout", attempt_timeout)):
        if value is not None and (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not 0 < value < float("inf")
        ):
            raise ValueError(f"invalid {name}: {value!r} (seconds, > 0, or None)")
    selection = {k: kwargs.pop(k) for k in list(kwargs) if k in SELECTION_KEYS}
    routing = {k: selection.pop(k) for k in list(selection) if k in ROUTING_KEYS}
    given = selection.pop("constraints", None)
    if given is not None:
        if not isinstance(given, ModelConstraints):
            raise TypeError(f"invalid constraints: expected ModelConstraints, got {given!r}")
        selection = {**given.model_dump(exclude_defaults=True), **selection}
    return _Plan(
        registry=registry,
        prompt=prompt,
        constraints=ModelConstraints(**selection),
        routing=routing,
        params=kwargs,
        retry_budget=retry_budget,
        deadline=None if deadline is None else float(deadline),
        attempt_timeout=None if attempt_timeout is None else float(attempt_timeout),
    )


class _TimeLimit:
    """A timeout in the calling task (``asyncio.timeout``), so the model call
    sees this task's context (its selection ticket) rather than a copy in a
    new task; ``expired`` tells a deadline apart from a model's own
    ``TimeoutError``. ``None`` means no limit."""

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.expired = False
        self._timeout: Optional[asyncio.Timeout] = None

    async def __aenter__(self) -> _TimeLimit:
        if self.seconds is None:
            return self
        self._timeout = asyncio.timeout(self.seconds)
        await self._timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Optional[bool]:
        if self._timeout is not None:
            try:
                await self._timeout.__aexit__(exc_type, exc, tb)
            finally:
                self.expired = self._timeout.expired()
        return None


async def generate(
    registry: ModelRegistry,
    prompt: Prompt,
    *,
    retry_budget: int = 2,
    deadline: Optional[float] = None,
    attempt_timeout: Optional[float] = None,
    **kwargs: Any,
) -> GenerationResult:
    """See :meth:`ModelRegistry.generate`."""
    plan = _plan(registry, prompt, retry_budget, deadline, attempt_timeout, kwargs)
    while True:
        plan.remaining()  # the deadline may have passed: fail before selecting
        model, request_id = await plan.select()
        limit = plan.remaining()
        started = time.perf_counter()
        time_limit = _TimeLimit(limit)
        try:
            async with time_limit:
                text = await model.generate_response(prompt, **plan.params)
        except TimeoutError as exc:
            if time_limit.expired:
                plan.hung(model, started)
            else:
                plan.failed(model, exc, started)  # the model's own timeout
            continue
        except Exception as exc:
            plan.failed(model, exc, started)
            continue
        latency = time.perf_counter() - started
        plan.attempts.append(Attempt(model.name, "ok", latency))
        call = last_call()
        if call is not None:  # a cached answer has its producer's token counts and cost 0
            input_tokens, output_tokens, cost = call.input_tokens, call.output_tokens, call.cost
        else:  # a user model that did not go through the measured wrapper
            input_tokens, output_tokens, cost = estimate_tokens(prompt), estimate_tokens(text), 0.0
        return GenerationResult(
            text=text,
            model=model.name,
            attempts=plan.attempts,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            latency=time.monotonic() - plan.started,
            request_id=request_id,
        )


class FailoverStream:
    """An async iterator over the chunks of a failover stream.

    Until the first chunk arrives, a retryable failure moves on to the
    next-best model; once a chunk was handed to the caller, an error is
    raised as it is (with ``attempts`` attached), since the caller already
    has part of an answer. ``model`` names the model that is streaming,
    ``attempts`` what was tried, ``request_id`` its contextual decision's id
    (``None`` under other strategies). Close it (``aclose``) when stopping early:
    the stream's selection is then released."""

    def __init__(self, prompt: Prompt, plan: _Plan) -> None:
        self._prompt = prompt
        self._plan = plan
        self._inner: Optional[AsyncIterator[str]] = None
        self._streaming: Optional[Model] = None
        self._started = 0.0
        self._closed = False
        self.model: Optional[str] = None
        self.request_id: Optional[int] = None
        self.attempts = plan.attempts

    def __aiter__(self) -> FailoverStream:
        return self

    @property
    def result(self) -> Any:
        """The measured call (``CallResult``) once the stream completed, if
        the model's stream exposes it."""
        return getattr(self._inner, "result", None)

    @property
    def from_cache(self) -> Optional[bool]:
        """Whether the streaming model's cache serves the answer, once the
        first chunk arrived; ``None`` while unknown or when the model has no cache."""
        found = getattr(self._inner, "from_cache", None)
        return found if isinstance(found, bool) else None

    async def __anext__(self) -> str:
        if self._closed:
            raise StopAsyncIteration
        if self._inner is None:
            return await self._first_chunk()
        time_limit = _TimeLimit(self._left())
        try:
            async with time_limit:
                return await self._inner.__anext__()
        except StopAsyncIteration:
            self._end("ok")
            raise
        except TimeoutError as exc:
            self._end("timeout")
            if time_limit.expired:
                # Cut mid-stream by the deadline: the model's wrapper saw a
                # cancellation (no outcome), so report the stall here, or a
                # model that stalls mid-stream would never trip its breaker.
                assert self._streaming is not None
                self._plan.report_timeout(self._streaming, self._started)
                raise self._plan.timed_out() from None
            self._attach(exc)
            raise
        except Exception as exc:
            self._end(error_class_of(exc))
            self._attach(exc)
            raise

    def _left(self) -> Optional[float]:
        plan = self._plan
        if plan.deadline is None:
            return None
        return max(0.0, plan.deadline - (time.monotonic() - plan.started))

    async def _first_chunk(self) -> str:
        plan = self._plan
        while True:
            plan.remaining()
            model, request_id = await plan.select()
            limit = plan.remaining()
            started = time.perf_counter()
            inner: Optional[AsyncIterator[str]] = None
            time_limit = _TimeLimit(limit)
            try:
                async with time_limit:
                    inner = model.stream_response(self._prompt, **plan.params)
                    chunk = await inner.__anext__()
            except StopAsyncIteration:
                self._inner, self._started, self.model = inner, started, model.name
                self._streaming, self.request_id = model, request_id
                self._end("ok")
                raise
            except TimeoutError as exc:
                await _close(inner)
                if time_limit.expired:
                    plan.hung(model, started)
                else:
                    plan.failed(model, exc, started)
                continue
            except Exception as exc:
                await _close(inner)
                plan.failed(model, exc, started)
                continue
            except BaseException:
                await _close(inner)
                raise
            self._inner, self._started, self.model = inner, started, model.name
            self._streaming, self.request_id = model, request_id
            return chunk

    def _end(self, outcome: str) -> None:
        self._closed = True
        assert self.model is not None
        self.attempts.append(Attempt(self.model, outcome, time.perf_counter() - self._started))

    def _attach(self, exc: BaseException) -> None:
        with contextlib.suppress(AttributeError, TypeError):
            exc.attempts = self.attempts  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Stop early and release the underlying stream."""
        self._closed = True
        await _close(self._inner)


async def _close(stream: Optional[AsyncIterator[str]]) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()


def stream(
    registry: ModelRegistry,
    prompt: Prompt,
    *,
    retry_budget: int = 2,
    deadline: Optional[float] = None,
    attempt_timeout: Optional[float] = None,
    **kwargs: Any,
) -> FailoverStream:
    """See :meth:`ModelRegistry.stream`."""
    plan = _plan(registry, prompt, retry_budget, deadline, attempt_timeout, kwargs)
    return FailoverStream(prompt, plan)
