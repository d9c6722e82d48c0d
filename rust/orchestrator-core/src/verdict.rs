//! What selection and explanation report: a selection, and each
//! candidate's verdict with its score parts.

use crate::breaker::Transition;
use crate::spec::Rejection;

/// How an eligible model scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreParts {
    /// Estimated mean reward (or negative cost for the cost strategy).
    pub estimate: f64,
    /// `+inf` for a forced trial: it outranks every scored model.
    pub exploration_bonus: f64,
    /// `estimate + exploration_bonus`, the value selection maximises; `+inf`
    /// for a forced trial (among several, the one with the fewest outcomes
    /// and pending selections is taken, then the lowest slot).
    pub score: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub trials: u64,
    pub pending: u32,
    /// True while the model still owes `min_trials` forced trials.
    pub forced: bool,
    pub expected_cost: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Eligible(ScoreParts),
    Rejected(Rejection),
}

/// One candidate's verdict in an explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub slot: u32,
    pub verdict: Verdict,
}

/// The outcome of [`Table::select`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selection {
    pub slot: u32,
    pub ticket: u64,
    /// Chosen as a forced trial (fewer than `min_trials` outcomes).
    pub forced: bool,
    /// Every eligible model's breaker was open; this one recovers soonest.
    pub fallback_open: bool,
    /// The breaker moved to half-open for this request.
    pub transition: Transition,
}
