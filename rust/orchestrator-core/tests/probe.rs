//! The half-open probe is the call that started, not the selection: a
//! selection never called blocks nothing, a started call blocks every other
//! selection until its ticket is reported, cancelled or expires.

mod common;

use common::plain_spec;
use orchestrator_core::{
    BreakerConfig, BreakerState, Constraints, Outcome, Rejection, Table, Verdict,
};

fn half_open_table() -> Table {
    let mut table = Table::default();
    table.register(plain_spec("a")).unwrap();
    let failure = Outcome {
        success: false,
        error_class: 5,
        latency_s: 0.1,
        ..Default::default()
    };
    for _ in 0..BreakerConfig::default().failure_threshold {
        table.report(0, None, &failure).unwrap();
    }
    table
        .advance_clock(BreakerConfig::default().base_cooldown_s)
        .unwrap();
    table
}

fn any() -> Constraints {
    Constraints::new(0, None, None, None, vec![], None, None).unwrap()
}

fn rejection(table: &Table) -> Option<Rejection> {
    match &table.explain(&any())[0].verdict {
        Verdict::Rejected(r) => Some(r.clone()),
        Verdict::Eligible(_) => None,
    }
}

#[test]
fn only_a_started_call_probes() {
    let mut table = half_open_table();
    let never_called = table.select(&any()).unwrap();
    assert_eq!(table.breaker(0).unwrap().state, BreakerState::HalfOpen);
    assert_eq!(rejection(&table), None, "a selection alone blocks nothing");
    let probe = table.select(&any()).unwrap();
    table.start_call(0, probe.ticket).unwrap();
    assert_eq!(rejection(&table), Some(Rejection::ProbeInFlight));
    assert!(table.select(&any()).is_none());
    table.start_call(0, never_called.ticket).unwrap(); // a second call is no second probe
    table
        .report(
            0,
            Some(probe.ticket),
            &Outcome {
                success: true,
                latency_s: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(rejection(&table), None);
}

#[test]
fn a_cancelled_or_expired_probe_is_released_at_once() {
    let mut table = half_open_table();
    let probe = table.select(&any()).unwrap();
    table.start_call(0, probe.ticket).unwrap();
    table.cancel(0, probe.ticket, false).unwrap();
    assert_eq!(rejection(&table), None);
    let probe = table.select(&any()).unwrap();
    table.start_call(0, probe.ticket).unwrap();
    table.set_pending_timeout(5.0).unwrap();
    table.advance_clock(6.0).unwrap();
    assert_eq!(
        rejection(&table),
        None,
        "the expired probe's ticket no longer counts"
    );
    table.start_call(0, 999).unwrap(); // a stale ticket starts nothing
    assert_eq!(rejection(&table), None);
}
