//! What a call's outcome is, and what workers exchange: outcomes, deltas
//! and other workers' statistics.

use crate::error::{non_negative, unit_interval, CoreError};
use crate::limits::ProviderLimits;
use crate::ERROR_CLASSES;

/// The longest latency (and time to first token) one outcome may report, in
/// seconds (about 11.6 days): a larger finite value would overflow the
/// statistics (recent latencies are kept as `f32`), so it is refused.
pub const MAX_LATENCY_S: f64 = 1e6;
/// The most one call may cost, in USD; larger is refused, so cost totals
/// stay finite and exact enough to be read.
pub const MAX_COST_USD: f64 = 1e9;
/// The most tokens (input or output) one call may report; token totals
/// saturate instead of wrapping.
pub const MAX_TOKENS: u64 = 1 << 40;

/// `value` (already known non-negative and finite) if at most `max`, else
/// an `Invalid` error naming the field and the limit.
fn at_most<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    max: T,
) -> Result<(), CoreError> {
    if value <= max {
        Ok(())
    } else {
        Err(CoreError::invalid(
            field,
            format!("{value} (at most {max})"),
        ))
    }
}

/// One observed outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    pub success: bool,
    /// Index into [`ERROR_CLASSES`]; 0 for success.
    pub error_class: u8,
    pub latency_s: f64,
    pub ttft_s: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What the call cost; `None` prices the token counts at the model's
    /// declared prices (0 for an unpriced model).
    pub cost_usd: Option<f64>,
    /// Caller's quality score in `[0, 1]`.
    pub quality: Option<f64>,
    /// A reward in `[0, 1]` that replaces the computed one.
    pub reward: Option<f64>,
    /// Provider's `Retry-After` in seconds; 0 when absent.
    pub retry_after_s: f64,
    /// What the provider's rate-limit headers reported.
    pub provider_limits: ProviderLimits,
}

impl Outcome {
    /// The error class counted for this outcome: a failure reported with
    /// class `none` counts as `other`.
    pub fn counted_error_class(&self) -> u8 {
        if self.success || self.error_class != 0 {
            self.error_class
        } else {
            (ERROR_CLASSES.len() - 1) as u8
        }
    }

    /// This outcome as the core counts it (see [`Self::counted_error_class`]),
    /// if every field is valid.
    pub fn checked(mut self) -> Result<Outcome, CoreError> {
        self.error_class = self.counted_error_class();
        self.validate()?;
        Ok(self)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        at_most(
            "latency",
            non_negative("latency", self.latency_s)?,
            MAX_LATENCY_S,
        )?;
        if let Some(ttft) = self.ttft_s {
            at_most(
                "time_to_first_token",
                non_negative("time_to_first_token", ttft)?,
                MAX_LATENCY_S,
            )?;
        }
        if let Some(cost) = self.cost_usd {
            at_most("cost", non_negative("cost", cost)?, MAX_COST_USD)?;
        }
        at_most("input_tokens", self.input_tokens, MAX_TOKENS)?;
        at_most("output_tokens", self.output_tokens, MAX_TOKENS)?;
        non_negative("retry_after", self.retry_after_s)?;
        self.provider_limits.validate()?;
        if let Some(q) = self.quality {
            unit_interval("quality", q)?;
        }
        if let Some(r) = self.reward {
            unit_interval("reward", r)?;
        }
        if usize::from(self.error_class) >= ERROR_CLASSES.len() {
            return Err(CoreError::invalid("error_class", self.error_class));
        }
        if self.success && self.error_class != 0 {
            return Err(CoreError::invalid(
                "error_class",
                format!(
                    "{} on a successful outcome",
                    ERROR_CLASSES[usize::from(self.error_class)]
                ),
            ));
        }
        Ok(())
    }
}

/// Other workers' statistics of one model, as effective counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SharedStats {
    pub n: f64,
    pub reward_sum: f64,
    pub reward_sq_sum: f64,
}

/// What one model observed since the last [`Table::take_deltas`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delta {
    pub requests: u64,
    pub successes: u64,
    pub failures_by_class: [u64; ERROR_CLASSES.len()],
    pub reward_sum: f64,
    pub reward_sq_sum: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}
