//! Prompt-aware selection over a table (`orchestrator_core::routing`): the
//! table's filters hold, the router learns a planted rule from delayed
//! feedback, explanations agree with the next selection without changing
//! anything, and registration keeps the router in step with the slots.

use orchestrator_core::contextual::{Exploration, RouterConfig};
use orchestrator_core::features::FeaturizerConfig;
use orchestrator_core::routing::{bounded_prompt, Prompted, Routing, MAX_ROUTED_PROMPT_BYTES};
use orchestrator_core::{capability_mask, Constraints, CoreError, ModelSpec, Outcome, Table};
use proptest::prelude::*;

fn spec(name: &str, price: f64, caps: &[&str]) -> ModelSpec {
    ModelSpec {
        name: name.to_owned(),
        provider: "test".to_owned(),
        capabilities: capability_mask(caps.iter().copied()).unwrap(),
        context_length: 8192,
        input_price_per_million: price,
        output_price_per_million: price,
        request_fee: 0.0,
        priced: true,
        declared_speed: Some(50.0),
        limits: Default::default(),
        tags: Vec::new(),
        deployment: None,
    }
}

fn config(exploration: Exploration) -> RouterConfig {
    RouterConfig {
        featurizer: FeaturizerConfig {
            hash_bits: 12,
            ..FeaturizerConfig::default()
        },
        exploration,
        ..RouterConfig::default()
    }
}

/// A table of `cheap` ($0.002 per default request) and `strong` ($0.02),
/// with a routing beside it.
fn setup(exploration: Exploration) -> (Table, Routing) {
    let mut table = Table::default();
    let mut routing = Routing::new(config(exploration), 0.1).unwrap();
    for (name, price) in [("cheap", 10.0), ("strong", 100.0)] {
        let slot = table.register(spec(name, price, &["chat"])).unwrap();
        routing.add(slot, name).unwrap();
    }
    (table, routing)
}

/// No constraint, priced at the default request size.
fn any() -> Constraints {
    Constraints::new(0, None, None, None, vec![], None, None).unwrap()
}

fn prompted(text: &str) -> Prompted<'_> {
    Prompted {
        text,
        ..Prompted::default()
    }
}

fn ok() -> Outcome {
    Outcome {
        success: true,
        latency_s: 0.1,
        ..Outcome::default()
    }
}

/// Integral prompts need the strong model; greetings do not.
fn planted(i: usize) -> (String, [f64; 2]) {
    if i % 2 == 0 {
        (format!("compute the integral of x^{i} dx"), [0.0, 1.0])
    } else {
        (format!("say hello to friend {i}"), [1.0, 1.0])
    }
}

#[test]
fn delayed_feedback_teaches_a_planted_rule_through_the_table() {
    let (mut table, mut routing) = setup(Exploration::Thompson);
    for i in 0..1500 {
        let (text, quality) = planted(i);
        let chosen = routing
            .select(&mut table, &any(), &prompted(&text))
            .unwrap()
            .unwrap();
        let slot = chosen.selection.slot;
        table
            .report(slot, Some(chosen.selection.ticket), &ok())
            .unwrap();
        assert_eq!(
            routing
                .report(&table, chosen.request_id, quality[slot as usize])
                .unwrap(),
            slot
        );
    }
    assert_eq!(table.outstanding_tickets(), 0);
    let mut late = [0u32; 2];
    for i in 0..200 {
        let (text, _) = planted(i);
        let chosen = routing
            .select(&mut table, &any(), &prompted(&text))
            .unwrap()
            .unwrap();
        let right = if i % 2 == 0 { 1 } else { 0 };
        late[usize::from(chosen.selection.slot == right)] += 1;
    }
    assert!(late[1] > 180, "right model {} of 200", late[1]);
}

#[test]
fn constraints_and_exclusions_are_the_tables() {
    let (mut table, mut routing) = setup(Exploration::Greedy);
    let coder = table
        .register(spec("coder", 1.0, &["code_generation"]))
        .unwrap();
    routing.add(coder, "coder").unwrap();
    let code = capability_mask(["code_generation"]).unwrap();
    let c = Constraints {
        required_capabilities: code,
        ..any()
    };
    for _ in 0..20 {
        let chosen = routing.select(&mut table, &c, &prompted("x")).unwrap();
        assert_eq!(chosen.unwrap().selection.slot, coder);
    }
    let c = Constraints {
        max_cost: Some(1e-9),
        ..any()
    };
    assert!(routing
        .select(&mut table, &c, &prompted("x"))
        .unwrap()
        .is_none());
}

#[test]
fn an_explanation_names_the_next_pick_and_changes_nothing() {
    let (mut table, mut routing) = setup(Exploration::Thompson);
    for i in 0..300 {
        let text = format!("prompt number {i} about topic {}", i % 7);
        let before = routing.save();
        let explained = routing
            .explain(&table, &any(), &prompted(&text), 3)
            .unwrap();
        let scores = routing.scores(&table, &any(), &prompted(&text)).unwrap();
        assert_eq!(routing.save(), before, "explaining changed the router");
        let top = explained
            .candidates
            .iter()
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .unwrap();
        assert_eq!(explained.chosen, Some(top.slot));
        assert_eq!(scores[top.slot as usize], top.value);
        let chosen = routing
            .select(&mut table, &any(), &prompted(&text))
            .unwrap()
            .unwrap();
        assert_eq!(Some(chosen.selection.slot), explained.chosen);
        let quality = if i % 3 == 0 { 1.0 } else { 0.0 };
        routing.report(&table, chosen.request_id, quality).unwrap();
    }
}

#[test]
fn request_ids_are_used_once_and_unknown_ones_are_refused() {
    let (mut table, mut routing) = setup(Exploration::Greedy);
    let chosen = routing
        .select(&mut table, &any(), &prompted("hi"))
        .unwrap()
        .unwrap();
    assert!(routing.is_pending(&table, chosen.request_id));
    routing.report(&table, chosen.request_id, 1.0).unwrap();
    assert!(!routing.is_pending(&table, chosen.request_id));
    for id in [chosen.request_id, 0, 999_999] {
        assert!(matches!(
            routing.report(&table, id, 1.0),
            Err(CoreError::UnknownRequest { .. })
        ));
    }
    let later = routing
        .select(&mut table, &any(), &prompted("hi"))
        .unwrap()
        .unwrap();
    table.advance_clock(3_601.0).unwrap();
    assert!(matches!(
        routing.report(&table, later.request_id, 1.0),
        Err(CoreError::UnknownRequest { .. })
    ));
}

#[test]
fn registration_keeps_the_router_in_step_with_the_slots() {
    let (mut table, mut routing) = setup(Exploration::Greedy);
    let slot = table.unregister("cheap").unwrap();
    routing.remove(slot).unwrap();
    let reused = table.register(spec("third", 1.0, &["chat"])).unwrap();
    routing.add(reused, "third").unwrap();
    let names: Vec<&str> = routing
        .router()
        .model_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["strong", "third"]);
    let explained = routing.explain(&table, &any(), &prompted("x"), 0).unwrap();
    let mut slots: Vec<u32> = explained.candidates.iter().map(|c| c.slot).collect();
    slots.sort_unstable();
    assert_eq!(slots, vec![reused.min(1), reused.max(1)]);
    // A state saved with other models loads onto the registered ones.
    let state = routing.save();
    let gone = table.unregister("strong").unwrap();
    routing.remove(gone).unwrap();
    routing.load(&state, &table).unwrap();
    assert_eq!(routing.router().model_names(), ["third"]);
}

#[test]
fn willingness_to_pay_must_be_finite_and_positive() {
    let (mut table, mut routing) = setup(Exploration::Greedy);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let request = Prompted {
            willingness_to_pay: Some(bad),
            ..prompted("x")
        };
        let err = routing.select(&mut table, &any(), &request).unwrap_err();
        assert!(err.to_string().contains("willingness_to_pay"), "{err}");
    }
    assert_eq!(table.outstanding_tickets(), 0);
    assert!(Routing::new(config(Exploration::Greedy), f64::NAN).is_err());
}

#[test]
fn long_prompts_are_cut_on_a_character_boundary() {
    let text = "é".repeat(MAX_ROUTED_PROMPT_BYTES);
    let cut = bounded_prompt(&text);
    assert!(cut.len() <= MAX_ROUTED_PROMPT_BYTES && cut.len() + 2 > MAX_ROUTED_PROMPT_BYTES);
    assert_eq!(bounded_prompt("short"), "short");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the prompt and willingness to pay, a selection honours the
    /// cost cap and every score is finite or -inf.
    #[test]
    fn selections_honour_max_cost_and_scores_stay_finite(
        text in ".{0,200}",
        willingness in 1e-6f64..1e6,
        cap in prop::option::of(0.0f64..0.05),
    ) {
        let (mut table, mut routing) = setup(Exploration::Thompson);
        let c = Constraints { max_cost: cap, ..any() };
        let request = Prompted { willingness_to_pay: Some(willingness), ..prompted(&text) };
        for score in routing.scores(&table, &c, &request).unwrap() {
            prop_assert!(score.is_finite() || score == f64::NEG_INFINITY);
        }
        if let Some(chosen) = routing.select(&mut table, &c, &request).unwrap() {
            let cost = table.price(chosen.selection.slot, 100, 100).unwrap();
            prop_assert!(cap.is_none_or(|cap| cost <= cap));
        } else {
            prop_assert!(cap.is_some_and(|cap| cap < 0.002));
        }
    }
}

/// Sum `changes` into a shared store, as Redis' `HINCRBYFLOAT` does.
fn push(store: &mut std::collections::BTreeMap<(String, u64), (f64, f64)>, routing: &mut Routing) {
    for (name, feature, dq, dh) in routing.take_changes().unwrap() {
        let sum = store.entry((name, feature)).or_insert((0.0, 0.0));
        sum.0 += dq;
        sum.1 += dh;
    }
}

fn sums(
    store: &std::collections::BTreeMap<(String, u64), (f64, f64)>,
) -> Vec<orchestrator_core::routing::NamedChange> {
    store
        .iter()
        .map(|((name, feature), (dq, dh))| (name.clone(), *feature, *dq, *dh))
        .collect()
}

#[test]
fn workers_share_by_model_name_whatever_their_registration_order() {
    let mut store = std::collections::BTreeMap::new();
    let (mut table_a, mut a) = setup(Exploration::Greedy);
    let mut table_b = Table::default();
    let mut b = Routing::new(config(Exploration::Greedy), 0.1).unwrap();
    a.start_sharing();
    b.start_sharing();
    // B registers the models in the other order, and one more while sharing.
    for (name, price) in [("strong", 100.0), ("cheap", 10.0)] {
        let slot = table_b.register(spec(name, price, &["chat"])).unwrap();
        b.add(slot, name).unwrap();
    }
    for i in 0..400 {
        let (text, quality) = planted(i);
        let chosen = a
            .select(&mut table_a, &any(), &prompted(&text))
            .unwrap()
            .unwrap();
        let slot = chosen.selection.slot as usize;
        a.report(&table_a, chosen.request_id, quality[slot])
            .unwrap();
    }
    let extra = table_b.register(spec("extra", 1.0, &["chat"])).unwrap();
    b.add(extra, "extra").unwrap();
    push(&mut store, &mut a);
    push(&mut store, &mut b);
    b.apply_shared(&sums(&store)).unwrap();
    a.apply_shared(&sums(&store)).unwrap();
    let text = planted(10_000).0;
    let quality_of = |routing: &mut Routing, table: &Table, name: &str| {
        let explained = routing.explain(table, &any(), &prompted(&text), 0).unwrap();
        let slot = table.slot_of(name).unwrap();
        explained
            .candidates
            .iter()
            .find(|c| c.slot == slot)
            .unwrap()
            .prediction
            .quality
    };
    for name in ["cheap", "strong"] {
        let (qa, qb) = (
            quality_of(&mut a, &table_a, name),
            quality_of(&mut b, &table_b, name),
        );
        assert!((qa - qb).abs() < 1e-4, "{name}: {qa} here, {qb} there");
    }
    let learned = ["cheap", "strong"]
        .iter()
        .map(|name| (quality_of(&mut b, &table_b, name) - 0.5).abs())
        .fold(0.0, f64::max);
    assert!(learned > 0.2, "B knows what A learned: {learned}");
    assert!((quality_of(&mut b, &table_b, "extra") - 0.5).abs() < 1e-6);
    // A feature index beyond the router's is refused, naming it.
    let bad = vec![("cheap".to_owned(), u64::MAX, 1.0, 0.0)];
    assert!(b
        .apply_shared(&bad)
        .unwrap_err()
        .to_string()
        .contains("feature"));
}
