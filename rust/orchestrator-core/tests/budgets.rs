//! Spend budgets through the table, against a naive model that keeps every
//! reservation and every spend with its time and sums them per UTC period.

mod common;

use common::plain_spec;
use orchestrator_core::budgets::{nanos, Period, Scope, NANOS_PER_USD};
use orchestrator_core::{BudgetSpec, Constraints, ModelSpec, Outcome, Rejection, Table, Verdict};
use proptest::prelude::*;

/// 2026-12-31 23:58:00 UTC: minute, hour, day and month all end within 120 s.
const START_UNIX: f64 = 1_798_761_480.0;

/// Model `name` of `provider` costing a flat `fee` USD per request.
fn flat(name: &str, provider: &str, fee: f64) -> ModelSpec {
    ModelSpec {
        provider: provider.to_owned(),
        input_price_per_million: 0.0,
        output_price_per_million: 0.0,
        request_fee: fee,
        ..plain_spec(name)
    }
}

fn budget(name: &str, scope: Scope, limit_usd: f64, period: Period) -> BudgetSpec {
    BudgetSpec::new(name, scope, limit_usd, period)
}

fn table() -> Table {
    let mut t = Table::default();
    t.use_virtual_clock();
    t.set_wall_clock(START_UNIX).unwrap();
    t
}

fn request(t: &Table, tenant: Option<&str>) -> Constraints {
    Constraints {
        tenant: tenant.and_then(|name| t.tenant_budgets(name)),
        ..Constraints::new(0, None, None, None, vec![], Some(0), Some(0)).unwrap()
    }
}

fn ok(cost: f64) -> Outcome {
    Outcome {
        success: true,
        latency_s: 0.1,
        cost_usd: Some(cost),
        ..Default::default()
    }
}

#[test]
fn a_spent_provider_budget_refuses_with_its_figures_and_reset() {
    let mut t = table();
    t.register(flat("a", "openai", 0.01)).unwrap();
    t.register(flat("b", "openai", 0.01)).unwrap();
    t.register(flat("c", "other", 0.01)).unwrap();
    t.add_budget(budget(
        "openai-day",
        Scope::Provider("openai".into()),
        0.02,
        Period::Day,
    ))
    .unwrap();
    let c = request(&t, None);
    let first = t.select(&c).unwrap();
    t.report(first.slot, Some(first.ticket), &ok(0.01)).unwrap();
    // Forced trials go in slot order: b is in flight, then a call made
    // without a selection spends openai's day.
    let in_flight = t.select(&c).unwrap();
    assert_eq!(in_flight.slot, 1);
    t.record_call(0, None, &ok(0.01)).unwrap();
    let why = t.explain(&c);
    let Verdict::Rejected(reason) = &why[0].verdict else {
        panic!("a spent budget admitted a: {:?}", why[0].verdict)
    };
    assert_eq!(reason.constraint(), "budget");
    assert!(
        reason
            .describe()
            .starts_with("provider openai day $0.02/$0.02 spent (reserved $0.01)"),
        "{}",
        reason.describe()
    );
    assert!(
        reason.describe().ends_with("resets in 2 min 0 s"),
        "{}",
        reason.describe()
    );
    assert_eq!(reason.retry_in(), None, "a day budget is not waited for");
    assert!(
        matches!(why[2].verdict, Verdict::Eligible(_)),
        "another provider is free"
    );
    // After midnight UTC the day starts again.
    t.advance_clock(120.0).unwrap();
    assert!(matches!(t.explain(&c)[0].verdict, Verdict::Eligible(_)));
}

#[test]
fn a_minute_budget_is_worth_waiting_for_and_a_too_large_request_never_fits() {
    let mut t = table();
    t.register(flat("a", "p", 0.5)).unwrap();
    t.add_budget(budget("m", Scope::Model("a".into()), 0.4, Period::Minute))
        .unwrap();
    let c = request(&t, None);
    assert!(t.select(&c).is_none());
    match &t.explain(&c)[0].verdict {
        Verdict::Rejected(r) => {
            assert_eq!(r.retry_in(), None);
            assert!(r
                .describe()
                .contains("expected cost $0.50 exceeds the limit $0.40"));
        }
        other => panic!("unexpected {other:?}"),
    }
    t.add_budget(budget("m2", Scope::Model("a".into()), 1.0, Period::Minute))
        .unwrap();
    t.remove_budget("m").unwrap();
    let sel = t.select(&c).unwrap();
    t.report(sel.slot, Some(sel.ticket), &ok(0.6)).unwrap();
    match &t.explain(&c)[0].verdict {
        Verdict::Rejected(r @ Rejection::Budget { resets_in_s, .. }) => {
            assert_eq!(r.retry_in(), Some(*resets_in_s));
            assert!((resets_in_s - 60.0).abs() < 1e-6, "{resets_in_s}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn cancelled_expired_and_stopped_tickets_settle_their_holds() {
    let mut t = table();
    t.register(flat("a", "p", 0.01)).unwrap();
    t.add_budget(budget("p", Scope::Provider("p".into()), 1.0, Period::Month))
        .unwrap();
    let c = request(&t, None);
    let state = |t: &Table| {
        let b = t.budget("p").unwrap();
        (b.spent, b.reserved)
    };
    let unsent = t.select(&c).unwrap();
    assert_eq!(state(&t), (0, nanos(0.01)));
    t.cancel(0, unsent.ticket, false).unwrap();
    assert_eq!(state(&t), (0, 0), "a cancelled selection returns its cost");
    let sent = t.select(&c).unwrap();
    t.cancel(0, sent.ticket, true).unwrap();
    assert_eq!(
        state(&t),
        (nanos(0.01), 0),
        "a sent one spends its estimate"
    );
    let stopped = t.select(&c).unwrap();
    t.cancel_spent(0, stopped.ticket, 0, 0, Some(0.003))
        .unwrap();
    assert_eq!(
        state(&t),
        (nanos(0.013), 0),
        "a stopped stream spends its use"
    );
    t.set_pending_timeout(1.0).unwrap();
    t.select(&c).unwrap();
    t.advance_clock(2.0).unwrap();
    t.sweep();
    assert_eq!(
        state(&t),
        (nanos(0.013), 0),
        "an expired ticket returns its cost"
    );
    assert_eq!(t.budget_holds(), 0);
    let bad = t.select(&c).unwrap();
    assert!(t.cancel_spent(0, bad.ticket, 0, 0, Some(f64::NAN)).is_err());
    assert_eq!(
        state(&t),
        (nanos(0.013), nanos(0.01)),
        "a refused stop changes nothing"
    );
}

#[test]
fn tenant_budgets_follow_their_requests_across_models() {
    let mut t = table();
    t.register(flat("a", "p", 0.01)).unwrap();
    t.register(flat("b", "q", 0.01)).unwrap();
    t.add_budget(budget(
        "acme",
        Scope::Tenant("acme".into()),
        0.03,
        Period::Hour,
    ))
    .unwrap();
    let acme = request(&t, Some("acme"));
    let other = request(&t, Some("other"));
    for _ in 0..3 {
        let sel = t.select(&acme).unwrap();
        t.report(sel.slot, Some(sel.ticket), &ok(0.01)).unwrap();
    }
    assert!(
        t.select(&acme).is_none(),
        "acme spent its hour on both models"
    );
    assert!(t.select(&other).is_some(), "other tenants are not covered");
    assert_eq!(t.budget("acme").unwrap().spent, 3 * nanos(0.01));
}

#[derive(Debug, Clone)]
enum Op {
    /// Move the clock on by this many seconds.
    Advance(u32),
    /// Select for a request of this tenant (index into TENANTS, or none).
    Select(Option<usize>),
    /// Report the k-th outstanding selection at this share of its estimate.
    Report(usize, u8),
    Cancel(usize, bool),
    /// A call without a selection, on this slot.
    Unselected(usize),
    /// Remove budget k and add it again (empty) while calls are in flight.
    Renew(usize),
}

const TENANTS: [&str; 2] = ["acme", "zeta"];
/// Flat fees per model, in nano-USD.
const FEES: [u64; 3] = [7_000_000, 11_000_000, 3_000_000];
const PROVIDERS: [&str; 3] = ["p0", "p0", "p1"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u32..40).prop_map(Op::Advance),
        6 => proptest::option::of(0usize..2).prop_map(Op::Select),
        4 => (any::<usize>(), 0u8..=150).prop_map(|(k, p)| Op::Report(k, p)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, s)| Op::Cancel(k, s)),
        1 => (0usize..3).prop_map(Op::Unselected),
        1 => (0usize..4).prop_map(Op::Renew),
    ]
}

/// What the naive model keeps: every spend with its UTC time, and the
/// budgets each outstanding selection reserved in.
struct Naive {
    /// `(scope check, limit nanos, period)` per budget.
    budgets: Vec<(Scope, u64, Period)>,
    spends: Vec<(usize, f64, u64)>,
    outstanding: Vec<(u32, u64, Vec<usize>, u64)>,
}

impl Naive {
    fn covering(&self, slot: usize, tenant: Option<usize>) -> Vec<usize> {
        (0..self.budgets.len())
            .filter(|&b| match &self.budgets[b].0 {
                Scope::Provider(p) => *p == PROVIDERS[slot],
                Scope::Model(m) => *m == format!("m{slot}"),
                Scope::Tenant(name) => tenant.is_some_and(|t| TENANTS[t] == name),
                Scope::Tag(_) => false,
            })
            .collect()
    }

    fn spent(&self, b: usize, unix: f64) -> u64 {
        let end = self.budgets[b].2.end_after(unix);
        self.spends
            .iter()
            .filter(|(x, at, _)| *x == b && self.budgets[b].2.end_after(*at) == end)
            .map(|s| s.2)
            .sum()
    }

    fn reserved(&self, b: usize) -> u64 {
        self.outstanding
            .iter()
            .filter(|o| o.2.contains(&b))
            .map(|o| o.1)
            .sum()
    }

    fn admits(&self, slot: usize, tenant: Option<usize>, unix: f64) -> bool {
        self.covering(slot, tenant).iter().all(|&b| {
            let used = self.spent(b, unix) + self.reserved(b);
            used < self.budgets[b].1 && used + FEES[slot] <= self.budgets[b].1
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn budgets_agree_with_a_naive_ledger_and_never_overspend(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut t = table();
        for slot in 0..3 {
            let fee = FEES[slot] as f64 / NANOS_PER_USD as f64;
            t.register(flat(&format!("m{slot}"), PROVIDERS[slot], fee)).unwrap();
        }
        let declared = [
            (Scope::Provider("p0".into()), 50_000_000, Period::Minute),
            (Scope::Model("m2".into()), 20_000_000, Period::Hour),
            (Scope::Tenant("acme".into()), 40_000_000, Period::Day),
            (Scope::Tenant("zeta".into()), 30_000_000, Period::Month),
        ];
        for (k, (scope, limit, period)) in declared.iter().enumerate() {
            let usd = *limit as f64 / NANOS_PER_USD as f64;
            t.add_budget(budget(&format!("b{k}"), scope.clone(), usd, *period)).unwrap();
        }
        let mut naive = Naive { budgets: declared.to_vec(), spends: vec![], outstanding: vec![] };
        // Whether every cost so far was at most its reservation: then no
        // budget may ever be over its limit.
        let mut within_estimates = true;
        for op in ops {
            let unix = t.unix_time();
            match op {
                Op::Advance(s) => t.advance_clock(f64::from(s)).unwrap(),
                Op::Select(tenant) => {
                    let c = request(&t, tenant.map(|i| TENANTS[i]));
                    let admitted: Vec<usize> =
                        (0..3).filter(|&s| naive.admits(s, tenant, unix)).collect();
                    match t.select(&c) {
                        Some(sel) => {
                            let slot = sel.slot as usize;
                            prop_assert!(admitted.contains(&slot), "{slot} was over budget");
                            let covered = naive.covering(slot, tenant);
                            naive.outstanding.push((sel.slot, FEES[slot], covered, sel.ticket));
                        }
                        None => prop_assert!(admitted.is_empty(), "{admitted:?} had room"),
                    }
                }
                Op::Report(k, share) if !naive.outstanding.is_empty() => {
                    let (slot, amount, covered, ticket) =
                        naive.outstanding.remove(k % naive.outstanding.len());
                    let cost = amount * u64::from(share) / 100;
                    within_estimates &= share <= 100;
                    let usd = cost as f64 / NANOS_PER_USD as f64;
                    t.report(slot, Some(ticket), &ok(usd)).unwrap();
                    for b in covered {
                        naive.spends.push((b, unix, nanos(usd)));
                    }
                }
                Op::Cancel(k, sent) if !naive.outstanding.is_empty() => {
                    let (slot, amount, covered, ticket) =
                        naive.outstanding.remove(k % naive.outstanding.len());
                    t.cancel(slot, ticket, sent).unwrap();
                    if sent {
                        for b in covered {
                            naive.spends.push((b, unix, amount));
                        }
                    }
                }
                Op::Unselected(slot) => {
                    within_estimates = false;
                    let usd = FEES[slot] as f64 / NANOS_PER_USD as f64;
                    t.record_call(slot as u32, None, &ok(usd)).unwrap();
                    for b in naive.covering(slot, None) {
                        naive.spends.push((b, unix, FEES[slot]));
                    }
                }
                Op::Renew(k) => {
                    let name = format!("b{k}");
                    t.remove_budget(&name).unwrap();
                    let (scope, limit, period) = declared[k].clone();
                    let usd = limit as f64 / NANOS_PER_USD as f64;
                    t.add_budget(budget(&name, scope, usd, period)).unwrap();
                    naive.spends.retain(|s| s.0 != k);
                    for o in &mut naive.outstanding {
                        o.2.retain(|&b| b != k);
                    }
                }
                Op::Report(..) | Op::Cancel(..) => {}
            }
            let unix = t.unix_time();
            for (b, state) in t.budgets().iter().enumerate() {
                prop_assert_eq!(state.spent, naive.spent(b, unix), "spent of b{}", b);
                prop_assert_eq!(state.reserved, naive.reserved(b), "reserved of b{}", b);
                if within_estimates {
                    prop_assert!(state.spent + state.reserved <= state.limit, "b{} overspent", b);
                }
            }
        }
        prop_assert_eq!(t.budget_holds(), naive.outstanding.len());
    }
}

#[test]
fn a_tag_budget_covers_the_models_carrying_the_tag() {
    let mut t = table();
    let eu = |name: &str| ModelSpec {
        tags: vec!["eu".to_owned()],
        ..flat(name, "p", 0.01)
    };
    t.register(eu("a")).unwrap();
    t.register(flat("b", "p", 0.01)).unwrap();
    t.add_budget(budget("eu", Scope::Tag("eu".into()), 0.01, Period::Day))
        .unwrap();
    t.register(eu("c")).unwrap();
    let c = request(&t, None);
    for slot in [0, 2] {
        t.record_call(slot, None, &ok(0.005)).unwrap();
    }
    t.record_call(1, None, &ok(0.5)).unwrap();
    assert_eq!(t.budget("eu").unwrap().spent, nanos(0.01), "a and c, not b");
    let why = t.explain(&c);
    assert!(matches!(
        why[0].verdict,
        Verdict::Rejected(Rejection::Budget { .. })
    ));
    assert!(matches!(why[1].verdict, Verdict::Eligible(_)));
    assert!(matches!(
        why[2].verdict,
        Verdict::Rejected(Rejection::Budget { .. })
    ));
    assert!(t
        .add_budget(budget("bad", Scope::Tag("EU".into()), 1.0, Period::Day))
        .unwrap_err()
        .to_string()
        .starts_with("invalid tag: \"EU\""));
}
