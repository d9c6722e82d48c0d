//! A circuit breaker per model, driven by reported outcomes.
//!
//! Closed -> Open after `failure_threshold` consecutive failures, or when the
//! recent error rate (an exponential moving average over about
//! `error_rate_window` outcomes) reaches `error_rate_threshold` once that many
//! outcomes were seen, or at once on an authentication error. Open -> HalfOpen
//! when the cool-down has passed; the cool-down is `base_cooldown_s *
//! 2^(trips-1)`, capped at `max_cooldown_s`, and never shorter than a
//! provider's `Retry-After` (itself capped at `max_cooldown_s`, so a
//! hostile or broken header cannot park a model for years). Inside a
//! `Retry-After` window (`quiet_until`) a model is never probed, not even
//! when every breaker is open. HalfOpen -> Closed after `recovery_threshold`
//! consecutive successes; a failure while half-open opens it again with a
//! longer cool-down.
//!
//! While half-open, one call at a time probes the model: `probe` is the
//! ticket of the call that started probing (a measured call took its held
//! ticket, or a caller took a selection to call the provider itself). It
//! counts only while that ticket is live, so a selection never called, or
//! cancelled, expired or superseded, blocks no probe.

use crate::error::{non_negative, CoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A change of breaker state caused by one call, for callbacks and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    HalfOpened,
    Closed,
}

impl Transition {
    /// The state a transition moves the breaker to, as health callbacks and
    /// the shared state's messages name it; `None` when nothing changed.
    pub fn state_name(self) -> Option<&'static str> {
        match self {
            Transition::None => None,
            Transition::Opened => Some("opened"),
            Transition::HalfOpened => Some("half_open"),
            Transition::Closed => Some("closed"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub recovery_threshold: u32,
    pub base_cooldown_s: f64,
    pub max_cooldown_s: f64,
    pub error_rate_threshold: f64,
    pub error_rate_window: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            recovery_threshold: 2,
            base_cooldown_s: 30.0,
            max_cooldown_s: 600.0,
            error_rate_threshold: 0.5,
            error_rate_window: 20,
        }
    }
}

impl BreakerConfig {
    /// A provider's `Retry-After`, capped at `max_cooldown_s`.
    pub fn cap_retry_after(&self, retry_after_s: f64) -> f64 {
        retry_after_s.min(self.max_cooldown_s)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        if self.failure_threshold == 0 {
            return Err(CoreError::invalid("failure_threshold", 0));
        }
        if self.recovery_threshold == 0 {
            return Err(CoreError::invalid("recovery_threshold", 0));
        }
        non_negative("base_cooldown_s", self.base_cooldown_s)?;
        non_negative("max_cooldown_s", self.max_cooldown_s)?;
        if self.max_cooldown_s < self.base_cooldown_s {
            return Err(CoreError::invalid("max_cooldown_s", self.max_cooldown_s));
        }
        if !(self.error_rate_threshold > 0.0 && self.error_rate_threshold <= 1.0) {
            return Err(CoreError::invalid(
                "error_rate_threshold",
                self.error_rate_threshold,
            ));
        }
        if self.error_rate_window == 0 {
            return Err(CoreError::invalid("error_rate_window", 0));
        }
        Ok(())
    }

    fn cooldown(&self, trips: u32) -> f64 {
        let factor = 2f64.powi(trips.saturating_sub(1).min(30) as i32);
        (self.base_cooldown_s * factor).min(self.max_cooldown_s)
    }
}

/// The breaker of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Trips since the breaker last closed; sets the cool-down.
    pub trips: u32,
    /// When (core clock, seconds) an open breaker may be probed.
    pub open_until: f64,
    /// Until when (core clock, seconds) the provider asked for quiet with
    /// `Retry-After`; never later than `open_until`.
    pub quiet_until: f64,
    /// Moving average of the failure indicator.
    pub error_rate: f64,
    pub outcomes_seen: u64,
    /// The ticket of the half-open probe call in flight, if one started (it
    /// counts while that ticket is live; see the module docs).
    pub probe: Option<u64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            consecutive_successes: 0,
            trips: 0,
            open_until: 0.0,
            quiet_until: 0.0,
            error_rate: 0.0,
            outcomes_seen: 0,
            probe: None,
        }
    }
}

impl Breaker {
    /// Whether selection may route a request here at `now`, moving an open
    /// breaker whose cool-down has passed to half-open.
    pub fn admit(&mut self, now: f64) -> (bool, Transition) {
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen => (true, Transition::None),
            BreakerState::Open if now >= self.open_until => {
                self.state = BreakerState::HalfOpen;
                self.consecutive_successes = 0;
                (true, Transition::HalfOpened)
            }
            BreakerState::Open => (false, Transition::None),
        }
    }

    /// Seconds until an open breaker lets a probe through; 0 otherwise.
    pub fn retry_in(&self, now: f64) -> f64 {
        if self.state == BreakerState::Open {
            (self.open_until - now).max(0.0)
        } else {
            0.0
        }
    }

    /// Seconds left of the provider's `Retry-After` window; 0 outside one.
    pub fn quiet_in(&self, now: f64) -> f64 {
        (self.quiet_until - now).max(0.0)
    }

    /// Whether the breaker would admit a request at `now`, without changing it.
    pub fn would_admit(&self, now: f64) -> bool {
        self.state != BreakerState::Open || now >= self.open_until
    }

    fn open(&mut self, cfg: &BreakerConfig, now: f64, at_least_s: f64) -> Transition {
        self.trips = self.trips.saturating_add(1);
        let cooldown = cfg.cooldown(self.trips).max(at_least_s);
        let was_open = self.state == BreakerState::Open;
        self.state = BreakerState::Open;
        self.open_until = self.open_until.max(now + cooldown);
        self.consecutive_successes = 0;
        if was_open {
            Transition::None
        } else {
            Transition::Opened
        }
    }

    /// Fold one outcome in. `retry_after_s` is the provider's `Retry-After`
    /// (0 when absent); `authentication` marks an authentication failure.
    pub fn record(
        &mut self,
        cfg: &BreakerConfig,
        now: f64,
        success: bool,
        authentication: bool,
        retry_after_s: f64,
    ) -> Transition {
        let retry_after_s = cfg.cap_retry_after(retry_after_s);
        self.outcomes_seen += 1;
        let alpha = 1.0 / f64::from(cfg.error_rate_window);
        let failed = if success { 0.0 } else { 1.0 };
        self.error_rate += alpha * (failed - self.error_rate);
        if success {
            self.consecutive_failures = 0;
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            if self.state == BreakerState::HalfOpen
                && self.consecutive_successes >= cfg.recovery_threshold
            {
                self.state = BreakerState::Closed;
                self.trips = 0;
                self.error_rate = 0.0;
                self.outcomes_seen = 0;
                return Transition::Closed;
            }
            if self.state == BreakerState::Open && now >= self.open_until {
                // A success reported by a request that was already in flight
                // counts as a probe.
                self.state = BreakerState::HalfOpen;
                return Transition::HalfOpened;
            }
            return Transition::None;
        }
        self.consecutive_successes = 0;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if retry_after_s > 0.0 {
            self.quiet_until = self.quiet_until.max(now + retry_after_s);
        }
        let rate_tripped = self.outcomes_seen >= u64::from(cfg.error_rate_window)
            && self.error_rate >= cfg.error_rate_threshold;
        let should_open = authentication
            || self.state == BreakerState::HalfOpen
            || self.consecutive_failures >= cfg.failure_threshold
            || rate_tripped
            || retry_after_s > 0.0;
        if !should_open {
            return Transition::None;
        }
        let at_least = if authentication {
            cfg.max_cooldown_s.max(retry_after_s)
        } else {
            retry_after_s
        };
        if self.state == BreakerState::Open {
            // Already open: a late failure only extends the cool-down.
            self.open_until = self.open_until.max(now + at_least);
            return Transition::None;
        }
        self.open(cfg, now, at_least)
    }

    /// Force a state, as an active health check concludes.
    pub fn force(&mut self, cfg: &BreakerConfig, now: f64, healthy: bool) -> Transition {
        if healthy {
            match self.state {
                // A passing active check ends the cool-down early; the
                // monitor does not probe a model inside its Retry-After.
                BreakerState::Open => {
                    self.state = BreakerState::HalfOpen;
                    self.consecutive_successes = 0;
                    Transition::HalfOpened
                }
                _ => Transition::None,
            }
        } else if self.state == BreakerState::Open {
            self.open_until = self.open_until.max(now + cfg.cooldown(self.trips));
            Transition::None
        } else {
            self.open(cfg, now, 0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        assert_eq!(b.record(&cfg, 0.0, false, false, 0.0), Transition::None);
        assert_eq!(b.record(&cfg, 0.0, false, false, 0.0), Transition::None);
        assert_eq!(b.record(&cfg, 0.0, false, false, 0.0), Transition::Opened);
        assert_eq!(b.admit(10.0), (false, Transition::None));
        assert_eq!(b.admit(30.0), (true, Transition::HalfOpened));
        assert_eq!(b.record(&cfg, 30.0, true, false, 0.0), Transition::None);
        assert_eq!(b.record(&cfg, 30.0, true, false, 0.0), Transition::Closed);
    }

    #[test]
    fn cooldown_grows_with_repeated_trips() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.record(&cfg, 0.0, false, false, 0.0);
        }
        assert_eq!(b.open_until, 30.0);
        b.admit(30.0);
        assert_eq!(b.record(&cfg, 30.0, false, false, 0.0), Transition::Opened);
        assert_eq!(b.open_until, 90.0);
    }

    #[test]
    fn authentication_opens_at_once_and_retry_after_is_honoured() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        assert_eq!(b.record(&cfg, 0.0, false, true, 0.0), Transition::Opened);
        assert_eq!(b.open_until, cfg.max_cooldown_s);
        let mut b = Breaker::default();
        assert_eq!(b.record(&cfg, 5.0, false, false, 120.0), Transition::Opened);
        assert_eq!(b.open_until, 125.0);
        let mut b = Breaker::default();
        assert_eq!(b.record(&cfg, 5.0, false, false, 1e300), Transition::Opened);
        assert_eq!(b.open_until, 5.0 + cfg.max_cooldown_s);
    }

    #[test]
    fn retry_after_sets_a_quiet_window_inside_the_cooldown() {
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        b.record(&cfg, 5.0, false, false, 120.0);
        assert_eq!(b.quiet_in(5.0), 120.0);
        assert_eq!(b.quiet_in(200.0), 0.0);
        assert!(b.quiet_until <= b.open_until);
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.record(&cfg, 0.0, false, false, 0.0);
        }
        assert_eq!(b.quiet_in(0.0), 0.0, "no Retry-After, no quiet window");
    }

    #[test]
    fn zero_thresholds_are_rejected() {
        let cfg = BreakerConfig {
            failure_threshold: 0,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("failure_threshold"));
    }
}
