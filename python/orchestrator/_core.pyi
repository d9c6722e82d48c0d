"""Type stub of ``orchestrator._core``, the Rust selection core (PyO3)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, final

__all__ = [
    "BASELINE_LATENCIES",
    "CAPABILITY_NAMES",
    "DEFAULT_INPUT_TOKENS",
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_WILLINGNESS_TO_PAY",
    "ERROR_CLASSES",
    "FEATURIZER_VERSION",
    "KEY_FORMAT_VERSION",
    "RECENT_LATENCIES",
    "STATS_COLUMNS",
    "STRUCTURE_FEATURES",
    "ContextualRouter",
    "SelectionCore",
    "__version__",
    "cache_key",
]

__version__: str
CAPABILITY_NAMES: list[str]
ERROR_CLASSES: list[str]
STATS_COLUMNS: list[str]
KEY_FORMAT_VERSION: int
DEFAULT_INPUT_TOKENS: int
DEFAULT_OUTPUT_TOKENS: int
RECENT_LATENCIES: int
BASELINE_LATENCIES: int

def cache_key(
    model: str,
    provider: str,
    prompt: object,
    params: Optional[object] = None,
    namespace: str = "",
) -> str:
    """Stable 128-bit cache key (32 hex digits) of a request."""

@final
class SelectionCore:
    """Selection state of one registry: models as slots in parallel arrays."""

    def __new__(
        cls,
        strategy: str = "ucb",
        exploration_factor: float = 2.0,
        min_trials: int = 5,
        confidence_level: float = 0.95,
        discount: float = 1.0,
    ) -> SelectionCore: ...
    def configure_strategy(
        self,
        strategy: str,
        exploration_factor: float = 2.0,
        min_trials: int = 5,
        confidence_level: float = 0.95,
        discount: float = 1.0,
    ) -> None: ...
    def configure_reward(
        self,
        success: float = 1.0,
        latency: float = 0.5,
        cost: float = 0.25,
        quality: float = 1.0,
        latency_ref_s: float = 2.0,
        cost_ref_usd: float = 0.01,
    ) -> None: ...
    def configure_breaker(
        self,
        failure_threshold: int = 3,
        recovery_threshold: int = 2,
        base_cooldown_s: float = 30.0,
        max_cooldown_s: float = 600.0,
        error_rate_threshold: float = 0.5,
        error_rate_window: int = 20,
    ) -> None: ...
    def seed(self, seed: int) -> None: ...
    def set_pending_timeout(self, seconds: float) -> None: ...
    def register(
        self,
        model: Any,
        name: str,
        provider: str,
        capabilities: Iterable[str],
        context_length: int = 0,
        input_price_per_million: float = 0.0,
        output_price_per_million: float = 0.0,
        request_fee: float = 0.0,
        priced: bool = False,
        declared_speed: Optional[float] = None,
    ) -> int: ...
    def update(
        self,
        slot: int,
        name: str,
        provider: str,
        capabilities: Iterable[str],
        context_length: int = 0,
        input_price_per_million: float = 0.0,
        output_price_per_million: float = 0.0,
        request_fee: float = 0.0,
        priced: bool = False,
        declared_speed: Optional[float] = None,
    ) -> None: ...
    def unregister(self, name: str) -> int: ...
    def model(self, slot: int) -> Any: ...
    def slot_of(self, name: str) -> Optional[int]: ...
    def __len__(self) -> int: ...
    def select(
        self,
        capabilities: Optional[Iterable[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude: Optional[Iterable[str]] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> Optional[tuple[Any, int, int, int]]:
        """``(model, slot, ticket, flags)`` or ``None``; flags: 1 forced
        trial, 2 every breaker open, 4 moved to half-open."""
    def select_many(
        self,
        count: int,
        capabilities: Optional[Iterable[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude: Optional[Iterable[str]] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> list[tuple[Any, int, int]]: ...
    def explain(
        self,
        capabilities: Optional[Iterable[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude: Optional[Iterable[str]] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> tuple[list[dict[str, Any]], Optional[int], bool]: ...
    def scores(
        self,
        capabilities: Optional[Iterable[str]] = None,
        max_cost: Optional[float] = None,
        min_speed: Optional[float] = None,
        context_length: Optional[int] = None,
        exclude: Optional[Iterable[str]] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> bytes: ...
    def report(
        self,
        slot: int,
        ticket: int,
        success: bool,
        error_class: int = 0,
        latency: float = 0.0,
        time_to_first_token: Optional[float] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Optional[float] = None,
        quality: Optional[float] = None,
        reward: Optional[float] = None,
        retry_after: float = 0.0,
    ) -> int:
        """Transition code: 0 none, 1 opened, 2 half-opened, 3 closed.
        ``cost=None`` prices the tokens at the model's declared prices."""
    def report_many(
        self,
        slots: Sequence[int],
        tickets: Sequence[int],
        successes: Sequence[bool],
        latencies: Sequence[float],
        error_classes: Optional[Sequence[int]] = None,
        input_tokens: Optional[Sequence[int]] = None,
        output_tokens: Optional[Sequence[int]] = None,
        costs: Optional[Sequence[float]] = None,
        qualities: Optional[Sequence[float]] = None,
    ) -> list[int]: ...
    def cancel(self, slot: int, ticket: int) -> None: ...
    def record_health_check(self, slot: int, healthy: bool) -> int: ...
    def breaker(self, slot: int) -> dict[str, Any]: ...
    def snapshot(self, slot: int) -> dict[str, Any]: ...
    def stats_matrix(self) -> tuple[bytes, int, list[str]]: ...
    def take_deltas(
        self,
    ) -> list[tuple[int, int, int, list[int], float, float, int, int, float]]: ...
    def restore_deltas(
        self, rows: list[tuple[int, int, int, list[int], float, float, int, int, float]]
    ) -> None: ...
    def set_shared(self, slot: int, n: float, reward_sum: float, reward_sq_sum: float) -> None: ...
    def shared(self, slot: int) -> tuple[float, float, float]: ...
    def pending(self, slot: int) -> int: ...
    def outstanding_tickets(self) -> int: ...
    def now(self) -> float: ...
    def advance_clock(self, seconds: float) -> None: ...
    def sweep(self) -> None: ...

# Prompt-aware routing (rust/orchestrator-py/src/router.rs).

FEATURIZER_VERSION: int
DEFAULT_WILLINGNESS_TO_PAY: float
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
        hash_bits: int = 16,
        word_ngrams: int = 2,
        char_ngrams: int = 0,
        embedding_dim: int = 0,
        prior_precision: float = 4.0,
        exploration: str = "thompson",
        exploration_weight: float = 1.0,
        epochs: int = 4,
        learning_rate: float = 0.1,
        feedback_ttl_s: float = 3600.0,
        max_pending: int = 65536,
        seed: int = 0x5EED,
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
        self, prompt: Any, embedding: Optional[Any] = None, top: int = 5
    ) -> list[tuple[str, float, float, Optional[float], int, list[tuple[str, float]]]]: ...
    def start_sharing(self) -> None: ...
    def take_changes(self) -> list[tuple[int, float, float]]: ...
    def apply_shared(self, sums: list[tuple[int, float, float]]) -> None: ...
    def save(self) -> bytes: ...
    @staticmethod
    def load(state: bytes, settings: ContextualRouter) -> ContextualRouter: ...
