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
provider, region or key) are tried first, within the request's alias and
what the failure ruled out; only when none is eligible does the request move
to other models. Used
through ``ModelRegistry.generate`` and ``ModelRegistry.stream``.

Which errors move on, and where to (a larger context window, another
provider, a fallback chain), is :mod:`orchestrator.models.fallbacks`. The
request's size is estimated before the first selection (``input_tokens`` from
the prompt, four characters a token, plus ``max_tokens`` when given), so a
model whose known window cannot hold it is not even selected; before sending,
a model with a tokenizer (:meth:`Model.count_tokens`) counts the prompt, and
one it cannot fit is not sent (a local ``context_length`` attempt, then the
fallback to a larger window). Local refusals send nothing and do not count
against the retry budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from orchestrator.core.model import (
    Model,
    ModelConstraints,
    Prompt,
    check_prompt,
    last_call,
    release_selection,
)
from orchestrator.core.tokens import estimate_tokens
from orchestrator.core.waits import waited_by_caller
from orchestrator.errors import (
    ContextLengthExceededError,
    FailoverError,
    FailoverExhaustedError,
    FailoverTimeoutError,
    NoEligibleModelsError,
    error_class_of,
    is_retryable,
)
from orchestrator.models.fallbacks import Narrowing, check_chain, moves_on, stays_candidate

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


#: The largest ``max_tokens`` (or tokenizer count) taken as a request's size:
#: the core's largest context window, which no model's window exceeds.
MAX_REQUEST_TOKENS = 2**32 - 1


class _Try(NamedTuple):
    model: str
    outcome: str
    latency: float


class Attempt(_Try):
    """One try: the model's name, ``"ok"`` or the error class, and seconds
    taken (a 3-tuple, as before), plus ``reason``: why this model was tried
    (``"selected"`` for the first; else the failure it falls back from and
    what the next model had to have, and the fallback chain's step), and
    ``sent``: whether the request was sent (``False``: the prompt was refused
    before sending, the model's tokenizer said it cannot fit)."""

    reason: str
    sent: bool

    def __new__(
        cls, model: str, outcome: str, latency: float, reason: str = "selected", sent: bool = True
    ) -> Attempt:
        attempt = super().__new__(cls, model, outcome, latency)
        attempt.reason = reason
        attempt.sent = sent
        return attempt

    def __getnewargs__(self) -> tuple[str, str, float, str, bool]:
        """Pickling and copying keep ``reason`` and ``sent``."""
        return (self.model, self.outcome, self.latency, self.reason, self.sent)

    def __repr__(self) -> str:
        return (
            f"Attempt(model={self.model!r}, outcome={self.outcome!r}, latency={self.latency:.6f}, "
            f"reason={self.reason!r}, sent={self.sent!r})"
        )


#: Requests one registry keeps waiting for a rate-limit slot at most, by default.
DEFAULT_MAX_WAITING = 1024
#: The largest ``max_waiting`` accepted.
MAX_WAITING = 1_000_000


class SlotWaiters:
    """How many requests of one registry wait for a rate-limit slot, bounded:
    beyond ``limit`` a request fails at once with its ``retry_in`` (a 429 at
    the gateway) instead of holding its connection and task open. Taken only
    when every eligible model is rate limited, never on the selection path."""

    def __init__(self, limit: int) -> None:
        if type(limit) is not int:
            kind = type(limit).__name__
            raise TypeError(f"invalid max_waiting: {limit!r} (an int is required, got {kind})")
        if not 0 <= limit <= MAX_WAITING:
            raise ValueError(
                f"invalid max_waiting: {limit!r} (0 to {MAX_WAITING:,}; 0: never wait)"
            )
        self.limit = limit
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return self._waiting

    @contextlib.contextmanager
    def admitted(self) -> Iterator[bool]:
        """Whether one more request may wait (counted until the block ends)."""
        with self._lock:
            admitted = self._waiting < self.limit
            self._waiting += admitted
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._waiting -= 1


@dataclass
class _ChainWalk:
    """A fallback chain in use: its names, where it came from, and the
    entry the attempts are taken from now."""

    names: tuple[str, ...]
    source: str
    position: int = 0


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
    #: The longest wait for a slot (None: any the deadline leaves room for).
    max_wait: Optional[float]
    narrowing: Narrowing
    #: The request's own chain (``None``: the registry's chain of the model that failed first).
    chain: Optional[tuple[str, ...]]
    #: The output tokens the request asked for (``max_tokens``), 0 when it did not say.
    output_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    attempts: list[Attempt] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    last_error: Optional[BaseException] = None
    walk: Optional[_ChainWalk] = None
    #: Why the failure so far moves on (the start of the next attempt's reason).
    cause: str = ""
    #: The reason of the attempt being made.
    reason: str = "selected"
    #: The logical model whose deployment failed last: its other
    #: deployments (the same answers) are tried before other models.
    failed_model: Optional[str] = None

    def calls(self) -> int:
        """Attempts that sent the request (local refusals are not counted)."""
        return sum(1 for a in self.attempts if a.sent)

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
        the contextual strategy) and its decision's request id: from the
        fallback chain's entries in order once one is in use, within what
        earlier failures ruled out; waiting for the soonest slot when every
        eligible one is rate limited (see the module)."""
        while True:
            if self.calls() > self.retry_budget:
                raise self.exhausted(f"retry budget of {self.retry_budget} spent")
            first: Optional[NoEligibleModelsError] = None
            soonest: Optional[float] = None
            for position, members in self.steps():
                try:
                    chosen = self.choose(self.next_constraints(members))
                except NoEligibleModelsError as exc:
                    first = first or exc
                    if exc.retry_in is not None:
                        soonest = exc.retry_in if soonest is None else min(soonest, exc.retry_in)
                    continue
                self.reason = self.reason_at(position)
                return chosen
            wait = self.wait_for(soonest)
            if wait is None:
                if first is not None and not self.attempts:
                    raise first
                if self.last_error is not None and not is_retryable(self.last_error):
                    # A context-length or content-filter error with nowhere
                    # left to go: the request itself must change (as before).
                    raise self.attached(self.last_error)
                why = "no eligible model left to try"
                if self.walk is not None:
                    why = f"fallback chain {self.walk.source} spent"
                raise self.exhausted(why) from first
            with self.registry.slot_waiters.admitted() as admitted:
                if not admitted and first is not None:
                    logger.info(
                        "%d requests already wait for a slot: not waiting",
                        self.registry.slot_waiters.limit,
                    )
                    raise first
                logger.info("every eligible model is rate limited; waiting %.2fs for a slot", wait)
                await asyncio.sleep(wait)

    def choose(self, constraints: ModelConstraints) -> tuple[Model, Optional[int]]:
        """The next pick under ``constraints``: another deployment of the
        logical model that failed last first (the same answers), else any
        eligible model."""
        sibling = self.sibling_constraints(constraints)
        if sibling is not None:
            with contextlib.suppress(NoEligibleModelsError):
                return self.registry.select_for_call(sibling, self.prompt, **self.routing)
        return self.registry.select_for_call(constraints, self.prompt, **self.routing)

    def sibling_constraints(self, constraints: ModelConstraints) -> Optional[ModelConstraints]:
        """``constraints`` narrowed to the other deployments of the logical
        model that failed last (within the request's alias, if it gave one),
        or ``None`` when it has no other."""
        if self.failed_model is None:
            return None
        deployments = [m.name for m in self.registry.deployments(self.failed_model)]
        if len(deployments) < 2:
            return None
        outside: list[str] = []
        alias = self.constraints.alias
        if alias is not None:
            try:
                members = set(self.registry.alias_members(alias))
            except ValueError:  # the alias was removed meanwhile: selection says so
                return None
            outside = [d for d in deployments if d not in members]
        return constraints.model_copy(
            update={
                "alias": self.failed_model,
                "exclude_models": [*constraints.exclude_models, *outside],
            }
        )

    def steps(self) -> Iterator[tuple[int, Optional[list[str]]]]:
        """Where the next model may come from: anywhere (``None``) without a
        chain, else each chain entry's models from the current entry on
        (an entry naming nothing registered any more is skipped)."""
        walk = self.walk
        if walk is None:
            yield 0, None
            return
        for position in range(walk.position, len(walk.names)):
            members = self.registry.fallback_members(walk.names[position])
            if members:
                yield position, members
            else:
                logger.info("fallback %r names no registered model; skipped", walk.names[position])

    def reason_at(self, position: int) -> str:
        """Why the attempt about to be made is made."""
        walk = self.walk
        if walk is None:
            return self.cause or "selected"
        walk.position = position  # the entry in use: its other models come next
        step = f"fallback chain {walk.source} step {position + 1}/{len(walk.names)}"
        return f"{self.cause}; {step}: {walk.names[position]!r}"

    def next_constraints(self, members: Optional[list[str]]) -> ModelConstraints:
        """The request's constraints less every model tried or ruled out,
        and (within a chain entry) every model outside it."""
        if members is None and not self.excluded and self.narrowing.rules_out_nothing():
            return self.constraints  # nothing tried or ruled out yet: the request's own
        models = self.registry.list_models()
        exclude = [*self.constraints.exclude_models, *self.excluded]
        exclude += self.narrowing.excluded(models)
        update: dict[str, Any] = {}
        if members is not None:  # the chain's entry replaces the request's alias
            allowed = set(members)
            exclude += [m.name for m in models if m.name not in allowed]
            update["alias"] = None
        update["exclude_models"] = list(dict.fromkeys(exclude))
        window = self.narrowing.context_length(self.constraints.context_length)
        if window != self.constraints.context_length:
            update["context_length"] = window
        return self.constraints.model_copy(update=update)

    def calling(self) -> contextlib.AbstractContextManager[None]:
        """The context of a model call: with a deadline, failover waits out a
        ``Retry-After`` itself (or tries another model), so the HTTP layer
        hands it back; without one, nothing here waits, and the HTTP layer
        keeps its own retry after the ``Retry-After``, as a call outside
        failover does."""
        return waited_by_caller() if self.deadline is not None else contextlib.nullcontext()

    def wait_for(self, retry_in: Optional[float]) -> Optional[float]:
        """Seconds to wait for the soonest slot, or ``None`` when there is no
        deadline, or no slot comes before it and within ``max_wait`` (or the
        core's clock is virtual: real waiting would bring no slot nearer)."""
        if retry_in is None or self.deadline is None or self.registry.core.is_virtual_clock():
            return None
        if self.max_wait is not None and retry_in > self.max_wait:
            return None
        left = self.deadline - (time.monotonic() - self.started)
        return retry_in if retry_in < left else None

    def exhausted(self, why: str) -> FailoverExhaustedError:
        tried = ", ".join(f"{a.model} ({a.outcome})" for a in self.attempts)
        error = FailoverExhaustedError(f"{why}; tried {tried}", self.attempts, self.last_error)
        error.__cause__ = self.last_error
        return error

    def failed(
        self, model: Model, exc: BaseException, started: float, *, sent: bool = True
    ) -> None:
        """Record a failed attempt; raise at once unless another model may succeed."""
        latency = time.perf_counter() - started
        self.attempts.append(Attempt(model.name, error_class_of(exc), latency, self.reason, sent))
        self.last_error = exc
        if not moves_on(exc):
            raise self.attached(exc)
        if not stays_candidate(exc):
            self.excluded.append(model.name)
        self.moved_on(model, exc)

    def attached(self, exc: BaseException) -> BaseException:
        """``exc`` with this request's ``attempts``, to be raised as it is."""
        with contextlib.suppress(AttributeError, TypeError):
            exc.attempts = self.attempts  # type: ignore[attr-defined]
        return exc

    def moved_on(self, model: Model, exc: BaseException) -> None:
        """What the next attempt must avoid after ``exc`` on ``model``, and
        the fallback chain that takes over from the first failure."""
        self.cause = self.narrowing.after(model, exc)
        self.failed_model = model.model_name
        if self.walk is None:
            chain, source = self.chain, "fallbacks="
            if chain is None:  # the request's alias's chain, else the failed model's
                for name in (self.constraints.alias, model.name, model.model_name):
                    chain = None if name is None else self.registry.fallbacks_for(name)
                    if chain:
                        source = repr(name)
                        break
            if chain:
                self.walk = _ChainWalk(chain, source)
        logger.info("%s; failing over", self.cause)

    async def refused_before_sending(self, model: Model) -> bool:
        """Whether ``model``'s tokenizer says the prompt cannot fit its known
        window (with ``max_tokens``): then it is not sent, its selection is
        released, and a local ``context_length`` attempt is recorded (the
        caller selects again, for a larger window)."""
        window = model.capabilities.context_length
        started = time.perf_counter()
        try:
            counted = await model.count_tokens(self.prompt) if window else None
        except BaseException:
            release_selection(model)
            raise
        if counted is not None and (
            not isinstance(counted, int) or isinstance(counted, bool) or counted < 0
        ):
            release_selection(model)
            raise TypeError(
                f"{type(model).__name__}.count_tokens returned {counted!r}, "
                "expected an int >= 0 or None"
            )
        if counted is None or counted + self.output_tokens <= window:
            return False
        release_selection(model)
        error = ContextLengthExceededError(
            f"not sent: its tokenizer counts {counted} prompt tokens + {self.output_tokens} "
            f"output tokens > its {window}-token context window",
            model=model.name,
        )
        # A count beyond the core's largest window is that window: none holds it.
        needed = min(counted, MAX_REQUEST_TOKENS)
        self.narrowing.needed_tokens = max(self.narrowing.needed_tokens, needed)
        self.failed(model, error, started, sent=False)
        return True

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
        self.attempts.append(Attempt(model.name, "timeout", latency, self.reason))
        self.last_error = error
        self.excluded.append(model.name)
        self.moved_on(model, error)


def _plan(
    registry: ModelRegistry,
    prompt: Prompt,
    retry_budget: int,
    deadline: Optional[float],
    attempt_timeout: Optional[float],
    max_wait: Optional[float],
    fallbacks: Optional[Sequence[str]],
    kwargs: dict[str, Any],
) -> _Plan:
    check_prompt(prompt)  # the caller's error: before any model is selected or charged
    if not isinstance(retry_budget, int) or isinstance(retry_budget, bool) or retry_budget < 0:
        raise ValueError(f"invalid retry_budget: {retry_budget!r} (an integer >= 0)")
    for name, value, zero_allowed in (
        ("deadline", deadline, False),
        ("attempt_timeout", attempt_timeout, False),
        ("max_wait", max_wait, True),
    ):
        if value is None:
            continue
        in_range = isinstance(value, (int, float)) and not isinstance(value, bool)
        in_range = in_range and (value >= 0 if zero_allowed else value > 0) and value < float("inf")
        if not in_range:
            bound = ">= 0" if zero_allowed else "> 0"
            raise ValueError(f"invalid {name}: {value!r} (seconds, {bound}, or None)")
    chain = None if fallbacks is None else registry.check_fallbacks(check_chain(fallbacks))
    selection = {k: kwargs.pop(k) for k in list(kwargs) if k in SELECTION_KEYS}
    routing = {k: selection.pop(k) for k in list(selection) if k in ROUTING_KEYS}
    given = selection.pop("constraints", None)
    if given is not None and not isinstance(given, ModelConstraints):
        raise TypeError(f"invalid constraints: expected ModelConstraints, got {given!r}")
    output_tokens = _asked_output(kwargs.get("max_tokens"))
    if (
        given is not None
        and not selection
        and given.input_tokens is not None
        and (given.output_tokens is not None or not output_tokens)
    ):
        constraints = given  # validated when made, and sized: nothing to add (the gateway's)
    else:
        if given is not None:
            selection = {**given.model_dump(exclude_defaults=True), **selection}
        if selection.get("input_tokens") is None:  # the request's size, estimated up front
            selection["input_tokens"] = estimate_tokens(prompt)
        if selection.get("output_tokens") is None and output_tokens:
            selection["output_tokens"] = output_tokens
        constraints = ModelConstraints(**selection)
    assert constraints.input_tokens is not None
    return _Plan(
        registry=registry,
        prompt=prompt,
        constraints=constraints,
        routing=routing,
        params=kwargs,
        retry_budget=retry_budget,
        deadline=None if deadline is None else float(deadline),
        attempt_timeout=None if attempt_timeout is None else float(attempt_timeout),
        max_wait=None if max_wait is None else float(max_wait),
        narrowing=Narrowing(constraints.input_tokens + (constraints.output_tokens or 0)),
        chain=chain,
        output_tokens=output_tokens,
    )


def _asked_output(max_tokens: object) -> int:
    """The output tokens a ``max_tokens`` generation parameter asks for (0
    when absent or not a count: the provider judges its value). A count
    above :data:`MAX_REQUEST_TOKENS` is taken as that maximum, which no
    window holds, so it is refused like any other too large for the windows."""
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        return min(max_tokens, MAX_REQUEST_TOKENS)
    return 0


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
    max_wait: Optional[float] = None,
    fallbacks: Optional[Sequence[str]] = None,
    **kwargs: Any,
) -> GenerationResult:
    """See :meth:`ModelRegistry.generate`."""
    plan = _plan(
        registry, prompt, retry_budget, deadline, attempt_timeout, max_wait, fallbacks, kwargs
    )
    while True:
        plan.remaining()  # the deadline may have passed: fail before selecting
        model, request_id = await plan.select()
        if await plan.refused_before_sending(model):
            continue
        limit = plan.remaining()
        started = time.perf_counter()
        time_limit = _TimeLimit(limit)
        try:
            async with time_limit:
                with plan.calling():
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
        plan.attempts.append(Attempt(model.name, "ok", latency, plan.reason))
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
        self._reason = "selected"
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
            self._plan.attached(exc)
            raise
        except Exception as exc:
            self._end(error_class_of(exc))
            self._plan.attached(exc)
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
            if await plan.refused_before_sending(model):
                continue
            limit = plan.remaining()
            started = time.perf_counter()
            inner: Optional[AsyncIterator[str]] = None
            time_limit = _TimeLimit(limit)
            try:
                async with time_limit:
                    inner = model.stream_response(self._prompt, **plan.params)
                    with plan.calling():
                        chunk = await inner.__anext__()
            except StopAsyncIteration:
                self._streaming_on(model, inner, started, request_id)
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
            self._streaming_on(model, inner, started, request_id)
            return chunk

    def _streaming_on(
        self,
        model: Model,
        inner: Optional[AsyncIterator[str]],
        started: float,
        request_id: Optional[int],
    ) -> None:
        """The stream's first chunk (or its end) came: it is ``model``'s."""
        self._inner, self._started, self.model = inner, started, model.name
        self._streaming, self.request_id = model, request_id
        self._reason = self._plan.reason

    def _end(self, outcome: str) -> None:
        self._closed = True
        assert self.model is not None
        latency = time.perf_counter() - self._started
        self.attempts.append(Attempt(self.model, outcome, latency, self._reason))

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
    max_wait: Optional[float] = None,
    fallbacks: Optional[Sequence[str]] = None,
    **kwargs: Any,
) -> FailoverStream:
    """See :meth:`ModelRegistry.stream`."""
    plan = _plan(
        registry, prompt, retry_budget, deadline, attempt_timeout, max_wait, fallbacks, kwargs
    )
    return FailoverStream(prompt, plan)
