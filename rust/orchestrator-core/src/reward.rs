//! The reward of one outcome, a number in `[0, 1]` that the bandit maximises.
//!
//! A failure scores 0. A success scores the weighted mean of
//! * `1` for succeeding (weight `success`),
//! * `latency_ref / (latency_ref + latency)` (weight `latency`),
//! * `cost_ref / (cost_ref + cost)` (weight `cost`),
//! * the caller's quality score in `[0, 1]`, when one was given (weight `quality`).
//!
//! Only the weights' ratios matter, so any finite weights are accepted: the
//! mean is taken over the weights scaled by 1/4 (exact in binary floating
//! point), so even four weights near `f64::MAX` sum without overflow.

use crate::error::{non_negative, CoreError};

/// Weights and reference points of the reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardWeights {
    pub success: f64,
    pub latency: f64,
    pub cost: f64,
    pub quality: f64,
    /// Latency (seconds) that scores one half.
    pub latency_ref_s: f64,
    /// Cost (USD per request) that scores one half.
    pub cost_ref_usd: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights {
            success: 1.0,
            latency: 0.5,
            cost: 0.25,
            quality: 1.0,
            latency_ref_s: 2.0,
            cost_ref_usd: 0.01,
        }
    }
}

impl RewardWeights {
    /// Check every weight is finite and non-negative, the references positive,
    /// and at least the success weight is positive.
    pub fn validate(&self) -> Result<(), CoreError> {
        non_negative("reward_weights.success", self.success)?;
        non_negative("reward_weights.latency", self.latency)?;
        non_negative("reward_weights.cost", self.cost)?;
        non_negative("reward_weights.quality", self.quality)?;
        if self.success <= 0.0 {
            return Err(CoreError::invalid("reward_weights.success", self.success));
        }
        if !(self.latency_ref_s.is_finite() && self.latency_ref_s > 0.0) {
            return Err(CoreError::invalid(
                "reward_weights.latency_ref_s",
                self.latency_ref_s,
            ));
        }
        if !(self.cost_ref_usd.is_finite() && self.cost_ref_usd > 0.0) {
            return Err(CoreError::invalid(
                "reward_weights.cost_ref_usd",
                self.cost_ref_usd,
            ));
        }
        Ok(())
    }

    /// Reward of one outcome. Inputs are assumed validated (finite, >= 0).
    pub fn reward(
        &self,
        success: bool,
        latency_s: f64,
        cost_usd: f64,
        quality: Option<f64>,
    ) -> f64 {
        if !success {
            return 0.0;
        }
        const SCALE: f64 = 0.25;
        let mut total = self.success * SCALE;
        let mut weight = self.success * SCALE;
        total += self.latency * SCALE * self.latency_ref_s / (self.latency_ref_s + latency_s);
        weight += self.latency * SCALE;
        total += self.cost * SCALE * self.cost_ref_usd / (self.cost_ref_usd + cost_usd);
        weight += self.cost * SCALE;
        if let Some(q) = quality {
            total += self.quality * SCALE * q;
            weight += self.quality * SCALE;
        }
        (total / weight).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_is_zero_and_success_is_positive() {
        let w = RewardWeights::default();
        assert_eq!(w.reward(false, 0.1, 0.0, Some(1.0)), 0.0);
        let r = w.reward(true, 100.0, 10.0, None);
        assert!(r > 0.0 && r <= 1.0);
    }

    #[test]
    fn faster_and_cheaper_is_better() {
        let w = RewardWeights::default();
        assert!(w.reward(true, 0.1, 0.0, None) > w.reward(true, 5.0, 0.0, None));
        assert!(w.reward(true, 1.0, 0.0001, None) > w.reward(true, 1.0, 0.5, None));
        assert!(w.reward(true, 1.0, 0.0, Some(1.0)) > w.reward(true, 1.0, 0.0, Some(0.0)));
    }

    #[test]
    fn huge_weights_give_the_same_finite_reward_as_their_ratios() {
        let huge = RewardWeights {
            success: f64::MAX,
            latency: f64::MAX,
            cost: f64::MAX,
            quality: f64::MAX,
            ..Default::default()
        };
        let unit = RewardWeights {
            success: 1.0,
            latency: 1.0,
            cost: 1.0,
            quality: 1.0,
            ..Default::default()
        };
        let r = huge.reward(true, 0.5, 0.001, Some(0.5));
        assert!(r.is_finite());
        assert!((r - unit.reward(true, 0.5, 0.001, Some(0.5))).abs() < 1e-12);
    }

    #[test]
    fn bad_weights_are_rejected() {
        let w = RewardWeights {
            latency: f64::NAN,
            ..Default::default()
        };
        assert!(w.validate().is_err());
        let w = RewardWeights {
            success: 0.0,
            ..Default::default()
        };
        assert!(w.validate().is_err());
    }
}
