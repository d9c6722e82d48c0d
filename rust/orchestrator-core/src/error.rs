//! Errors of the core. Each names the field and the value at fault.

use std::fmt;

/// What went wrong in a core call; the Python layer maps each to an exception.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// A field had a value outside its domain (NaN, negative, empty, ...).
    Invalid { field: &'static str, value: String },
    /// A capability name that is not in [`crate::CAPABILITY_NAMES`].
    UnknownCapability(String),
    /// A model name that is not registered.
    UnknownModel(String),
    /// A model name that is already registered.
    DuplicateModel(String),
    /// A name models and aliases share that is already taken (`by` says by what).
    NameInUse { name: String, by: &'static str },
    /// A routing alias that does not exist.
    UnknownAlias(String),
    /// A slot index that holds no model.
    UnknownSlot(u32),
    /// A ticket that was already reported, expired, or never issued.
    StaleTicket(u64),
    /// A request id that no decision is waiting under: unknown, already
    /// reported, dropped for newer decisions, or expired.
    UnknownRequest { request_id: u64, reason: String },
    /// A value that cannot be part of a cache key.
    Unhashable { path: String, reason: String },
}

impl CoreError {
    pub fn invalid(field: &'static str, value: impl fmt::Display) -> Self {
        CoreError::Invalid {
            field,
            value: value.to_string(),
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Invalid { field, value } => write!(f, "invalid {field}: {value}"),
            CoreError::UnknownCapability(name) => write!(
                f,
                "unknown capability {name:?}; known capabilities: {}",
                crate::CAPABILITY_NAMES.join(", ")
            ),
            CoreError::UnknownModel(name) => write!(f, "no model named {name:?} is registered"),
            CoreError::DuplicateModel(name) => {
                write!(f, "a model named {name:?} is already registered")
            }
            CoreError::NameInUse { name, by } => write!(
                f,
                "the name {name:?} is already {by} (models and aliases share one namespace)"
            ),
            CoreError::UnknownAlias(name) => write!(f, "no routing alias named {name:?}"),
            CoreError::UnknownSlot(slot) => write!(f, "no model is registered in slot {slot}"),
            CoreError::StaleTicket(ticket) => write!(
                f,
                "ticket {ticket} was already reported, has expired, was never issued, \
                 or its model was unregistered"
            ),
            CoreError::UnknownRequest { request_id, reason } => {
                write!(f, "request_id {request_id} {reason}")
            }
            CoreError::Unhashable { path, reason } => {
                write!(f, "cannot hash {path} for a cache key: {reason}")
            }
        }
    }
}

impl std::error::Error for CoreError {}

/// A finite, non-negative f64, or an `Invalid` error naming the field.
pub fn non_negative(field: &'static str, value: f64) -> Result<f64, CoreError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(CoreError::invalid(field, value))
    }
}

/// The most bytes of a name a request or a budget carries (tenant, budget name).
pub const MAX_LABEL_BYTES: usize = 256;

/// What is wrong with a name a caller gives (a tag, an alias, a tenant, a
/// session id, a budget or its scope), if anything: it must be non-empty, at
/// most [`MAX_LABEL_BYTES`] bytes of UTF-8, without control characters.
pub fn label_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("empty")
    } else if value.len() > MAX_LABEL_BYTES {
        Some("longer than 256 bytes of UTF-8")
    } else if value.chars().any(char::is_control) {
        Some("has a control character")
    } else {
        None
    }
}

/// [`label_problem`] as an `Invalid` error naming the field.
pub fn label(field: &'static str, value: &str) -> Result<(), CoreError> {
    match label_problem(value) {
        None => Ok(()),
        Some(problem) => {
            let shown: String = value.chars().take(40).collect();
            Err(CoreError::invalid(field, format!("{shown:?} ({problem})")))
        }
    }
}

/// A finite f64 in `[0, 1]`, or an `Invalid` error naming the field.
pub fn unit_interval(field: &'static str, value: f64) -> Result<f64, CoreError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(CoreError::invalid(field, value))
    }
}
