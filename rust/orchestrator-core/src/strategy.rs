//! How eligible models are scored.
//!
//! * `Ucb`: mean reward plus `sqrt(exploration_factor * ln(N) / n)` (UCB1),
//!   after `min_trials` forced trials per model. With `discount < 1` each past
//!   outcome's weight decays by `discount` per reported outcome (discounted
//!   UCB), so the estimate follows a provider whose quality drifts.
//! * `Thompson`: Gaussian Thompson sampling: each model's score is a draw
//!   from `N(mean, (v + 1/(n+1)) / (n+1) * exploration_factor / 2)`, after
//!   `min_trials` forced trials; it explores in proportion to how likely a
//!   model is to be the best, which usually costs less than UCB's bonus.
//! * `CostBased`: the cheapest expected request, ties broken by mean reward.
//! * `Performance`: the best mean reward, after `min_trials` forced trials.
//!
//! A forced trial's exploration bonus (and so its score) is `+inf`: it is
//! taken before any scored model, the one with the fewest outcomes first, so
//! the top score of an explanation is always the model selection takes.

use crate::error::{unit_interval, CoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Ucb,
    Thompson,
    CostBased,
    Performance,
}

/// The smallest `discount` accepted: below it the running weight
/// (`1/discount` per outcome) would overflow before it is rescaled, and the
/// scores would stop being finite numbers.
pub const MIN_DISCOUNT: f64 = 1e-6;

/// A name `selection_strategy` (and the configuration's `[selection]
/// strategy`) accepts: a strategy, and the discount it means when none is
/// given. Each strategy has one name; `discounted_ucb` and
/// `discounted_thompson` are UCB and Thompson sampling with
/// [`PRESET_DISCOUNT`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrategyName {
    pub name: &'static str,
    pub strategy: Strategy,
    pub discount: f64,
}

/// The discount of the `discounted_*` names when none is given.
pub const PRESET_DISCOUNT: f64 = 0.999;

/// Every name a registry or configuration accepts for its strategy.
pub const STRATEGY_NAMES: [StrategyName; 6] = [
    StrategyName::of(Strategy::Ucb, "ucb", 1.0),
    StrategyName::of(Strategy::Ucb, "discounted_ucb", PRESET_DISCOUNT),
    StrategyName::of(Strategy::Thompson, "thompson", 1.0),
    StrategyName::of(Strategy::Thompson, "discounted_thompson", PRESET_DISCOUNT),
    StrategyName::of(Strategy::CostBased, "cost", 1.0),
    StrategyName::of(Strategy::Performance, "performance", 1.0),
];

impl StrategyName {
    const fn of(strategy: Strategy, name: &'static str, discount: f64) -> Self {
        StrategyName {
            name,
            strategy,
            discount,
        }
    }
}

impl Strategy {
    /// Every strategy, each known by [`Strategy::name`].
    pub const ALL: [Strategy; 4] = [
        Strategy::Ucb,
        Strategy::Thompson,
        Strategy::CostBased,
        Strategy::Performance,
    ];

    /// The strategy of this name (one name per strategy: no aliases).
    pub fn from_name(name: &str) -> Result<Strategy, CoreError> {
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
                CoreError::invalid(
                    "strategy",
                    format!("{name:?}; choose one of {}", known.join(", ")),
                )
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Ucb => "ucb",
            Strategy::Thompson => "thompson",
            Strategy::CostBased => "cost",
            Strategy::Performance => "performance",
        }
    }
}

/// A strategy and its parameters, validated by [`StrategyConfig::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrategyConfig {
    pub strategy: Strategy,
    pub exploration_factor: f64,
    pub min_trials: u32,
    pub confidence_level: f64,
    pub discount: f64,
    /// Two-sided normal quantile of `confidence_level`, for intervals.
    pub z: f64,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig::new(Strategy::Ucb, 2.0, 5, 0.95, 1.0).expect("defaults are valid")
    }
}

impl StrategyConfig {
    pub fn new(
        strategy: Strategy,
        exploration_factor: f64,
        min_trials: u32,
        confidence_level: f64,
        discount: f64,
    ) -> Result<Self, CoreError> {
        if !(exploration_factor.is_finite() && exploration_factor >= 0.0) {
            return Err(CoreError::invalid("exploration_factor", exploration_factor));
        }
        if !(confidence_level.is_finite() && confidence_level > 0.0 && confidence_level < 1.0) {
            return Err(CoreError::invalid("confidence_level", confidence_level));
        }
        unit_interval("discount", discount)?;
        if discount < MIN_DISCOUNT {
            return Err(CoreError::invalid(
                "discount",
                format!("{discount} (at least {MIN_DISCOUNT}, at most 1)"),
            ));
        }
        Ok(StrategyConfig {
            strategy,
            exploration_factor,
            min_trials,
            confidence_level,
            discount,
            z: normal_quantile(0.5 + confidence_level / 2.0),
        })
    }
}

/// Inverse of the standard normal CDF (Acklam's rational approximation,
/// relative error below 1.2e-9), for `p` in `(0, 1)`.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.995) - 2.575_829).abs() < 1e-5);
        assert!((normal_quantile(0.01) + 2.326_348).abs() < 1e-5);
    }

    #[test]
    fn invalid_parameters_are_named() {
        let err = StrategyConfig::new(Strategy::Ucb, f64::NAN, 5, 0.95, 1.0).unwrap_err();
        assert!(err.to_string().contains("exploration_factor"));
        let err = StrategyConfig::new(Strategy::Ucb, 2.0, 5, 1.0, 1.0).unwrap_err();
        assert!(err.to_string().contains("confidence_level"));
        let err = StrategyConfig::new(Strategy::Ucb, 2.0, 5, 0.9, 0.0).unwrap_err();
        assert!(err.to_string().contains("discount"));
        let err = StrategyConfig::new(Strategy::Ucb, 2.0, 5, 0.9, 1e-320).unwrap_err();
        assert!(err.to_string().contains("discount"));
    }

    #[test]
    fn each_strategy_has_one_name() {
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::from_name(strategy.name()), Ok(strategy));
        }
        for alias in ["cost_based", "discounted_ucb", "ubc"] {
            let err = Strategy::from_name(alias).unwrap_err().to_string();
            assert!(err.contains(alias) && err.contains("ucb, thompson, cost, performance"));
        }
        let names: Vec<&str> = STRATEGY_NAMES.iter().map(|n| n.name).collect();
        assert!(!names.contains(&"cost_based"));
        for named in STRATEGY_NAMES {
            let config = StrategyConfig::new(named.strategy, 2.0, 5, 0.95, named.discount);
            assert!(config.is_ok(), "{} is valid", named.name);
        }
    }
}
