"""Type stub of ``orchestrator._core``, the Rust selection core (PyO3).

Every method converts its arguments by type before the core's lock is taken
(a ``bool`` is not a number, a string is not a list, a float is not an
integer, an overflow is a ``ValueError`` naming the field); no Python code
runs while the lock is held.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Optional, final

__all__ = [
    "BASELINE_LATENCIES",
    "BUDGET_PERIODS",
    "BUDGET_SCOPES",
    "CAPABILITY_NAMES",
    "DEFAULT_INPUT_TOKENS",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_SESSION_TTL_S",
    "DEFAULT_WILLINGNESS_TO_PAY",
    "ERROR_CLASSES",
    "FEATURIZER_VERSION",
    "KEY_FORMAT_VERSION",
    "MAX_ALIAS_MEMBERS",
    "MAX_BUDGETS",
    "MAX_BUDGET_LIMIT_USD",
    "MAX_BUDGET_RETRY_IN_S",
    "MAX_COST_USD",
    "MAX_LABEL_BYTES",
    "MAX_LATENCY_S",
    "MAX_LEASE_GRANTS",
    "MAX_OUTSTANDING_TICKETS",
    "MAX_REQUEST_STRING_BYTES",
    "MAX_ROUTED_PROMPT_BYTES",
    "MAX_RPM",
    "MAX_SELECT_MANY",
    "MAX_SESSIONS",
    "MAX_SESSION_TTL_S",
    "MAX_TAGS",
    "MAX_TOKENS",
    "MAX_TPM",
    "MIN_DISCOUNT",
    "MIN_WILLINGNESS_TO_PAY",
    "NANOS_PER_USD",
    "RATE_LIMIT_WINDOW_S",
    "RECENT_LATENCIES",
    "STATS_COLUMNS",
    "STRATEGY_NAMES",
    "STRUCTURE_FEATURES",
    "ContextualRouter",
    "Explanation",
    "HeldTickets",
    "NoEligible",
    "Outcome",
    "Request",
    "SelectionCore",
    "Transition",
    "__version__",
    "cache_key",
    "check_deployment",
    "check_rate_limits",
    "check_routed_input",
    "check_tags",
]

__version__: str
CAPABILITY_NAMES: list[str]
ERROR_CLASSES: list[str]
#: ``(name, strategy, discount)`` of every name a registry accepts: one per
#: strategy, and the ``discounted_*`` presets with their default discount.
STRATEGY_NAMES: list[tuple[str, str, float]]
STATS_COLUMNS: list[str]
KEY_FORMAT_VERSION: int
DEFAULT_INPUT_TOKENS: int
DEFAULT_OUTPUT_TOKENS: int
MAX_SELECT_MANY: int
MAX_ROUTED_PROMPT_BYTES: int
MAX_OUTSTANDING_TICKETS: int
MAX_LATENCY_S: float
MAX_COST_USD: float
MAX_TOKENS: int
RATE_LIMIT_WINDOW_S: float
MAX_LEASE_GRANTS: int
MAX_RPM: int
MAX_TPM: int
#: The most distinct tags the models of one registry carry at once.
MAX_TAGS: int
#: The most models one routing alias may name.
MAX_ALIAS_MEMBERS: int
#: The longest tag, alias or deployment id, in UTF-8 bytes.
MAX_LABEL_BYTES: int
NANOS_PER_USD: int
MAX_BUDGETS: int
MAX_BUDGET_LIMIT_USD: float
MAX_BUDGET_RETRY_IN_S: float
BUDGET_PERIODS: list[str]
BUDGET_SCOPES: list[str]
MIN_DISCOUNT: float
DEFAULT_SESSION_TTL_S: float
MAX_SESSION_TTL_S: float
DEFAULT_MAX_SESSIONS: int
MAX_SESSIONS: int
MAX_REQUEST_STRING_BYTES: int
RECENT_LATENCIES: int
BASELINE_LATENCIES: int

def check_routed_input(
    prompt: Optional[object] = None,
    embedding: Optional[object] = None,
    willingness_to_pay: Optional[object] = None,
) -> None: ...
def cache_key(
    model: str,
    provider: str,
    prompt: object,
    params: Optional[object] = None,
    namespace: str = "",
) -> str:
    """Stable 128-bit cache key (32 hex digits) of a request."""

def check_rate_limits(
    rpm: Optional[object] = None, tpm: Optional[object] = None
) -> tuple[Optional[int], Optional[int]]:
    """``(rpm, tpm)`` checked by type and range: ints >= 1 or ``None``."""

def check_deployment(deployment: Optional[object] = None) -> Optional[str]:
    """A deployment id checked (``None``, or a ``str`` of 1 to
    ``MAX_LABEL_BYTES`` bytes without control characters or ``'@'``)."""

def check_tags(tags: Optional[object] = None) -> list[str]:
    """Tag names checked (a list of ``str``, each ``[a-z0-9][a-z0-9_.:-]{0,63}``,
    at most ``MAX_TAGS`` distinct), without repeats."""

class NoEligible(Exception):
    """No model satisfies a request: ``args == (Explanation, Request)``."""

@final
class Request:
    """One request's constraints, converted and validated."""

    def __new__(
        cls,
        capabilities: Optional[object] = None,
        max_cost: Optional[object] = None,
        min_speed: Optional[object] = None,
        context_length: Optional[object] = None,
        exclude_models: Optional[object] = None,
        *,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        tags: Optional[object] = None,
        session_id: Optional[object] = None,
        alias: Optional[object] = None,
        tenant: Optional[object] = None,
    ) -> Request: ...
    @property
    def tenant(self) -> Optional[str]: ...
    @property
    def capabilities(self) -> list[str]: ...
    @property
    def max_cost(self) -> Optional[float]: ...
    @property
    def min_speed(self) -> Optional[float]: ...
    @property
    def context_length(self) -> Optional[int]: ...
    @property
    def exclude_models(self) -> list[str]: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def alias(self) -> Optional[str]: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def given_input_tokens(self) -> Optional[int]: ...
    @property
    def given_output_tokens(self) -> Optional[int]: ...
    @property
    def session_id(self) -> Optional[str]: ...

@final
class Outcome:
    """One call's outcome, converted and validated."""

    def __new__(
        cls,
        success: object,
        latency: object,
        *,
        error_class: Optional[object] = None,
        time_to_first_token: Optional[object] = None,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        cost: Optional[object] = None,
        quality: Optional[object] = None,
        retry_after: Optional[object] = None,
        remaining_requests: Optional[object] = None,
        requests_reset: Optional[object] = None,
        remaining_tokens: Optional[object] = None,
        tokens_reset: Optional[object] = None,
    ) -> Outcome: ...
    @property
    def success(self) -> bool: ...
    @property
    def error_class(self) -> str: ...
    @property
    def latency(self) -> float: ...
    @property
    def retry_after(self) -> float: ...

@final
class Explanation:
    """Every model's verdict for a request, from one snapshot."""

    @property
    def chosen(self) -> Optional[Any]: ...
    @property
    def all_breakers_open(self) -> bool: ...
    @property
    def session(self) -> Optional[str]: ...
    @property
    def kept_model(self) -> Optional[Any]: ...
    @property
    def retry_in(self) -> Optional[float]: ...
    def rows(self) -> list[dict[str, Any]]: ...
    def __len__(self) -> int: ...

@final
class Transition:
    """How one call moved a model's circuit breaker (``None``: unchanged)."""

    OPENED: Transition
    HALF_OPENED: Transition
    CLOSED: Transition
    @property
    def state(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class HeldTickets:
    """The tickets a context holds (the value of the core's context variable)."""

    def __len__(self) -> int: ...

@final
class SelectionCore:
    """Selection state of one registry: models as slots in parallel arrays."""

    def __new__(
        cls,
        strategy: Optional[object] = None,
        exploration_factor: Optional[object] = None,
        min_trials: Optional[object] = None,
        confidence_level: Optional[object] = None,
        discount: Optional[object] = None,
    ) -> SelectionCore: ...
    def configure_strategy(
        self,
        strategy: Optional[object] = None,
        exploration_factor: Optional[object] = None,
        min_trials: Optional[object] = None,
        confidence_level: Optional[object] = None,
        discount: Optional[object] = None,
    ) -> None: ...
    def configure_reward(
        self,
        success: Optional[object] = None,
        latency: Optional[object] = None,
        cost: Optional[object] = None,
        quality: Optional[object] = None,
        latency_ref_s: Optional[object] = None,
        cost_ref_usd: Optional[object] = None,
    ) -> None: ...
    def configure_breaker(
        self,
        failure_threshold: Optional[object] = None,
        recovery_threshold: Optional[object] = None,
        base_cooldown_s: Optional[object] = None,
        max_cooldown_s: Optional[object] = None,
        error_rate_threshold: Optional[object] = None,
        error_rate_window: Optional[object] = None,
    ) -> None: ...
    def seed(self, seed: object) -> None: ...
    def set_pending_timeout(self, seconds: object) -> None: ...
    def configure_sessions(self, ttl: object, max_sessions: object) -> None: ...
    def session_counts(self) -> tuple[int, int, int]: ...
    def set_session_secret(self, secret: object) -> None: ...
    def start_sharing_sessions(self) -> None: ...
    def bind_session(self, model: Any, slot: int, request: Request) -> None: ...
    def take_session_changes(self) -> list[tuple[str, str, str]]: ...
    def apply_shared_sessions(self, bindings: Sequence[tuple[str, str, int]]) -> None: ...
    def set_listener(self, listener: Optional[Any]) -> None: ...
    def register(
        self,
        model: Any,
        name: object,
        provider: object,
        capabilities: object,
        context_length: Optional[object] = None,
        input_price_per_million: Optional[object] = None,
        output_price_per_million: Optional[object] = None,
        request_fee: Optional[object] = None,
        priced: Optional[object] = None,
        declared_speed: Optional[object] = None,
        rpm: Optional[object] = None,
        tpm: Optional[object] = None,
        tags: Optional[object] = None,
        deployment: Optional[object] = None,
    ) -> int: ...
    def update(
        self,
        slot: int,
        name: object,
        provider: object,
        capabilities: object,
        context_length: object,
        input_price_per_million: object,
        output_price_per_million: object,
        request_fee: object,
        priced: object,
        declared_speed: Optional[object] = None,
        rpm: Optional[object] = None,
        tpm: Optional[object] = None,
        tags: Optional[object] = None,
        deployment: Optional[object] = None,
    ) -> None: ...
    def unregister(self, name: str) -> int: ...
    def model(self, slot: int) -> Any: ...
    def slot_of(self, name: str) -> Optional[int]: ...
    def add_alias(self, name: object, members: object) -> None: ...
    def remove_alias(self, name: object) -> list[str]: ...
    def aliases(self) -> list[tuple[str, list[str]]]: ...
    def group_members(self, name: object) -> Optional[list[str]]: ...
    def __len__(self) -> int: ...
    def select_model(
        self,
        capabilities: Optional[object] = None,
        max_cost: Optional[object] = None,
        min_speed: Optional[object] = None,
        context_length: Optional[object] = None,
        exclude_models: Optional[object] = None,
        *,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        constraints: Optional[Any] = None,
        prompt: Optional[object] = None,
        embedding: Optional[object] = None,
        willingness_to_pay: Optional[object] = None,
        tags: Optional[object] = None,
        session_id: Optional[object] = None,
        alias: Optional[object] = None,
        tenant: Optional[object] = None,
    ) -> Any: ...
    def select_held(
        self,
        request: Request,
        *,
        prompt: Optional[object] = None,
        embedding: Optional[object] = None,
        willingness_to_pay: Optional[object] = None,
    ) -> tuple[Any, Optional[int]]: ...
    def select(
        self,
        capabilities: Optional[object] = None,
        max_cost: Optional[object] = None,
        min_speed: Optional[object] = None,
        context_length: Optional[object] = None,
        exclude_models: Optional[object] = None,
        *,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        constraints: Optional[Any] = None,
        prompt: Optional[object] = None,
        embedding: Optional[object] = None,
        willingness_to_pay: Optional[object] = None,
        tags: Optional[object] = None,
        session_id: Optional[object] = None,
        alias: Optional[object] = None,
        tenant: Optional[object] = None,
    ) -> tuple[Any, int, int, Optional[int]]: ...
    def select_many(
        self,
        n: object,
        request: Request,
        *,
        prompt: Optional[object] = None,
        embedding: Optional[object] = None,
        willingness_to_pay: Optional[object] = None,
    ) -> list[tuple[Any, int, int, Optional[int]]]: ...
    def explain(
        self,
        request: Request,
        *,
        prompt: Optional[object] = None,
        embedding: Optional[object] = None,
        willingness_to_pay: Optional[object] = None,
    ) -> Explanation: ...
    def scores(
        self,
        request: Request,
        *,
        prompt: Optional[object] = None,
        embedding: Optional[object] = None,
        willingness_to_pay: Optional[object] = None,
    ) -> tuple[list[str], bytes]: ...
    def report(
        self,
        model: Any,
        slot: int,
        ticket: int,
        success: object,
        latency: object,
        *,
        error_class: Optional[object] = None,
        time_to_first_token: Optional[object] = None,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        cost: Optional[object] = None,
        quality: Optional[object] = None,
        retry_after: Optional[object] = None,
        request_id: int = 0,
    ) -> Optional[Transition]: ...
    def report_quality(self, request_id: object, quality: object) -> str: ...
    def enable_routing(self, willingness_to_pay: object, **options: object) -> None: ...
    @property
    def contextual(self) -> bool: ...
    @property
    def willingness_to_pay(self) -> float: ...
    def calibrate(
        self, prompts: object, qualities: object, costs: Optional[object] = None
    ) -> None: ...
    def router_start_sharing(self) -> None: ...
    def router_take_changes(self) -> list[tuple[str, int, float, float]]: ...
    def router_apply_shared(self, sums: Sequence[tuple[str, int, float, float]]) -> None: ...
    def router_state(self) -> bytes: ...
    def load_router_state(self, state: bytes) -> None: ...
    def record(self, slot: int, ticket: int, outcome: Outcome) -> Optional[Transition]: ...
    def take_held(self, slot: int) -> int: ...
    def report_many(
        self,
        slots: Sequence[int],
        tickets: Sequence[int],
        successes: object,
        latencies: object,
        *,
        error_classes: Optional[object] = None,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        costs: Optional[object] = None,
        qualities: Optional[object] = None,
        request_ids: Optional[Sequence[int]] = None,
    ) -> list[Optional[Transition]]: ...
    def cancel(
        self,
        slot: int,
        ticket: int,
        sent: Optional[object] = None,
        *,
        input_tokens: Optional[object] = None,
        output_tokens: Optional[object] = None,
        cost: Optional[object] = None,
    ) -> None: ...
    def add_budget(
        self, name: object, scope: object, value: object, limit_usd: object, period: object
    ) -> None: ...
    def remove_budget(self, name: object) -> None: ...
    def budgets(self) -> list[dict[str, Any]]: ...
    def set_budget_allowance(self, name: object, allowance_nanos: Optional[object]) -> None: ...
    def budget_holds(self) -> int: ...
    def unix_time(self) -> float: ...
    def set_wall_clock(self, unix_time: object) -> None: ...
    def record_health_check(self, slot: int, healthy: object) -> Optional[Transition]: ...
    def breaker(self, slot: int) -> dict[str, Any]: ...
    def snapshot(self, slot: int) -> dict[str, Any]: ...
    def snapshot_of(self, name: str) -> dict[str, Any]: ...
    def stats_matrix(self) -> tuple[bytes, list[str]]: ...
    def take_deltas(
        self,
    ) -> list[tuple[int, int, int, list[int], float, float, int, int, float]]: ...
    def restore_deltas(
        self, rows: Sequence[tuple[int, int, int, list[int], float, float, int, int, float]]
    ) -> None: ...
    def set_shared(self, slot: int, n: float, reward_sum: float, reward_sq_sum: float) -> None: ...
    def shared(self, slot: int) -> tuple[float, float, float]: ...
    def rate_limits(self, slot: int) -> dict[str, Any]: ...
    def rate_limit_window(self) -> float: ...
    def set_rate_limit_window(self, seconds: object) -> None: ...
    def share_limits(self, slot: int, top_up_in: object) -> None: ...
    def unshare_limits(self, slot: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def grant_lease(
        self, slot: int, kind: object, grant: object, amount: object, expires_in: object
    ) -> None: ...
    def take_lease_returns(
        self, slot: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def fall_back_limits(
        self, slot: int, rpm: object = None, tpm: object = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def recover_limits(self, slot: int) -> None: ...
    def take_unrecorded(self, slot: int) -> tuple[int, int]: ...
    def shared_limits(self, slot: int) -> Optional[dict[str, Any]]: ...
    def pending(self, slot: int) -> int: ...
    def outstanding_tickets(self) -> int: ...
    def now(self) -> float: ...
    def advance_clock(self, seconds: object) -> None: ...
    def is_virtual_clock(self) -> bool: ...
    def use_virtual_clock(self) -> None: ...
    def sweep(self) -> None: ...

# Prompt-aware routing (rust/orchestrator-py/src/router.rs).

FEATURIZER_VERSION: int
DEFAULT_WILLINGNESS_TO_PAY: float
MIN_WILLINGNESS_TO_PAY: float
STRUCTURE_FEATURES: list[str]

@final
class ContextualRouter:
    """Prompt-aware router: per-model Bayesian logistic quality predictions over
    hashed prompt features; decisions maximise quality − cost / willingness_to_pay."""

    def __new__(
        cls,
        models: Sequence[str],
        *,
        costs: Optional[Mapping[str, float]] = None,
        hash_bits: Optional[int] = None,
        word_ngrams: Optional[int] = None,
        char_ngrams: Optional[int] = None,
        embedding_dim: Optional[int] = None,
        prior_precision: Optional[float] = None,
        exploration: Optional[str] = None,
        exploration_weight: Optional[float] = None,
        epochs: Optional[int] = None,
        learning_rate: Optional[float] = None,
        feedback_ttl_s: Optional[float] = None,
        max_pending: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> ContextualRouter: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def pending(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def add_model(self, name: str, cost: Optional[float] = None) -> None: ...
    def remove_model(self, name: str) -> None: ...
    def set_cost(self, name: str, cost: float) -> None: ...
    def featurize(
        self, prompt: Any, embedding: Optional[Any] = None
    ) -> tuple[list[int], list[float]]: ...
    def predict(
        self, prompt: Any, embedding: Optional[Any] = None
    ) -> list[tuple[float, float]]: ...
    def decide(
        self,
        prompt: Any,
        willingness_to_pay: float,
        *,
        eligible: Optional[Sequence[str]] = None,
        costs: Optional[Sequence[float]] = None,
        embedding: Optional[Any] = None,
        record: bool = True,
    ) -> tuple[str, Optional[int], float]: ...
    def learn(
        self, prompt: Any, model: str, quality: float, embedding: Optional[Any] = None
    ) -> None: ...
    def report(self, request_id: int, quality: float) -> str: ...
    def calibrate(
        self,
        prompts: Sequence[str],
        qualities: Mapping[str, Sequence[float]],
        costs: Optional[Mapping[str, float]] = None,
    ) -> None: ...
    def explain(
        self, prompt: Any, embedding: Optional[Any] = None, top: Optional[int] = None
    ) -> list[tuple[str, float, float, Optional[float], int, list[tuple[str, float]]]]: ...
    def start_sharing(self) -> None: ...
    def take_changes(self) -> list[tuple[int, float, float]]: ...
    def apply_shared(self, sums: list[tuple[int, float, float]]) -> None: ...
    def save(self) -> bytes: ...
    @staticmethod
    def load(state: bytes, settings: ContextualRouter) -> ContextualRouter: ...
