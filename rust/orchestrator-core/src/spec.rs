//! What is declared about a model, and what one request asks for: the
//! model's spec, a request's constraints, and why a model was rejected.

use std::sync::Arc;

use crate::budgets::{format_duration, format_usd, MAX_BUDGET_RETRY_IN_S};
use crate::error::{non_negative, CoreError};
use crate::limits::{LimitKind, RateLimits};
use crate::table::tags::check_tag;
use crate::CAPABILITY_NAMES;

/// Request size used to price a request whose token counts are not given.
pub const DEFAULT_INPUT_TOKENS: u32 = 100;
pub const DEFAULT_OUTPUT_TOKENS: u32 = 100;

/// What is declared about a model when it is registered.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The name the table knows the model by: its logical name, or
    /// `"<model>@<deployment>"` for a deployment.
    pub name: String,
    /// The deployment id (one of several deployments of one logical model,
    /// each its own slot), or `None`.
    pub deployment: Option<String>,
    pub provider: String,
    pub capabilities: u32,
    /// Context window in tokens; 0 when unknown.
    pub context_length: u32,
    pub input_price_per_million: f64,
    pub output_price_per_million: f64,
    pub request_fee: f64,
    /// False when the model has no known price.
    pub priced: bool,
    /// Declared output tokens per second, used until speed is observed.
    pub declared_speed: Option<f64>,
    /// Requests and tokens per minute this model may be sent.
    pub limits: RateLimits,
    /// Tags a request can require (`[a-z0-9][a-z0-9_.:-]{0,63}` each).
    pub tags: Vec<String>,
}

/// The name of deployment `deployment` of model `model`: `"model@deployment"`.
pub fn qualified_name(model: &str, deployment: Option<&str>) -> String {
    match deployment {
        Some(deployment) => format!("{model}@{deployment}"),
        None => model.to_owned(),
    }
}

impl ModelSpec {
    /// The logical model's name: `name` without its `"@<deployment>"`.
    pub fn model_name(&self) -> &str {
        match &self.deployment {
            Some(d) => &self.name[..self.name.len().saturating_sub(d.len() + 1)],
            None => &self.name,
        }
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        if self.name.trim().is_empty() {
            return Err(CoreError::invalid("name", format!("{:?}", self.name)));
        }
        if let Some(deployment) = &self.deployment {
            if deployment.trim().is_empty()
                || deployment.contains('@')
                || deployment.chars().any(char::is_control)
            {
                return Err(CoreError::invalid(
                    "deployment",
                    format!("{deployment:?} (non-empty, without '@' or control characters)"),
                ));
            }
            let model = self.name.strip_suffix(deployment.as_str());
            if !model.is_some_and(|m| m.len() > 1 && m.ends_with('@')) {
                return Err(CoreError::invalid(
                    "name",
                    format!("{:?} is not a name of deployment {deployment:?}", self.name),
                ));
            }
        }
        if self.provider.trim().is_empty() {
            return Err(CoreError::invalid(
                "provider",
                format!("{:?}", self.provider),
            ));
        }
        non_negative("input_price_per_million", self.input_price_per_million)?;
        non_negative("output_price_per_million", self.output_price_per_million)?;
        non_negative("request_fee", self.request_fee)?;
        if let Some(speed) = self.declared_speed {
            non_negative("declared_speed", speed)?;
        }
        for tag in &self.tags {
            check_tag(tag)?;
        }
        self.limits.validate()
    }
}

/// The most UTF-8 bytes of a request's string field (`session_id=` and the
/// other names a request carries): the label rule's.
pub const MAX_REQUEST_STRING_BYTES: usize = crate::error::MAX_LABEL_BYTES;

/// A request's string field, by the one label rule
/// ([`crate::error::label_problem`]); else an error naming `field` and the
/// value (its first 64 characters).
pub fn check_request_string(field: &'static str, value: &str) -> Result<(), CoreError> {
    let Some(problem) = crate::error::label_problem(value) else {
        return Ok(());
    };
    let mut shown: String = value.chars().take(64).collect();
    if shown.len() < value.len() {
        shown.push_str("...");
    }
    Err(CoreError::invalid(field, format!("{shown:?} ({problem})")))
}

/// One request's constraints, validated by [`Constraints::new`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub required_capabilities: u32,
    pub max_cost: Option<f64>,
    pub min_speed: Option<f64>,
    pub context_length: Option<u32>,
    pub exclude: Vec<u32>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Tags the model must all have, as the table's tag bits.
    pub required_tags: u64,
    /// Required tags no registered model has (so no model is eligible).
    pub unknown_tags: Vec<String>,
    /// The tokens a model's *known* context window must hold, when the
    /// request gave its `input_tokens`: those plus the `output_tokens` it
    /// gave (none given: the prompt alone must fit, as providers check it; a
    /// request of unknown size is not held to the default size). Models
    /// whose window is unknown are not excluded by it (`context_length` is
    /// the constraint that requires a known window).
    pub window_needed: Option<u32>,
    /// The request's session (the keyed hash of its id, see
    /// [`crate::sessions`]): kept on its bound model while that passes.
    pub session: Option<crate::sessions::SessionKey>,
    /// The group (alias or logical model, see `table::groups`) the model
    /// must be in, by its id in the table.
    pub group: Option<u32>,
    /// The request's tenant's budgets (see `Budgets::tenant`); `None` when
    /// no tenant was given or it has no budget.
    pub tenant: Option<u32>,
}

impl Constraints {
    /// The tokens a selection reserves against a model's `tpm`: the
    /// request's input plus output tokens (the default request size when
    /// not given).
    #[inline]
    pub fn reserved_tokens(&self) -> u64 {
        u64::from(self.input_tokens) + u64::from(self.output_tokens)
    }
}

impl Constraints {
    pub fn new(
        required_capabilities: u32,
        max_cost: Option<f64>,
        min_speed: Option<f64>,
        context_length: Option<i64>,
        exclude: Vec<u32>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
    ) -> Result<Self, CoreError> {
        if let Some(cost) = max_cost {
            non_negative("max_cost", cost)?;
        }
        if let Some(speed) = min_speed {
            non_negative("min_speed", speed)?;
        }
        let tokens = |field: &'static str, v: Option<i64>, default: u32| match v {
            None => Ok(default),
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n as u32),
            Some(n) => Err(CoreError::invalid(field, n)),
        };
        let context_length = match context_length {
            None => None,
            Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
            Some(n) => return Err(CoreError::invalid("context_length", n)),
        };
        let given_input = input_tokens.is_some();
        let given_output = tokens("output_tokens", output_tokens, 0)?;
        let input_tokens = tokens("input_tokens", input_tokens, DEFAULT_INPUT_TOKENS)?;
        let output_tokens = tokens("output_tokens", output_tokens, DEFAULT_OUTPUT_TOKENS)?;
        let window_needed = given_input.then(|| input_tokens.saturating_add(given_output));
        Ok(Constraints {
            required_capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude,
            input_tokens,
            output_tokens,
            window_needed,
            ..Constraints::default()
        })
    }
}

/// Why a model was not eligible for a request. `RateLimited`: inside the
/// provider's `Retry-After` window, where a model is not even probed.
/// `RequestLimit`/`TokenLimit`: the model's own window (`rpm`/`tpm`) is
/// full (`retry_in_s` is `None` when the request can never fit);
/// `ProviderLimit`: the provider's headers said its allowance is spent.
/// `LeaseSpent`: the window is shared by many workers and this worker's
/// lease of it is used up until the lease thread tops it up.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    MissingCapabilities(u32),
    /// The required tags (the table's bits) the model lacks; see
    /// `Table::describe` for their names.
    MissingTags(u64),
    /// Not a member of the request's alias (or not a deployment of the
    /// logical model it names); see `Table::describe` for the name.
    NotInGroup(u32),
    ContextUnknown {
        needed: u32,
    },
    ContextTooSmall {
        needed: u32,
        has: u32,
    },
    Unpriced,
    TooExpensive {
        cost: f64,
        max: f64,
    },
    SpeedUnknown,
    TooSlow {
        speed: f64,
        min: f64,
    },
    Excluded,
    CircuitOpen {
        retry_in_s: f64,
    },
    RateLimited {
        retry_in_s: f64,
    },
    ProbeInFlight,
    RequestLimit {
        used: u32,
        limit: u32,
        retry_in_s: f64,
        /// The window's length (seconds), for the sentence.
        window_s: f64,
    },
    TokenLimit {
        used: u64,
        needed: u64,
        limit: u64,
        retry_in_s: Option<f64>,
        window_s: f64,
    },
    ProviderLimit {
        kind: LimitKind,
        remaining: u64,
        needed: u64,
        retry_in_s: f64,
    },
    LeaseSpent {
        kind: LimitKind,
        held: u64,
        needed: u64,
        retry_in_s: f64,
    },
    /// A spend budget has no room for the request's expected cost (amounts
    /// in nano-USD; `limit` is the capacity here).
    Budget {
        label: Arc<str>,
        spent: u64,
        reserved: u64,
        limit: u64,
        needed: u64,
        resets_in_s: f64,
    },
}

/// "the last minute" for the default window, else "the last 10 s".
fn last(window_s: f64) -> String {
    if window_s == 60.0 {
        "the last minute".to_owned()
    } else {
        format!("the last {window_s} s")
    }
}

impl Rejection {
    /// The `select_model` keyword this rejection is about.
    pub fn constraint(&self) -> &'static str {
        match self {
            Rejection::MissingCapabilities(_) => "capabilities",
            Rejection::MissingTags(_) => "tags",
            Rejection::NotInGroup(_) => "alias",
            Rejection::ContextUnknown { .. } | Rejection::ContextTooSmall { .. } => {
                "context_length"
            }
            Rejection::Unpriced | Rejection::TooExpensive { .. } => "max_cost",
            Rejection::SpeedUnknown | Rejection::TooSlow { .. } => "min_speed",
            Rejection::Excluded => "exclude_models",
            Rejection::CircuitOpen { .. }
            | Rejection::RateLimited { .. }
            | Rejection::ProbeInFlight => "health",
            Rejection::RequestLimit { .. }
            | Rejection::TokenLimit { .. }
            | Rejection::ProviderLimit { .. }
            | Rejection::LeaseSpent { .. } => "rate_limit",
            Rejection::Budget { .. } => "budget",
        }
    }

    /// Seconds until a model rejected for its health or its rate limit may
    /// be tried again.
    pub fn retry_in(&self) -> Option<f64> {
        match self {
            Rejection::CircuitOpen { retry_in_s }
            | Rejection::RateLimited { retry_in_s }
            | Rejection::RequestLimit { retry_in_s, .. }
            | Rejection::ProviderLimit { retry_in_s, .. }
            | Rejection::LeaseSpent { retry_in_s, .. } => Some(*retry_in_s),
            Rejection::TokenLimit { retry_in_s, .. } => *retry_in_s,
            // Worth waiting for only when the period resets soon (a minute
            // budget) and the request fits an empty period.
            Rejection::Budget {
                resets_in_s,
                needed,
                limit,
                ..
            } => (*resets_in_s <= MAX_BUDGET_RETRY_IN_S && needed <= limit).then_some(*resets_in_s),
            _ => None,
        }
    }

    /// A sentence a person can read.
    pub fn describe(&self) -> String {
        match self {
            Rejection::MissingCapabilities(mask) => {
                let names: Vec<&str> = CAPABILITY_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| mask & (1 << bit) != 0)
                    .map(|(_, n)| *n)
                    .collect();
                format!("lacks capabilities: {}", names.join(", "))
            }
            Rejection::MissingTags(_) => "missing required tags".to_owned(),
            Rejection::NotInGroup(_) => "not in the requested alias".to_owned(),
            Rejection::ContextUnknown { needed } => {
                format!("context window unknown, {needed} tokens needed")
            }
            Rejection::ContextTooSmall { needed, has } => {
                format!("context window {has} tokens < {needed} needed")
            }
            Rejection::Unpriced => {
                "has no known price, so max_cost cannot be checked (give it a cost)".to_owned()
            }
            Rejection::TooExpensive { cost, max } => {
                format!("expected cost ${cost:.6} per request > max_cost ${max:.6}")
            }
            Rejection::SpeedUnknown => {
                "speed unknown: not declared and not yet observed".to_owned()
            }
            Rejection::TooSlow { speed, min } => {
                format!("speed {speed:.1} tokens/s < min_speed {min:.1}")
            }
            Rejection::Excluded => "excluded by exclude_models".to_owned(),
            Rejection::CircuitOpen { retry_in_s } => {
                format!("circuit open, next probe in {retry_in_s:.1}s")
            }
            Rejection::RateLimited { retry_in_s } => {
                format!("rate limited by the provider, Retry-After ends in {retry_in_s:.1}s")
            }
            Rejection::ProbeInFlight => "circuit half-open, a probe is in flight".to_owned(),
            Rejection::RequestLimit {
                used,
                limit,
                retry_in_s,
                window_s,
            } => format!(
                "{used}/{limit} requests in {} (rpm), next slot in {retry_in_s:.1} s",
                last(*window_s)
            ),
            Rejection::TokenLimit {
                needed,
                limit,
                retry_in_s: None,
                ..
            } => format!("the request needs {needed} tokens, more than tpm {limit} allows"),
            Rejection::TokenLimit {
                used,
                needed,
                limit,
                retry_in_s: Some(retry_in_s),
                window_s,
            } => format!(
                "{used}/{limit} tokens in {} (tpm) and the request needs \
                 {needed}, next slot in {retry_in_s:.1} s",
                last(*window_s)
            ),
            Rejection::ProviderLimit {
                kind,
                remaining,
                needed,
                retry_in_s,
            } => format!(
                "the provider reports {remaining} {} left (the request needs {needed}), \
                 next slot in {retry_in_s:.1} s",
                kind.name()
            ),
            Rejection::LeaseSpent {
                kind,
                held,
                needed,
                retry_in_s,
            } => format!(
                "this worker's lease of the shared window holds {held} {} (the request \
                 needs {needed}), next top-up within {retry_in_s:.1} s",
                kind.name()
            ),
            Rejection::Budget {
                label,
                needed,
                limit,
                ..
            } if needed > limit => format!(
                "{label}: the request's expected cost {} exceeds the limit {}",
                format_usd(*needed),
                format_usd(*limit)
            ),
            Rejection::Budget {
                label,
                spent,
                reserved,
                limit,
                resets_in_s,
                ..
            } => format!(
                "{label} {}/{} spent (reserved {}), resets in {}",
                format_usd(*spent),
                format_usd(*limit),
                format_usd(*reserved),
                format_duration(*resets_in_s)
            ),
        }
    }
}
