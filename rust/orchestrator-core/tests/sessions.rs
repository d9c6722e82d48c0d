//! Session affinity in the table and under the contextual router: a session
//! stays on its model while that model passes every check, moves (and is
//! re-bound) when it does not, expires, is bounded, and never outlives its
//! model's registration.

mod common;

use common::plain_spec;
use orchestrator_core::contextual::RouterConfig;
use orchestrator_core::routing::{Prompted, Routing};
use orchestrator_core::sessions::SessionConfig;
use orchestrator_core::{
    capability_mask, Constraints, ModelSpec, Outcome, RateLimits, Rejection, SessionVerdict, Table,
};
use proptest::prelude::*;

fn table(names: &[&str]) -> Table {
    let mut t = Table::default();
    t.use_virtual_clock();
    for name in names {
        t.register(plain_spec(name)).unwrap();
    }
    t
}

fn in_session(t: &Table, id: &str) -> Constraints {
    Constraints {
        session: Some(t.session_key(id)),
        ..Constraints::new(0, None, None, None, vec![], None, None).unwrap()
    }
}

fn ok() -> Outcome {
    Outcome {
        success: true,
        latency_s: 0.1,
        ..Default::default()
    }
}

fn fail() -> Outcome {
    Outcome {
        success: false,
        error_class: 5,
        latency_s: 0.1,
        ..Default::default()
    }
}

/// Select for `c` and report success; the slot chosen.
fn turn(t: &mut Table, c: &Constraints) -> u32 {
    let sel = t.select(c).unwrap();
    t.report(sel.slot, Some(sel.ticket), &ok()).unwrap();
    sel.slot
}

#[test]
fn a_session_stays_on_its_model_while_it_is_healthy() {
    let mut t = table(&["a", "b", "c"]);
    let c = in_session(&t, "conversation");
    let first = turn(&mut t, &c);
    // Without a session, forced trials would send the next two elsewhere.
    for _ in 0..50 {
        assert_eq!(turn(&mut t, &c), first);
        t.advance_clock(1.0).unwrap();
    }
    match t.session_verdict(&c, t.now()).unwrap() {
        SessionVerdict::Kept { slot, bound_for_s } => {
            assert_eq!(slot, first);
            assert_eq!(bound_for_s, 50.0);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(t
        .describe_session(&t.session_verdict(&c, t.now()).unwrap())
        .starts_with("session: kept on "));
}

#[test]
fn a_session_moves_when_its_breaker_opens_and_is_rebound() {
    let mut t = table(&["a", "b"]);
    let c = in_session(&t, "s");
    let first = turn(&mut t, &c);
    for _ in 0..3 {
        t.report(first, None, &fail()).unwrap();
    }
    let verdict = t.session_verdict(&c, t.now()).unwrap();
    assert!(matches!(
        verdict,
        SessionVerdict::Moved { slot, why: Rejection::CircuitOpen { .. } } if slot == first
    ));
    assert!(t.describe_session(&verdict).starts_with(&format!(
        "session: moved from {} (circuit open",
        ["a", "b"][first as usize]
    )));
    let moved = turn(&mut t, &c);
    assert_ne!(moved, first);
    // Re-bound: it stays on the new model even after the old one recovers.
    t.record_health_check(first, true).unwrap();
    for _ in 0..10 {
        assert_eq!(turn(&mut t, &c), moved);
    }
}

#[test]
fn a_session_moves_when_the_rate_limit_fills() {
    let mut t = Table::default();
    t.use_virtual_clock();
    let limited = ModelSpec {
        limits: RateLimits {
            rpm: Some(3),
            tpm: None,
        },
        ..plain_spec("limited")
    };
    t.register(limited).unwrap();
    t.register(plain_spec("other")).unwrap();
    let c = in_session(&t, "s");
    assert_eq!(turn(&mut t, &c), 0);
    assert_eq!(turn(&mut t, &c), 0);
    assert_eq!(turn(&mut t, &c), 0);
    assert!(matches!(
        t.session_verdict(&c, t.now()),
        Some(SessionVerdict::Moved {
            slot: 0,
            why: Rejection::RequestLimit { .. }
        })
    ));
    assert_eq!(turn(&mut t, &c), 1);
}

#[test]
fn a_session_moves_when_the_request_excludes_its_model() {
    let mut t = Table::default();
    t.use_virtual_clock();
    let vision = capability_mask(["vision"]).unwrap();
    t.register(plain_spec("text")).unwrap();
    t.register(ModelSpec {
        capabilities: vision,
        ..plain_spec("seeing")
    })
    .unwrap();
    let plain = in_session(&t, "s");
    let first = turn(&mut t, &plain);
    let needs_vision = Constraints {
        required_capabilities: vision,
        ..plain.clone()
    };
    assert_eq!(turn(&mut t, &needs_vision), 1);
    if first == 0 {
        assert!(matches!(
            t.session_verdict(&needs_vision, t.now()),
            Some(SessionVerdict::Kept { slot: 1, .. })
        ));
    }
    let excluded = Constraints {
        exclude: vec![1],
        ..plain.clone()
    };
    assert_eq!(turn(&mut t, &excluded), 0);
    assert_eq!(
        turn(&mut t, &plain),
        0,
        "re-bound to the model that was taken"
    );
}

#[test]
fn a_session_expires_after_its_idle_ttl() {
    let mut t = table(&["a", "b"]);
    t.configure_sessions(SessionConfig::new(60.0, 100).unwrap());
    let c = in_session(&t, "s");
    turn(&mut t, &c);
    t.advance_clock(59.0).unwrap();
    assert!(matches!(
        t.session_verdict(&c, t.now()),
        Some(SessionVerdict::Kept { .. })
    ));
    t.advance_clock(2.0).unwrap();
    assert_eq!(t.session_verdict(&c, t.now()), Some(SessionVerdict::New));
    t.select(&in_session(&t, "other")).unwrap();
    assert_eq!(t.sessions().len(), 1, "the expired session was dropped");
}

#[test]
fn unregistering_drops_sessions_and_a_recycled_slot_inherits_none() {
    let mut t = table(&["a", "b"]);
    let c = in_session(&t, "s");
    let first = turn(&mut t, &c);
    let name = ["a", "b"][first as usize];
    t.unregister(name).unwrap();
    assert_eq!(t.sessions().len(), 0);
    let recycled = t.register(plain_spec("newcomer")).unwrap();
    assert_eq!(recycled, first, "the slot is recycled");
    assert_eq!(t.session_verdict(&c, t.now()), Some(SessionVerdict::New));
}

#[test]
fn memory_stays_bounded_under_a_hundred_thousand_random_ids() {
    let mut t = table(&["a", "b"]);
    t.configure_sessions(SessionConfig::new(3600.0, 1000).unwrap());
    let mut seed = 0x1234_5678_u64;
    for _ in 0..100_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let c = in_session(&t, &format!("{seed:x}"));
        let sel = t.select(&c).unwrap();
        t.cancel(sel.slot, sel.ticket, false).unwrap();
    }
    let sessions = t.sessions();
    assert_eq!(sessions.len(), 1000);
    assert!(sessions.allocated() <= 1000);
    assert_eq!(sessions.evicted(), 99_000);
}

#[test]
fn the_contextual_router_keeps_a_session_on_its_model() {
    let mut t = table(&["cheap", "strong"]);
    let mut routing = Routing::new(RouterConfig::default(), 1.0).unwrap();
    routing.add(0, "cheap").unwrap();
    routing.add(1, "strong").unwrap();
    let c = in_session(&t, "s");
    let prompt = Prompted::default();
    let first = routing.select(&mut t, &c, &prompt).unwrap().unwrap();
    let slot = first.selection.slot;
    for round in 0..30 {
        let next = routing.select(&mut t, &c, &prompt).unwrap().unwrap();
        assert_eq!(next.selection.slot, slot, "round {round}");
        // Each kept selection is a decision the router can learn from.
        routing
            .report(&t, next.request_id, if round % 2 == 0 { 0.0 } else { 1.0 })
            .unwrap();
        assert_eq!(
            routing.explain(&t, &c, &prompt, 1).unwrap().chosen,
            Some(slot)
        );
    }
    for _ in 0..3 {
        t.report(slot, None, &fail()).unwrap();
    }
    let moved = routing.select(&mut t, &c, &prompt).unwrap().unwrap();
    assert_ne!(moved.selection.slot, slot);
    let again = routing.select(&mut t, &c, &prompt).unwrap().unwrap();
    assert_eq!(again.selection.slot, moved.selection.slot);
}

/// One step of a random run over a table with sessions.
#[derive(Debug, Clone)]
enum Step {
    Select { session: u8 },
    Fail { slot: u8 },
    Recover { slot: u8 },
    Swap { slot: u8 },
    Wait { seconds: f64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..6).prop_map(|session| Step::Select { session }),
        1 => (0u8..4).prop_map(|slot| Step::Fail { slot }),
        1 => (0u8..4).prop_map(|slot| Step::Recover { slot }),
        1 => (0u8..4).prop_map(|slot| Step::Swap { slot }),
        1 => (0.0f64..40.0).prop_map(|seconds| Step::Wait { seconds }),
    ]
}

proptest! {
    /// Whatever happens: a selection in a session returns the bound model
    /// exactly when the verdict before it was `Kept`, never a model the
    /// request's checks reject (unless every model is open and the soonest
    /// is probed), and the session is bound to what was returned.
    #[test]
    fn affinity_never_overrides_eligibility(steps in prop::collection::vec(step(), 1..120)) {
        let mut t = table(&["m0", "m1", "m2", "m3"]);
        t.configure_sessions(SessionConfig::new(60.0, 4).unwrap());
        let mut names = ["m0".to_owned(), "m1".to_owned(), "m2".to_owned(), "m3".to_owned()];
        let mut fresh = 4;
        for step in steps {
            match step {
                Step::Select { session } => {
                    let c = in_session(&t, &format!("s{session}"));
                    let before = t.session_verdict(&c, t.now()).unwrap();
                    let Some(sel) = t.select(&c) else { continue };
                    if let SessionVerdict::Kept { slot, .. } = before {
                        prop_assert_eq!(sel.slot, slot);
                    }
                    if !sel.fallback_open {
                        let verdict = t
                            .explain(&Constraints { session: None, ..c.clone() })
                            .into_iter()
                            .find(|e| e.slot == sel.slot)
                            .unwrap()
                            .verdict;
                        // Claiming changed pending counts only: the pick was
                        // eligible before it (half-open probes now in flight).
                        let probe_taken = matches!(
                            verdict,
                            orchestrator_core::Verdict::Rejected(Rejection::ProbeInFlight)
                        );
                        prop_assert!(
                            matches!(verdict, orchestrator_core::Verdict::Eligible(_)) || probe_taken,
                            "{:?}", verdict
                        );
                    }
                    let after = t.session_verdict(&c, t.now()).unwrap();
                    let bound = match after {
                        SessionVerdict::Kept { slot, .. } | SessionVerdict::Moved { slot, .. } => Some(slot),
                        SessionVerdict::New => None,
                    };
                    prop_assert_eq!(bound, Some(sel.slot));
                    t.report(sel.slot, Some(sel.ticket), &ok()).unwrap();
                }
                Step::Fail { slot } => {
                    let _ = t.report(u32::from(slot), None, &fail());
                }
                Step::Recover { slot } => {
                    let _ = t.record_health_check(u32::from(slot), true);
                }
                Step::Swap { slot } => {
                    let i = usize::from(slot);
                    t.unregister(&names[i]).unwrap();
                    names[i] = format!("m{fresh}");
                    fresh += 1;
                    let got = t.register(plain_spec(&names[i])).unwrap();
                    prop_assert_eq!(got, u32::from(slot));
                    // No session is bound to the newcomer yet.
                    for session in 0..6 {
                        let c = in_session(&t, &format!("s{session}"));
                        if let Some(SessionVerdict::Kept { slot: kept, .. }) = t.session_verdict(&c, t.now()) {
                            prop_assert_ne!(kept, u32::from(slot));
                        }
                    }
                }
                Step::Wait { seconds } => t.advance_clock(seconds).unwrap(),
            }
            prop_assert!(t.sessions().len() <= 4);
        }
    }
}
