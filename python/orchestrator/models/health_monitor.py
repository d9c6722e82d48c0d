"""Model health: passive health from every reported outcome, a circuit
breaker per model (kept in the Rust core, next to the selection state),
active checks in one background task, and observable state transitions.

Passive health costs nothing: every measured call already reports its outcome,
so consecutive failures, the recent error rate and latency against the
model's own normal come for free. Active checks (``Model.health_check``, each
adapter's cheapest probe) run only for models that need them: open, half-open
or idle ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel, ConfigDict

from orchestrator import _core
from orchestrator.core.model import Model

if TYPE_CHECKING:
    from orchestrator.models.model_registry import ModelRegistry

logger = logging.getLogger(__name__)

TransitionCallback = Callable[[Model, str], None]

#: A recent p50 must also exceed the normal by this many seconds to be flagged,
#: so 1 ms -> 4 ms is not reported as a problem.
MIN_LATENCY_EXCESS_S = 0.05
#: How long ``stop`` waits for cancelled health checks to finish.
_STOP_GRACE_S = 1.0


class HealthStatus(BaseModel):
    """A model's health as its registry sees it.

    ``healthy`` is true while the breaker is closed; ``issues`` lists, in
    words, everything worth a look (also for a healthy model, for example
    slow answers). Times are seconds; ``last_check`` is a Unix timestamp.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    healthy: bool
    state: str
    issues: list[str]
    consecutive_failures: int
    consecutive_successes: int
    error_rate: float
    trips: int = 0
    latency_p50: Optional[float] = None
    recent_latency_p50: Optional[float] = None
    baseline_latency_p50: Optional[float] = None
    last_check: Optional[float] = None
    last_check_healthy: Optional[bool] = None
    retry_in: float = 0.0
    next_probe_in: Optional[float] = None
    idle: bool = False


@dataclass
class _Track:
    """What the monitor itself keeps of one model (the core keeps the rest)."""

    first_seen: float
    retry_until: float = 0.0
    last_check: Optional[float] = None
    last_check_healthy: Optional[bool] = None
    last_check_error: Optional[str] = None


class ModelHealthMonitor:
    """Circuit breaking and health checks for the models of one registry.

    A model's breaker opens after ``failure_threshold`` consecutive failures
    (or an error rate of at least ``error_rate_threshold`` over about
    ``error_rate_window`` recent outcomes, or one authentication error, or a
    failure carrying ``Retry-After``), waits a cool-down that doubles with
    each trip (from ``base_cooldown`` up to ``max_cooldown`` seconds, never
    shorter than the provider's ``Retry-After``), then lets one probe request
    through (half-open) and closes after ``recovery_threshold`` consecutive
    successes.

    After :meth:`start`, one background task checks every ``check_interval``
    seconds the models that are open (once any ``Retry-After`` has passed),
    half-open, or idle (no outcome for ``idle_after`` seconds, default
    ``check_interval``), each with ``check_timeout``. A passing check moves an
    open breaker to half-open; a failing, hanging or raising one opens it (or
    extends its cool-down). Only real requests close a breaker.

    ``latency_factor``: a p50 latency over the last 20 successes above this
    multiple of the p50 over the 200 before them is reported in ``issues``
    (the core keeps both, from every outcome).
    """

    def __init__(
        self,
        check_interval: float = 300,
        failure_threshold: int = 3,
        recovery_threshold: int = 2,
        *,
        base_cooldown: float = 30.0,
        max_cooldown: float = 600.0,
        error_rate_threshold: float = 0.5,
        error_rate_window: int = 20,
        check_timeout: float = 10.0,
        idle_after: Optional[float] = None,
        latency_factor: float = 3.0,
    ) -> None:
        for name, value in (
            ("failure_threshold", failure_threshold),
            ("recovery_threshold", recovery_threshold),
            ("error_rate_window", error_rate_window),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"invalid {name}: {value!r} (an integer > 0)")
        for name, number in (
            ("check_interval", check_interval),
            ("base_cooldown", base_cooldown),
            ("max_cooldown", max_cooldown),
            ("check_timeout", check_timeout),
            ("idle_after", check_interval if idle_after is None else idle_after),
        ):
            if (
                not isinstance(number, (int, float))
                or isinstance(number, bool)
                or not 0 < number < float("inf")
            ):
                raise ValueError(f"invalid {name}: {number!r} (seconds, > 0)")
        if max_cooldown < base_cooldown:
            raise ValueError(
                f"invalid max_cooldown: {max_cooldown!r} "
                f"(must be >= base_cooldown {base_cooldown!r})"
            )
        if not isinstance(error_rate_threshold, (int, float)) or not 0 < error_rate_threshold <= 1:
            raise ValueError(f"invalid error_rate_threshold: {error_rate_threshold!r} (0 < x <= 1)")
        if not isinstance(latency_factor, (int, float)) or not 1 < latency_factor < float("inf"):
            raise ValueError(f"invalid latency_factor: {latency_factor!r} (> 1)")
        self.check_interval = float(check_interval)
        self.failure_threshold = failure_threshold
        self.recovery_threshold = recovery_threshold
        self.base_cooldown = float(base_cooldown)
        self.max_cooldown = float(max_cooldown)
        self.error_rate_threshold = float(error_rate_threshold)
        self.error_rate_window = error_rate_window
        self.check_timeout = float(check_timeout)
        self.idle_after = float(check_interval if idle_after is None else idle_after)
        self.latency_factor = float(latency_factor)
        self._registry: Optional[ModelRegistry] = None
        self._callbacks: list[TransitionCallback] = []
        self._last_error: dict[str, str] = {}
        self._tracks: dict[str, _Track] = {}
        self._lock = threading.Lock()
        self._task: Optional[asyncio.Task[None]] = None
        self._next_tick: Optional[float] = None  # time.monotonic() of the next round
        self._strays: set[asyncio.Task[Any]] = set()
        self._attached_at = 0.0  # core clock; models never seen count as seen then

    # ----- wiring ---------------------------------------------------------------

    def attach(self, registry: ModelRegistry) -> None:
        """Bind to ``registry`` and configure its breakers. A monitor serves one registry."""
        if self._registry is not None and self._registry is not registry:
            raise ValueError("this ModelHealthMonitor is already attached to another registry")
        self._registry = registry
        self._attached_at = registry.core.now()
        registry.core.configure_breaker(
            self.failure_threshold,
            self.recovery_threshold,
            self.base_cooldown,
            self.max_cooldown,
            self.error_rate_threshold,
            self.error_rate_window,
        )

    def _attached(self) -> ModelRegistry:
        if self._registry is None:
            raise RuntimeError("this ModelHealthMonitor is not attached to a registry")
        return self._registry

    def on_transition(self, callback: TransitionCallback) -> None:
        """Call ``callback(model, state)`` on every breaker transition
        (``"opened"``, ``"half_open"``, ``"closed"``), once per transition."""
        if not callable(callback):
            raise TypeError(f"invalid callback: {callback!r} is not callable")
        self._callbacks.append(callback)

    # ----- called by the registry ----------------------------------------------

    def transition(self, model: Model, state: str) -> None:
        """Called by the registry once per breaker transition: one log line,
        then every callback (a failing callback is logged, never raised)."""
        if state == "opened":
            why = self._last_error.get(model.name, "failures")
            logger.warning("circuit opened for %s: %s", model.name, why)
        else:
            logger.info("circuit %s for %s", state, model.name)
        for callback in self._callbacks:
            try:
                callback(model, state)
            except Exception:
                logger.exception("health transition callback failed for %s", model.name)

    def record_failure(
        self, model: Model, error: Optional[BaseException], retry_after: float = 0.0
    ) -> None:
        """Called by the registry for each failed outcome (successes cost the
        monitor nothing): remember the error for ``issues`` and the provider's
        ``Retry-After``, inside which no health check is sent."""
        if error is not None:
            self._last_error[model.name] = f"{type(error).__name__}: {error}"
        if retry_after > 0:
            registry = self._registry
            now = registry.core.now() if registry is not None else time.monotonic()
            track = self._track(model.name)
            with self._lock:
                track.retry_until = max(track.retry_until, now + retry_after)

    def selected_open(self, model: Model, all_open: bool) -> None:
        """Called when selection moves a breaker to half-open to probe it."""
        if all_open:
            logger.warning(
                "every eligible model's circuit is open; probing %s, the soonest to recover",
                model.name,
            )
        self.transition(model, "half_open")

    def _track(self, name: str) -> _Track:
        track = self._tracks.get(name)
        if track is None:
            with self._lock:
                track = self._tracks.setdefault(name, _Track(first_seen=self._attached_at))
        return track

    # ----- reading --------------------------------------------------------------

    async def get_status(self, model: Model) -> HealthStatus:
        """The health of ``model`` in the attached registry (no provider call)."""
        return self.status(model)

    def status(self, model: Model) -> HealthStatus:
        """Synchronous :meth:`get_status`."""
        registry = self._attached()
        core = registry.core
        slot = registry._binding(model).slot
        breaker = core.breaker(slot)
        metrics = registry.get_metrics(model.name)
        now = core.now()
        track = self._track(model.name)
        state: str = breaker["state"]
        recent_p50, baseline_p50 = metrics.recent_latency_p50, metrics.baseline_latency_p50
        idle = self._is_idle(track, metrics.idle_for, now)
        issues: list[str] = []
        if state == "open":
            issues.append(
                f"circuit open after {breaker['consecutive_failures']} consecutive failures "
                f"(trip {breaker['trips']}); requests resume in {breaker['retry_in']:.1f}s"
            )
        elif state == "half_open":
            issues.append(
                f"circuit half-open: probing, {breaker['consecutive_successes']} of "
                f"{self.recovery_threshold} successes needed to close"
            )
        if breaker["error_rate"] >= self.error_rate_threshold / 2 and metrics.requests:
            issues.append(f"recent error rate {breaker['error_rate']:.0%}")
        if track.retry_until > now:
            issues.append(f"provider asked to wait {track.retry_until - now:.1f}s (Retry-After)")
        last = self._last_error.get(model.name)
        if last and state != "closed":
            issues.append(f"last error: {last}")
        if track.last_check_healthy is False:
            issues.append(f"last health check failed: {track.last_check_error}")
        if self._latency_degraded(recent_p50, baseline_p50):
            assert recent_p50 is not None and baseline_p50 is not None
            issues.append(
                f"slow: latency p50 {recent_p50:.2f}s over the last "
                f"{min(_core.RECENT_LATENCIES, metrics.successes)} calls "
                f"is {recent_p50 / baseline_p50:.1f}x its usual {baseline_p50:.2f}s"
            )
        return HealthStatus(
            model=model.name,
            healthy=state == "closed",
            state=state,
            issues=issues,
            consecutive_failures=breaker["consecutive_failures"],
            consecutive_successes=breaker["consecutive_successes"],
            error_rate=breaker["error_rate"],
            trips=breaker["trips"],
            latency_p50=metrics.latency_p50,
            recent_latency_p50=recent_p50,
            baseline_latency_p50=baseline_p50,
            last_check=track.last_check,
            last_check_healthy=track.last_check_healthy,
            retry_in=breaker["retry_in"],
            next_probe_in=self._next_probe_in(state, breaker["retry_in"], track, idle, now),
            idle=idle,
        )

    def _latency_degraded(self, recent: Optional[float], baseline: Optional[float]) -> bool:
        if recent is None or baseline is None:
            return False
        return recent > self.latency_factor * baseline and recent - baseline > MIN_LATENCY_EXCESS_S

    def _is_idle(self, track: _Track, idle_for: Optional[float], now: float) -> bool:
        """No outcome for ``idle_after`` seconds (counting from attachment
        for a model that never had one)."""
        if idle_for is None:
            idle_for = now - track.first_seen
        return idle_for >= self.idle_after

    def _next_probe_in(
        self, state: str, retry_in: float, track: _Track, idle: bool, now: float
    ) -> Optional[float]:
        if state == "half_open":
            return 0.0
        tick = None
        if self.running and self._next_tick is not None:
            tick = max(0.0, self._next_tick - time.monotonic())
        if state == "open":
            if tick is None:
                return retry_in
            return min(retry_in, max(tick, track.retry_until - now))
        return tick if idle else None

    # ----- active checks --------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background task is running (in a loop not yet closed)."""
        task = self._task
        return task is not None and not task.done() and not task.get_loop().is_closed()

    def due_models(self) -> list[Model]:
        """The models the next round would check: open (with no
        ``Retry-After`` pending), half-open, or idle."""
        registry = self._attached()
        now = registry.core.now()
        due = []
        for model in registry:
            try:
                slot = registry._binding(model).slot
            except LookupError:
                continue  # unregistered meanwhile
            state = registry.core.breaker(slot)["state"]
            track = self._track(model.name)
            probing = state == "half_open" or (state == "open" and now >= track.retry_until)
            idle_for = registry.core.snapshot(slot)["idle_for"]
            if probing or (state == "closed" and self._is_idle(track, idle_for, now)):
                due.append(model)
        return due

    async def run_checks(self, models: Optional[Iterable[Model]] = None) -> dict[str, bool]:
        """Run one round of health checks now (``models``, default
        :meth:`due_models`) concurrently, each within ``check_timeout``;
        record each verdict in the breaker. Returns ``{name: healthy}``. A
        check that hangs or raises counts as unhealthy and never raises here."""
        registry = self._attached()
        targets = list(self.due_models() if models is None else models)
        if not targets:
            return {}
        tasks = {
            asyncio.ensure_future(self._probe(model)): model
            for model in targets  # one short-lived task per check, for the timeout
        }
        try:
            _, pending = await asyncio.wait(tasks, timeout=self.check_timeout)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
                self._strays.add(task)
                task.add_done_callback(self._strays.discard)
            raise
        results: dict[str, bool] = {}
        for task, model in tasks.items():
            if task in pending:
                task.cancel()
                self._strays.add(task)
                task.add_done_callback(self._strays.discard)
                healthy, why = False, f"timed out after {self.check_timeout:g}s"
            elif task.cancelled():
                healthy, why = False, "cancelled"
            elif (exc := task.exception()) is not None:
                healthy, why = False, f"raised {type(exc).__name__}: {exc}"
            else:
                healthy = task.result() is True
                why = "" if healthy else f"returned {task.result()!r}"
            results[model.name] = healthy
            self._record_check(registry, model, healthy, why)
        return results

    @staticmethod
    async def _probe(model: Model) -> object:
        return await model.health_check()

    def _record_check(self, registry: ModelRegistry, model: Model, healthy: bool, why: str) -> None:
        try:
            slot = registry._binding(model).slot
        except LookupError:
            return
        track = self._track(model.name)
        track.last_check = time.time()
        track.last_check_healthy = healthy
        track.last_check_error = None if healthy else why
        if not healthy:
            self._last_error[model.name] = f"health check failed: {why}"
            logger.info("health check of %s failed: %s", model.name, why)
        transition = registry.core.record_health_check(slot, healthy)
        if transition is not None:
            self.transition(model, transition.state)

    async def _run(self) -> None:
        while True:
            self._next_tick = time.monotonic() + self.check_interval
            await asyncio.sleep(self.check_interval)
            try:
                await self.run_checks()
            except Exception:
                logger.exception("health check round failed")

    # ----- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start the background checks in the running event loop (idempotent)."""
        self._attached()
        loop = asyncio.get_running_loop()
        if self.running:
            assert self._task is not None
            if self._task.get_loop() is not loop:
                raise RuntimeError("this ModelHealthMonitor is running in another event loop")
            return
        self._next_tick = time.monotonic() + self.check_interval
        self._task = loop.create_task(self._run(), name="orchestrator-health-monitor")
        logger.debug("health monitor started (every %gs)", self.check_interval)

    async def stop(self) -> None:
        """Stop the background checks and cancel any check still running;
        returns when they are finished (a check that ignores cancellation is
        abandoned after a second, with a warning)."""
        task, self._task = self._task, None
        self._next_tick = None
        waiting: set[asyncio.Task[Any]] = set()
        loop = asyncio.get_running_loop()
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is loop:
                waiting.add(task)
        for stray in list(self._strays):
            stray.cancel()
            if stray.get_loop() is loop:
                waiting.add(stray)
        if waiting:
            _, still = await asyncio.wait(waiting, timeout=_STOP_GRACE_S)
            if still:
                logger.warning("%d health check(s) ignored cancellation", len(still))
        if task is not None:
            logger.debug("health monitor stopped")
