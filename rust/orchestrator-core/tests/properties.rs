//! Properties of the table over random models, requests and outcomes.

use orchestrator_core::{
    BreakerConfig, Constraints, ModelSpec, Outcome, RewardWeights, Strategy as Scoring,
    StrategyConfig, Table, Verdict,
};
use proptest::prelude::*;

fn spec(i: usize, caps: u32, context: u32, price: Option<f64>, speed: Option<f64>) -> ModelSpec {
    ModelSpec {
        name: format!("m{i}"),
        provider: "p".to_owned(),
        capabilities: caps,
        context_length: context,
        input_price_per_million: price.unwrap_or(0.0),
        output_price_per_million: price.unwrap_or(0.0) * 2.0,
        request_fee: 0.0,
        priced: price.is_some(),
        declared_speed: speed,
        limits: Default::default(),
        tags: Vec::new(),
        deployment: None,
    }
}

fn scoring() -> impl Strategy<Value = Scoring> {
    prop_oneof![
        Just(Scoring::Ucb),
        Just(Scoring::Thompson),
        Just(Scoring::CostBased),
        Just(Scoring::Performance),
    ]
}

proptest! {
    #[test]
    fn selection_honours_constraints_and_counts_are_conserved(
        kind in scoring(),
        discount in prop_oneof![Just(1.0), 0.9f64..1.0],
        models in prop::collection::vec(
            (0u32..16, 0u32..200_000, prop::option::of(0.0f64..50.0), prop::option::of(0.0f64..300.0)),
            1..10,
        ),
        required in 0u32..16,
        max_cost in prop::option::of(0.0f64..0.02),
        min_speed in prop::option::of(0.0f64..300.0),
        context in prop::option::of(1i64..150_000),
        outcomes in prop::collection::vec((any::<bool>(), 0.0f64..30.0, 0u64..2000), 0..60),
    ) {
        let config = StrategyConfig::new(kind, 2.0, 3, 0.95, discount).unwrap();
        let mut table = Table::new(config, RewardWeights::default(), BreakerConfig::default()).unwrap();
        for (i, (caps, ctx, price, speed)) in models.iter().enumerate() {
            table.register(spec(i, *caps, *ctx, *price, *speed)).unwrap();
        }
        let c = Constraints::new(required, max_cost, min_speed, context, vec![], None, None).unwrap();
        let mut reported = 0u64;
        for (success, latency, tokens) in outcomes {
            let Some(sel) = table.select(&c) else { break };
            let chosen = table.explain(&c).into_iter().find(|e| e.slot == sel.slot).unwrap();
            // The chosen model satisfies every request constraint (health may
            // fall back to the soonest-recovering model, which is allowed).
            if let Verdict::Rejected(r) = chosen.verdict {
                prop_assert_eq!(r.constraint(), "health");
            }
            let outcome = Outcome {
                success,
                error_class: if success { 0 } else { 5 },
                latency_s: latency,
                output_tokens: tokens,
                ..Default::default()
            };
            table.report(sel.slot, Some(sel.ticket), &outcome).unwrap();
            reported += 1;
        }
        let total: u64 = (0..models.len() as u32).map(|s| table.snapshot(s).unwrap().requests).sum();
        prop_assert_eq!(total, reported);
        prop_assert_eq!(table.outstanding_tickets(), 0);
        for score in table.scores(&c) {
            prop_assert!(!score.is_nan());
        }
    }
}

proptest! {
    /// Whatever the strategy, discount (down to the smallest allowed),
    /// exploration and outcomes, every score and explanation part is a
    /// finite number (`+inf` score and bonus for a forced trial, `-inf` for
    /// an ineligible model), the model selection takes has the top score,
    /// and explaining never changes what the next selection picks.
    #[test]
    fn scores_are_never_nan_or_infinite(
        kind in scoring(),
        discount in prop_oneof![Just(1.0), Just(orchestrator_core::strategy::MIN_DISCOUNT), 1e-6f64..1.0],
        exploration in prop_oneof![Just(0.0), 0.0f64..1e6],
        outcomes in prop::collection::vec(
            (any::<bool>(), 0.0f64..=orchestrator_core::outcome::MAX_LATENCY_S, 0u64..=orchestrator_core::outcome::MAX_TOKENS, prop::option::of(0.0f64..=1.0), 0.0f64..1e6),
            0..80,
        ),
    ) {
        let config = StrategyConfig::new(kind, exploration, 1, 0.95, discount).unwrap();
        let mut table = Table::new(config, RewardWeights::default(), BreakerConfig::default()).unwrap();
        for i in 0..4 {
            table.register(spec(i, 1, 8192, Some(1.0), Some(50.0))).unwrap();
        }
        let c = Constraints::new(0, None, None, None, vec![], None, None).unwrap();
        for (success, latency, tokens, quality, cost) in outcomes {
            let peeked = table.pick(&c).map(|(slot, _, _)| slot);
            let mut top = f64::NEG_INFINITY;
            for e in table.explain(&c) {
                if let Verdict::Eligible(p) = e.verdict {
                    prop_assert!(p.estimate.is_finite());
                    if p.forced {
                        prop_assert!(p.score == f64::INFINITY && p.exploration_bonus == f64::INFINITY);
                    } else {
                        prop_assert!(p.score.is_finite() && p.exploration_bonus.is_finite());
                    }
                    top = top.max(p.score);
                }
            }
            let scores = table.scores(&c);
            for score in &scores {
                prop_assert!(!score.is_nan());
            }
            if let Some(slot) = peeked {
                prop_assert_eq!(scores[slot], top, "the model taken has the top score");
            }
            let Some(sel) = table.select(&c) else { break };
            prop_assert_eq!(Some(sel.slot as usize), peeked);
            let outcome = Outcome {
                success,
                error_class: if success { 0 } else { 5 },
                latency_s: latency,
                output_tokens: tokens,
                cost_usd: Some(cost),
                quality,
                ..Default::default()
            };
            table.report(sel.slot, Some(sel.ticket), &outcome).unwrap();
        }
    }
}
