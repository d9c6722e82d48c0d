//! The rate-limit windows against a naive model that keeps every
//! reservation ever made and counts the ones of the last 60 s.

mod common;

use common::plain_spec;
use orchestrator_core::limits::{Limits, ProviderLimits, RateLimits, Reservation, WINDOW_S};
use orchestrator_core::Rejection;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Move the clock on by this many quarter seconds (exact in f64, so
    /// entries land exactly on window boundaries).
    Advance(u32),
    Select(u64),
    Cancel(usize),
    Reconcile(usize, u64),
    Unselected(u64),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..80).prop_map(Op::Advance),
        5 => (0u64..400).prop_map(Op::Select),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (any::<usize>(), 0u64..600).prop_map(|(k, t)| Op::Reconcile(k, t)),
        1 => (0u64..400).prop_map(Op::Unselected),
        1 => Just(Op::Sweep),
    ]
}

/// Every reservation ever made: `(at, tokens, live, seq)`.
#[derive(Default)]
struct Naive {
    entries: Vec<(f64, u64, bool, u64)>,
}

impl Naive {
    fn used(&self, now: f64) -> (u32, u64) {
        self.entries
            .iter()
            .filter(|e| e.2 && e.0 + WINDOW_S > now)
            .fold((0, 0), |(r, t), e| (r + 1, t + e.1))
    }

    fn fits(&self, now: f64, limits: RateLimits, needed: u64) -> bool {
        let (r, t) = self.used(now);
        limits.rpm.is_none_or(|rpm| r < rpm) && limits.tpm.is_none_or(|tpm| t + needed <= tpm)
    }

    /// Seconds from `now` to the first time the request fits, if ever.
    fn wait(&self, now: f64, limits: RateLimits, needed: u64) -> Option<f64> {
        if limits.tpm.is_some_and(|tpm| needed > tpm) {
            return None;
        }
        if self.fits(now, limits, needed) {
            return Some(0.0);
        }
        let mut times: Vec<f64> = self
            .entries
            .iter()
            .filter(|e| e.2 && e.0 + WINDOW_S > now)
            .map(|e| e.0 + WINDOW_S)
            .collect();
        times.sort_by(f64::total_cmp);
        times
            .into_iter()
            .find(|&t| self.fits(t, limits, needed))
            .map(|t| t - now)
    }

    /// The k-th live reservation made by a selection.
    fn live(&self, k: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].2 && self.entries[i].3 != 0)
            .collect();
        (!live.is_empty()).then(|| live[k % live.len()])
    }
}

fn limits() -> impl Strategy<Value = RateLimits> {
    (prop::option::of(1u32..8), prop::option::of(100u64..2000))
        .prop_filter("at least one limit", |(r, t)| r.is_some() || t.is_some())
        .prop_map(|(rpm, tpm)| RateLimits { rpm, tpm })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Admission, the counts and "next slot in" are exactly the naive
    /// model's, whatever mix of selections, cancellations, reconciliations,
    /// unselected calls, sweeps and clock moves.
    #[test]
    fn the_window_is_exact(limits in limits(), ops in prop::collection::vec(op(), 1..120)) {
        let mut window = Limits::default();
        window.reset(0, limits);
        let mut naive = Naive::default();
        let mut now = 0.0f64;
        let none = ProviderLimits::default();
        for op in ops {
            match op {
                Op::Advance(quarters) => now += f64::from(quarters) / 4.0,
                Op::Select(needed) => {
                    let got = window.admits(0, needed, now);
                    let expected = naive.fits(now, limits, needed)
                        && limits.tpm.is_none_or(|tpm| needed <= tpm);
                    prop_assert_eq!(got.is_ok(), expected, "{:?} at {}", got, now);
                    match got {
                        Ok(()) => {
                            let seq = window.reserve(0, needed, now);
                            prop_assert!(seq != 0);
                            naive.entries.push((now, needed, true, seq));
                        }
                        Err(rejection) => {
                            let wait = naive.wait(now, limits, needed);
                            prop_assert_eq!(rejection.retry_in(), wait);
                            let (r, t) = naive.used(now);
                            match rejection {
                                Rejection::RequestLimit { used, .. } => prop_assert_eq!(used, r),
                                Rejection::TokenLimit { used, retry_in_s: Some(_), .. } => {
                                    prop_assert_eq!(used, t)
                                }
                                Rejection::TokenLimit { retry_in_s: None, .. } => {}
                                other => prop_assert!(false, "unexpected {:?}", other),
                            }
                        }
                    }
                }
                Op::Cancel(k) => {
                    if let Some(i) = naive.live(k) {
                        window.cancel(0, naive.entries[i].3);
                        naive.entries[i].2 = false;
                    }
                }
                Op::Reconcile(k, tokens) => {
                    if let Some(i) = naive.live(k) {
                        window.settle(0, Reservation::Held(naive.entries[i].3), tokens, &none, 0, now);
                        // Reconciling changes the count only while it is in the window.
                        if naive.entries[i].0 + WINDOW_S > now {
                            naive.entries[i].1 = tokens;
                        }
                        naive.entries[i].3 = 0; // reported: no longer cancellable
                    }
                }
                Op::Unselected(tokens) => {
                    window.settle(0, Reservation::Unselected, tokens, &none, 0, now);
                    naive.entries.push((now, tokens, true, 0));
                }
                Op::Sweep => window.sweep_due(now),
            }
            let state = window.state(0, now);
            prop_assert_eq!((state.requests, state.tokens), naive.used(now));
        }
    }
}

fn limited_spec(i: usize, rpm: Option<u32>, tpm: Option<u64>) -> orchestrator_core::ModelSpec {
    orchestrator_core::ModelSpec {
        limits: RateLimits { rpm, tpm },
        ..plain_spec(&format!("m{i}"))
    }
}

#[derive(Debug, Clone)]
enum TableOp {
    Advance(u32),
    Select(u32),
    Report(usize, u64),
    Cancel(usize),
}

fn table_op() -> impl Strategy<Value = TableOp> {
    prop_oneof![
        2 => (0u32..40).prop_map(TableOp::Advance),
        6 => (0u32..300).prop_map(TableOp::Select),
        2 => (any::<usize>(), 0u64..500).prop_map(|(k, t)| TableOp::Report(k, t)),
        1 => any::<usize>().prop_map(TableOp::Cancel),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Through the table: selection never admits a model beyond its window,
    /// a model is rejected for its rate limit exactly when its window cannot
    /// take the request, and explaining agrees with selecting.
    #[test]
    fn the_table_never_admits_beyond_a_window(
        limits in prop::collection::vec((prop::option::of(1u32..6), prop::option::of(200u64..1500)), 1..4),
        ops in prop::collection::vec(table_op(), 1..150),
    ) {
        use orchestrator_core::{Constraints, Table, Verdict};
        let mut table = Table::default();
        table.use_virtual_clock();
        for (i, (rpm, tpm)) in limits.iter().enumerate() {
            table.register(limited_spec(i, *rpm, *tpm)).unwrap();
        }
        let mut tickets: Vec<(u32, u64)> = Vec::new();
        for op in ops {
            match op {
                TableOp::Advance(quarters) => table.advance_clock(f64::from(quarters) / 4.0).unwrap(),
                TableOp::Select(output) => {
                    let c = Constraints::new(0, None, None, None, vec![], Some(0), Some(i64::from(output))).unwrap();
                    let explained = table.explain(&c);
                    let eligible: Vec<u32> = explained.iter().filter_map(|e| match &e.verdict {
                        Verdict::Eligible(_) => Some(e.slot),
                        Verdict::Rejected(r) => {
                            assert_eq!(r.constraint(), "rate_limit");
                            None
                        }
                    }).collect();
                    match table.select(&c) {
                        Some(sel) => {
                            prop_assert!(eligible.contains(&sel.slot));
                            tickets.push((sel.slot, sel.ticket));
                        }
                        None => prop_assert!(eligible.is_empty()),
                    }
                }
                TableOp::Report(k, tokens) => {
                    if !tickets.is_empty() {
                        let (slot, ticket) = tickets.swap_remove(k % tickets.len());
                        let outcome = orchestrator_core::Outcome {
                            success: true,
                            latency_s: 0.1,
                            output_tokens: tokens,
                            ..Default::default()
                        };
                        table.report(slot, Some(ticket), &outcome).unwrap();
                    }
                }
                TableOp::Cancel(k) => {
                    if !tickets.is_empty() {
                        let (slot, ticket) = tickets.swap_remove(k % tickets.len());
                        table.cancel(slot, ticket, k % 2 == 0).unwrap();
                    }
                }
            }
            for (i, (rpm, _)) in limits.iter().enumerate() {
                let w = table.window(i as u32).unwrap();
                if let Some(rpm) = rpm {
                    prop_assert!(w.requests <= *rpm, "{} > rpm {}", w.requests, rpm);
                }
            }
        }
    }
}
