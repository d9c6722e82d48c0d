//! The selection core of `orchestrator`, in plain Rust (no Python).
//!
//! A [`Table`] holds every registered model as a slot in struct-of-arrays
//! form: capability bitmask, context window, prices, observed speed, circuit
//! breaker and bandit statistics. [`Table::select`] filters and scores every
//! slot in one pass; [`Table::report`] folds one observed outcome back in.
//! [`hash`] builds the stable 128-bit cache keys.

pub mod breaker;
pub mod budgets;
pub mod contextual;
pub mod error;
pub mod features;
pub mod hash;
pub mod leases;
pub mod limits;
pub mod outcome;
pub mod reward;
pub mod rng;
pub mod routing;
pub mod sessions;
pub mod spec;
pub mod stats;
pub mod strategy;
pub mod table;
pub mod tickets;
pub mod verdict;

pub use breaker::{BreakerConfig, BreakerState, Transition};
pub use budgets::{BudgetSpec, BudgetState, Period, Scope};
pub use error::CoreError;
pub use limits::{ProviderLimits, RateLimits};
pub use reward::RewardWeights;
pub use strategy::{Strategy, StrategyConfig};
pub use table::{
    Constraints, Delta, Explanation, ModelSpec, Outcome, Rejection, ScoreParts, Selection,
    SessionVerdict, SharedStats, Table, Verdict,
};

/// Capability flags, in bit order. The Python `ModelCapabilities` model has one
/// boolean field per name.
pub const CAPABILITY_NAMES: [&str; 10] = [
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
];

/// Error classes an outcome can carry, in index order. Index 0 means success.
pub const ERROR_CLASSES: [&str; 11] = [
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
];

/// Index of the `authentication` error class, which opens a breaker at once.
pub const ERROR_AUTHENTICATION: u8 = 1;
/// Index of the `rate_limit` error class.
pub const ERROR_RATE_LIMIT: u8 = 2;

/// Bitmask of the named capabilities, or the first unknown name.
pub fn capability_mask<'a, I>(names: I) -> Result<u32, CoreError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut mask = 0u32;
    for name in names {
        match CAPABILITY_NAMES.iter().position(|known| *known == name) {
            Some(bit) => mask |= 1 << bit,
            None => {
                return Err(CoreError::UnknownCapability(name.to_owned()));
            }
        }
    }
    Ok(mask)
}

/// Index of an error class name.
pub fn error_class_index(name: &str) -> Result<u8, CoreError> {
    ERROR_CLASSES
        .iter()
        .position(|known| *known == name)
        .map(|i| i as u8)
        .ok_or_else(|| CoreError::invalid("error_class", name))
}
