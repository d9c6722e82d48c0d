"""The selection algorithm of the Rust core (``rust/orchestrator-core/src/table.rs``)
written in plain Python, as the speed baseline.

It takes the same inputs as ``ModelRegistry.select`` / ``report_outcome`` and
makes the same decisions: filter every model by capability mask, context
window, expected cost, speed, exclusion, rate-limit window and circuit breaker; score the
eligible ones (UCB1 with forced ``min_trials`` and pending in-flight
counts, discounted statistics, or the cost / performance strategies; the
core's Thompson strategy draws from its own generator and is left out); issue a ticket
and count it pending; fold a reported outcome into the statistics, the
observed speed and latencies, and the breaker. ``tests/test_baseline_agreement.py``
checks it picks the same models as the core over seeded runs.

It is written as idiomatic, reasonably careful Python (struct-of-arrays
lists, one pass, locals hoisted out of the loop), not as a strawman.
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

CAPABILITY_NAMES: tuple[str, ...] = (
    "text_generation",
    "code_generation",
    "chat",
    "embeddings",
    "vision",
    "function_calling",
    "json_mode",
    "supports_streaming",
    "audio",
    "reasoning",
)
CAPABILITY_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(CAPABILITY_NAMES)}
ERROR_CLASSES: tuple[str, ...] = (
    "none",
    "authentication",
    "rate_limit",
    "context_length",
    "content_filter",
    "server_error",
    "timeout",
    "malformed_response",
    "stream_cut",
    "connection",
    "other",
)
ERROR_CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(ERROR_CLASSES)}
ERROR_AUTHENTICATION = 1

try:  # the request size assumed when token counts are not given: the core's
    from orchestrator._core import DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS
except ImportError:  # pragma: no cover
    DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS = 100, 100
PRIOR_MEAN = 0.5
RESCALE_AT = 1e100
SWEEP_EVERY = 4096
RING = 256
EWMA_ALPHA = 0.2
F64_MAX = sys.float_info.max

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
NO_TRANSITION, OPENED, HALF_OPENED, CLOSED_AGAIN = 0, 1, 2, 3


def normal_quantile(p: float) -> float:
    """Inverse standard normal CDF (Acklam), as in ``strategy.rs``."""
    a = (
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    )
    b = (
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    )
    c = (
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    )
    d = (7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    if p <= 1.0 - low:
        q = p - 0.5
        r = q * q
        return (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
        )
    return -normal_quantile(1.0 - p)


@dataclass
class BreakerConfig:
    failure_threshold: int = 3
    recovery_threshold: int = 2
    base_cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    error_rate_threshold: float = 0.5
    error_rate_window: int = 20

    def cooldown(self, trips: int) -> float:
        factor = 2.0 ** min(max(trips - 1, 0), 30)
        return min(self.base_cooldown_s * factor, self.max_cooldown_s)


class Breaker:
    """One model's circuit breaker (``breaker.rs``)."""

    __slots__ = (
        "consecutive_failures",
        "consecutive_successes",
        "error_rate",
        "open_until",
        "outcomes_seen",
        "state",
        "trips",
    )

    def __init__(self) -> None:
        self.state = CLOSED
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.trips = 0
        self.open_until = 0.0
        self.error_rate = 0.0
        self.outcomes_seen = 0

    def admit(self, now: float) -> int:
        if self.state == OPEN and now >= self.open_until:
            self.state = HALF_OPEN
            self.consecutive_successes = 0
            return HALF_OPENED
        return NO_TRANSITION

    def _open(self, cfg: BreakerConfig, now: float, at_least_s: float) -> int:
        self.trips += 1
        cooldown = max(cfg.cooldown(self.trips), at_least_s)
        was_open = self.state == OPEN
        self.state = OPEN
        self.open_until = max(self.open_until, now + cooldown)
        self.consecutive_successes = 0
        return NO_TRANSITION if was_open else OPENED

    def record(
        self,
        cfg: BreakerConfig,
        now: float,
        success: bool,
        authentication: bool,
        retry_after_s: float,
    ) -> int:
        self.outcomes_seen += 1
        alpha = 1.0 / cfg.error_rate_window
        failed = 0.0 if success else 1.0
        self.error_rate += alpha * (failed - self.error_rate)
        if success:
            self.consecutive_failures = 0
            self.consecutive_successes += 1
            if self.state == HALF_OPEN and self.consecutive_successes >= cfg.recovery_threshold:
                self.state = CLOSED
                self.trips = 0
                self.error_rate = 0.0
                self.outcomes_seen = 0
                return CLOSED_AGAIN
            if self.state == OPEN and now >= self.open_until:
                self.state = HALF_OPEN
                return HALF_OPENED
            return NO_TRANSITION
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        rate_tripped = (
            self.outcomes_seen >= cfg.error_rate_window
            and self.error_rate >= cfg.error_rate_threshold
        )
        should_open = (
            authentication
            or self.state == HALF_OPEN
            or self.consecutive_failures >= cfg.failure_threshold
            or rate_tripped
            or retry_after_s > 0.0
        )
        if not should_open:
            return NO_TRANSITION
        at_least = max(cfg.max_cooldown_s, retry_after_s) if authentication else retry_after_s
        if self.state == OPEN:
            self.open_until = max(self.open_until, now + at_least)
            return NO_TRANSITION
        return self._open(cfg, now, at_least)


class Observed:
    """What was observed of one model (``stats.rs``): counts, tokens, cost,
    reward sums, moving averages and a ring of recent latencies."""

    __slots__ = (
        "failures_by_class",
        "input_tokens",
        "latencies",
        "latency_ewma_s",
        "latency_next",
        "output_tokens",
        "requests",
        "reward_sq_sum",
        "reward_sum",
        "successes",
        "tokens_per_second",
        "total_cost_usd",
        "ttft_next",
        "ttfts",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.successes = 0
        self.failures_by_class = [0] * len(ERROR_CLASSES)
        self.input_tokens = 0
        self.output_tokens = 0
        self.total_cost_usd = 0.0
        self.reward_sum = 0.0
        self.reward_sq_sum = 0.0
        self.tokens_per_second: Optional[float] = None
        self.latency_ewma_s: Optional[float] = None
        self.latencies: list[float] = []
        self.latency_next = 0
        self.ttfts: list[float] = []
        self.ttft_next = 0

    def record(
        self,
        success: bool,
        error_class: int,
        latency_s: float,
        ttft_s: Optional[float],
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        reward: float,
    ) -> None:
        self.requests += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.total_cost_usd += cost_usd
        self.reward_sum += reward
        self.reward_sq_sum += reward * reward
        if success:
            self.successes += 1
            if len(self.latencies) < RING:
                self.latencies.append(latency_s)
            else:
                self.latencies[self.latency_next] = latency_s
            self.latency_next = (self.latency_next + 1) % RING
            prev = self.latency_ewma_s
            self.latency_ewma_s = (
                latency_s if prev is None else prev + EWMA_ALPHA * (latency_s - prev)
            )
            if ttft_s is not None:
                if len(self.ttfts) < RING:
                    self.ttfts.append(ttft_s)
                else:
                    self.ttfts[self.ttft_next] = ttft_s
                self.ttft_next = (self.ttft_next + 1) % RING
            generation_s = latency_s - (ttft_s or 0.0)
            if output_tokens > 0 and generation_s > 0.0:
                speed = output_tokens / generation_s
                prev = self.tokens_per_second
                self.tokens_per_second = (
                    speed if prev is None else prev + EWMA_ALPHA * (speed - prev)
                )
        else:
            self.failures_by_class[min(error_class, len(ERROR_CLASSES) - 1)] += 1


@dataclass(frozen=True)
class BaselineModel:
    """What is declared about a model (``ModelSpec``)."""

    name: str
    provider: str
    capabilities: Sequence[str] = ("text_generation",)
    context_length: int = 0
    input_per_million: float = 0.0
    output_per_million: float = 0.0
    per_request: float = 0.0
    priced: bool = True
    speed: Optional[float] = None
    rpm: Optional[int] = None
    tpm: Optional[int] = None
    tags: frozenset[str] = frozenset()

    def price(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_million / 1e6
            + output_tokens * self.output_per_million / 1e6
            + self.per_request
        )


#: The window of ``rpm``/``tpm`` (``limits.rs``), in seconds.
WINDOW_S = 60.0


class RateWindow:
    """The core's per-model rate-limit window (``limits.rs``) in plain
    Python: a sliding log of ``(time, tokens)`` with running totals."""

    __slots__ = ("log", "requests", "rpm", "tokens", "tpm")

    def __init__(self, rpm: Optional[int], tpm: Optional[int]) -> None:
        self.rpm, self.tpm = rpm, tpm
        self.log: deque[tuple[float, int]] = deque()
        self.requests = 0
        self.tokens = 0

    def admits(self, needed: int, now: float) -> bool:
        log = self.log
        while log and log[0][0] + WINDOW_S <= now:
            self.tokens -= log.popleft()[1]
            self.requests -= 1
        return (self.rpm is None or self.requests < self.rpm) and (
            self.tpm is None or self.tokens + needed <= self.tpm
        )

    def reserve(self, tokens: int, now: float) -> None:
        self.log.append((now, tokens))
        self.requests += 1
        self.tokens += tokens


class Budget:
    """The core's spend budget (``budgets.rs``) in plain Python: integer
    nano-USD spent and reserved against a limit. Its calendar period is not
    rolled here (a benchmark run never crosses one)."""

    __slots__ = ("limit", "reserved", "spent")

    def __init__(self, limit_usd: float) -> None:
        self.limit = round(limit_usd * 1e9)
        self.spent = 0
        self.reserved = 0

    def admits(self, needed: int) -> bool:
        used = self.spent + self.reserved
        return used < self.limit and used + needed <= self.limit


@dataclass(frozen=True)
class BaselineSelection:
    model: BaselineModel
    ticket: int
    slot: int


class BaselineRegistry:
    """Plain-Python counterpart of ``ModelRegistry`` + the Rust ``Table``.

    ``strategy`` is ``"ucb"``, ``"discounted_ucb"``, ``"performance"`` or
    ``"cost"``, with the registry's defaults for each.
    """

    def __init__(
        self,
        strategy: str = "ucb",
        *,
        exploration_factor: float = 2.0,
        min_trials: Optional[int] = None,
        confidence_level: float = 0.95,
        discount: Optional[float] = None,
        breaker: Optional[BreakerConfig] = None,
        pending_timeout: float = 600.0,
    ) -> None:
        defaults = {
            "ucb": ("ucb", 5, 1.0),
            "discounted_ucb": ("ucb", 5, 0.999),
            "performance": ("performance", 5, 1.0),
            "cost": ("cost", 0, 1.0),
        }
        kind, trials, disc = defaults[strategy]
        self.kind = kind
        self.exploration_factor = exploration_factor
        self.min_trials = trials if min_trials is None else min_trials
        self.discount = disc if discount is None else discount
        self.z = normal_quantile(0.5 + confidence_level / 2.0)
        self.breaker_config = breaker or BreakerConfig()
        self.pending_timeout = pending_timeout
        # reward weights (RewardWeights defaults)
        self.w_success, self.w_latency, self.w_cost, self.w_quality = 1.0, 0.5, 0.25, 1.0
        self.latency_ref_s, self.cost_ref_usd = 2.0, 0.01
        # per-slot arrays
        self.models: list[BaselineModel] = []
        self.caps: list[int] = []
        self.context: list[int] = []
        self.in_price: list[float] = []  # USD per token
        self.out_price: list[float] = []
        self.fee: list[float] = []
        self.priced: list[bool] = []
        self.declared_speed: list[Optional[float]] = []
        self.pending: list[int] = []
        self.trials: list[int] = []
        self.disc_n: list[float] = []
        self.disc_sum: list[float] = []
        self.disc_sq: list[float] = []
        self.recent_reward: list[list[float]] = []  # [level, outcomes seen]
        self.breakers: list[Breaker] = []
        self.observed: list[Observed] = []
        self.windows: list[Optional[RateWindow]] = []
        self.budget_lists: list[list[Budget]] = []
        self.tenant_budgets: dict[str, list[Budget]] = {}
        self.by_name: dict[str, int] = {}
        #: Routing aliases: the slots of their members.
        self.aliases: dict[str, frozenset[int]] = {}
        self.tickets: dict[int, tuple[int, float]] = {}
        self.next_ticket = 1
        self.weight = 1.0
        self.total_disc_n = 0.0
        self.total_pending = 0
        self.selections = 0
        self._origin = time.monotonic()
        # session id -> (slot, last used), least recently used first
        self.sessions: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()
        self.session_ttl = 3600.0
        self.max_sessions = 100_000

    def now(self) -> float:
        return time.monotonic() - self._origin

    def __len__(self) -> int:
        return len(self.models)

    def register_model(self, model: BaselineModel) -> int:
        if model.name in self.by_name:
            raise ValueError(f"a model named {model.name!r} is already registered")
        mask = 0
        for name in model.capabilities:
            mask |= CAPABILITY_BITS[name]
        slot = len(self.models)
        self.models.append(model)
        self.caps.append(mask)
        self.context.append(model.context_length)
        self.in_price.append(model.input_per_million / 1e6)
        self.out_price.append(model.output_per_million / 1e6)
        self.fee.append(model.per_request)
        self.priced.append(model.priced)
        self.declared_speed.append(model.speed)
        self.pending.append(0)
        self.trials.append(0)
        self.disc_n.append(0.0)
        self.disc_sum.append(0.0)
        self.disc_sq.append(0.0)
        self.recent_reward.append([0.0, 0.0])
        self.breakers.append(Breaker())
        self.observed.append(Observed())
        limited = model.rpm is not None or model.tpm is not None
        self.windows.append(RateWindow(model.rpm, model.tpm) if limited else None)
        self.budget_lists.append([])
        self.by_name[model.name] = slot
        return slot

    def add_budget(self, scope: str, value: str, limit_usd: float) -> None:
        """A budget on a ``"model"``, ``"provider"`` or ``"tenant"``: each
        slot keeps the list of budgets covering it, as the core does."""
        budget = Budget(limit_usd)
        if scope == "tenant":
            self.tenant_budgets.setdefault(value, []).append(budget)
            return
        for slot, model in enumerate(self.models):
            if (model.name if scope == "model" else model.provider) == value:
                self.budget_lists[slot].append(budget)

    # ----- selection -----------------------------------------------------------

    def _session_slot(self, session_id: str) -> Optional[int]:
        """The slot a live session is bound to."""
        entry = self.sessions.get(session_id)
        if entry is None or self.now() - entry[1] > self.session_ttl:
            return None
        return entry[0]

    def _bind_session(self, session_id: str, slot: int) -> None:
        """Bind (or touch) a session; the least recently used goes beyond the bound."""
        self.sessions[session_id] = (slot, self.now())
        self.sessions.move_to_end(session_id)
        if len(self.sessions) > self.max_sessions:
            self.sessions.popitem(last=False)

    def select(
        self,
        capabilities: Optional[Sequence[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude_models: Optional[Sequence[str]] = None,
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        alias: Optional[str] = None,
        session_id: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> BaselineSelection:
        """Pick a model and mark it pending under a new ticket; raises
        ``LookupError`` when no model is eligible. ``tags``/``alias`` become
        excluded slots (a model lacking a tag, or outside the alias). A
        ``session_id`` keeps its bound model while that passes the same checks
        (else it is bound to the pick), as the core's sessions do."""
        required = 0
        if capabilities:
            bits = CAPABILITY_BITS
            for name in capabilities:
                if name not in bits:
                    raise ValueError(f"unknown capability {name!r}")
                required |= bits[name]
        excluded: set[int] = set()
        if exclude_models:
            for name in exclude_models:
                if name not in self.by_name:
                    raise ValueError(f"invalid exclude_models: no model named {name!r}")
                excluded.add(self.by_name[name])
        if alias is not None:
            members = self.aliases[alias]
            excluded.update(i for i in range(len(self.models)) if i not in members)
        if tags:
            wanted = frozenset(tags)
            excluded.update(i for i, m in enumerate(self.models) if not wanted <= m.tags)
        if max_cost is not None and not max_cost >= 0:
            raise ValueError(f"invalid max_cost: {max_cost!r}")
        if context_length is not None and context_length < 1:
            raise ValueError(f"invalid context_length: {context_length!r}")
        tin = DEFAULT_INPUT_TOKENS if input_tokens is None else input_tokens
        tout = DEFAULT_OUTPUT_TOKENS if output_tokens is None else output_tokens

        self.selections += 1
        if self.selections % SWEEP_EVERY == 0:
            self._expire_tickets(self.now())
        theirs = self.tenant_budgets.get(tenant, []) if tenant is not None else []
        request = (required, max_cost, min_speed, context_length, excluded, tin, tout)
        picked = None
        if session_id is not None:
            bound = self._session_slot(session_id)
            if bound is not None:
                kept = self._pick(*request, slots=range(bound, bound + 1), theirs=theirs)
                picked = kept if kept is not None and not kept[1] else None
        if picked is None:
            picked = self._pick(*request, theirs=theirs)
        if picked is None:
            raise LookupError("no registered model satisfies the request")
        slot, fallback = picked
        if session_id is not None:
            self._bind_session(session_id, slot)
        now = self.now()
        breaker = self.breakers[slot]
        if fallback:
            breaker.state = HALF_OPEN
            breaker.consecutive_successes = 0
        else:
            breaker.admit(now)
        window = self.windows[slot]
        if window is not None:
            window.reserve(tin + tout, now)
        covering = self.budget_lists[slot]
        if covering or theirs:
            reserved = round(
                (tin * self.in_price[slot] + tout * self.out_price[slot] + self.fee[slot]) * 1e9
            )
            for budget in (*covering, *theirs):
                budget.reserved += reserved
        ticket = self.next_ticket
        self.next_ticket += 1
        self.tickets[ticket] = (slot, now)
        self.pending[slot] += 1
        self.total_pending += 1
        return BaselineSelection(self.models[slot], ticket, slot)

    def _pick(
        self,
        required: int,
        max_cost: Optional[float],
        min_speed: Optional[float],
        context_length: Optional[int],
        excluded: set[int],
        tin: int,
        tout: int,
        slots: Optional[range] = None,
        theirs: Sequence[Budget] = (),
    ) -> Optional[tuple[int, bool]]:
        now = self.now()
        inv = 1.0 / self.weight
        ln_total = math.log(max(self.total_disc_n / self.weight + self.total_pending, 1.0))
        ln_n = max(ln_total, 0.0)
        kind = self.kind
        is_cost = kind == "cost"
        is_ucb = kind == "ucb"
        min_trials = self.min_trials
        ef = self.exploration_factor
        caps, context, priced = self.caps, self.context, self.priced
        in_price, out_price, fee = self.in_price, self.out_price, self.fee
        pending, trials = self.pending, self.trials
        disc_n, disc_sum = self.disc_n, self.disc_sum
        breakers, observed, declared = self.breakers, self.observed, self.declared_speed
        windows, needed = self.windows, tin + tout
        budget_lists = self.budget_lists

        forced_slot = -1
        forced_tried = 0
        best_slot = -1
        best_score = 0.0
        best_secondary = 0.0
        open_slot = -1
        open_until = 0.0
        for i in range(len(caps)) if slots is None else slots:
            # ----- constraints
            if required & ~caps[i]:
                continue
            if context_length is not None and (context[i] == 0 or context[i] < context_length):
                continue
            cost: Optional[float] = None
            if priced[i]:
                cost = tin * in_price[i] + tout * out_price[i] + fee[i]
            if max_cost is not None and (cost is None or cost > max_cost):
                continue
            if min_speed is not None:
                speed = observed[i].tokens_per_second
                if speed is None:
                    speed = declared[i]
                if speed is None or speed < min_speed:
                    continue
            if i in excluded:
                continue
            window = windows[i]
            if window is not None and not window.admits(needed, now):
                continue
            covering = budget_lists[i]
            if covering or theirs:
                spend = 0 if cost is None else round(cost * 1e9)
                if not all(b.admits(spend) for b in (*covering, *theirs)):
                    continue
            b = breakers[i]
            state = b.state
            if state == OPEN and now < b.open_until:
                if open_slot < 0 or b.open_until < open_until:
                    open_slot, open_until = i, b.open_until
                continue
            p = pending[i]
            if p > 0 and (state == HALF_OPEN or (state == OPEN and now >= b.open_until)):
                continue  # a half-open probe is in flight
            # ----- score (Table::rank)
            n = disc_n[i] * inv
            n_eff = n + p
            tried = trials[i] + p
            if not is_cost and (tried < min_trials or n_eff <= 0.0):
                if forced_slot < 0 or tried < forced_tried:
                    forced_slot, forced_tried = i, tried
                continue
            if forced_slot >= 0:
                continue
            mean = disc_sum[i] * inv / n if n > 0.0 else PRIOR_MEAN
            if is_ucb:
                score = mean + math.sqrt(ef * ln_n / n_eff)
                secondary = -cost if cost is not None else -F64_MAX / 4.0
            elif is_cost:
                score = -cost if cost is not None else -F64_MAX / 4.0
                secondary = mean
            else:
                score = mean
                secondary = -cost if cost is not None else -F64_MAX / 4.0
            if (
                best_slot < 0
                or score > best_score
                or (score == best_score and secondary > best_secondary)
            ):
                best_slot, best_score, best_secondary = i, score, secondary
        if forced_slot >= 0:
            return forced_slot, False
        if best_slot >= 0:
            return best_slot, False
        if open_slot >= 0:
            return open_slot, True
        return None

    # ----- outcomes -----------------------------------------------------------

    def report_outcome(
        self,
        selection: BaselineSelection,
        success: bool,
        latency: float,
        *,
        error_class: str = "none",
        time_to_first_token: Optional[float] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Optional[float] = None,
        quality: Optional[float] = None,
        retry_after: float = 0.0,
    ) -> int:
        """Fold one outcome in; returns the breaker transition code."""
        if error_class not in ERROR_CLASS_INDEX:
            raise ValueError(f"invalid error_class: {error_class!r}")
        if not success and error_class == "none":
            error_class = "other"
        model = selection.model
        if cost is None:
            cost = model.price(input_tokens, output_tokens) if model.priced else 0.0
        if not latency >= 0 or latency == math.inf:
            raise ValueError(f"invalid latency: {latency!r}")
        if quality is not None and not 0.0 <= quality <= 1.0:
            raise ValueError(f"invalid quality: {quality!r}")
        slot = selection.slot
        ticket = selection.ticket
        if ticket:
            held = self.tickets.get(ticket)
            if held is None or held[0] != slot:
                # expired while the call ran: still count the outcome
                pass
            else:
                del self.tickets[ticket]
                self.pending[slot] -= 1
                self.total_pending -= 1
        return self._apply(
            slot,
            bool(success),
            ERROR_CLASS_INDEX[error_class],
            latency,
            time_to_first_token,
            input_tokens,
            output_tokens,
            cost,
            quality,
            retry_after,
        )

    def _reward(
        self, success: bool, latency_s: float, cost_usd: float, quality: Optional[float]
    ) -> float:
        if not success:
            return 0.0
        total = self.w_success
        weight = self.w_success
        total += self.w_latency * self.latency_ref_s / (self.latency_ref_s + latency_s)
        weight += self.w_latency
        total += self.w_cost * self.cost_ref_usd / (self.cost_ref_usd + cost_usd)
        weight += self.w_cost
        if quality is not None:
            total += self.w_quality * quality
            weight += self.w_quality
        return min(max(total / weight, 0.0), 1.0)

    def _apply(
        self,
        i: int,
        success: bool,
        error_class: int,
        latency: float,
        ttft: Optional[float],
        input_tokens: int,
        output_tokens: int,
        cost: float,
        quality: Optional[float],
        retry_after: float,
    ) -> int:
        now = self.now()
        reward = self._reward(success, latency, cost, quality)
        if self.discount < 1.0:
            self.weight /= self.discount
        w = self.weight
        self.disc_n[i] += w
        self.disc_sum[i] += reward * w
        self.disc_sq[i] += reward * reward * w
        self.total_disc_n += w
        if success or self.breakers[i].consecutive_failures == 0:
            self._detect_change(i, reward)
        if self.weight > RESCALE_AT:
            self._rescale()
        self.trials[i] += 1
        if not success and error_class == 0:
            error_class = len(ERROR_CLASSES) - 1
        self.observed[i].record(
            success, error_class, latency, ttft, input_tokens, output_tokens, cost, reward
        )
        return self.breakers[i].record(
            self.breaker_config, now, success, error_class == ERROR_AUTHENTICATION, retry_after
        )

    def _detect_change(self, i: int, reward: float) -> None:
        """The core's change detection: a fast average far from the long-run
        mean cuts the model's history to 20 outcomes at the recent level."""
        alpha, sigmas, keep_n = 0.03, 6.0, 20.0
        track = self.recent_reward[i]
        track[0] = reward if track[1] == 0 else track[0] + alpha * (reward - track[0])
        track[1] += 1
        n = self.disc_n[i] / self.weight
        if track[1] < 2.0 / alpha or n <= 2.0 * keep_n:
            return
        mean = self.disc_sum[i] / self.disc_n[i]
        var = max(self.disc_sq[i] / self.disc_n[i] - mean * mean, 1e-4)
        level = track[0]
        if abs(level - mean) <= sigmas * math.sqrt(var * alpha / (2.0 - alpha)):
            return
        keep = keep_n * self.weight
        self.total_disc_n += keep - self.disc_n[i]
        self.disc_n[i] = keep
        self.disc_sum[i] = level * keep
        self.disc_sq[i] = (var + level * level) * keep
        track[1] = 0

    def _rescale(self) -> None:
        inv = 1.0 / self.weight
        for i in range(len(self.models)):
            self.disc_n[i] *= inv
            self.disc_sum[i] *= inv
            self.disc_sq[i] *= inv
        self.total_disc_n = sum(self.disc_n)
        self.weight = 1.0

    def _expire_tickets(self, now: float) -> None:
        timeout = self.pending_timeout
        for ticket, (slot, issued_at) in list(self.tickets.items()):
            if now - issued_at > timeout:
                del self.tickets[ticket]
                if self.pending[slot] > 0:
                    self.pending[slot] -= 1
                    self.total_pending -= 1
