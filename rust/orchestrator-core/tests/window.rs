//! A request whose size is given (`input_tokens`) must fit a model's known
//! context window with the output tokens it gave; a model of unknown window
//! stays eligible, and a request of unknown size is not held to the default
//! size (nor a prompt to the default output size).

mod common;

use common::plain_spec;
use orchestrator_core::{Constraints, ModelSpec, Rejection, Table, Verdict};

fn sized(input: Option<i64>, output: Option<i64>) -> Constraints {
    Constraints::new(0, None, None, None, vec![], input, output).unwrap()
}

fn table() -> Table {
    let mut table = Table::default();
    table.register(plain_spec("small")).unwrap(); // 8,192 tokens
    table
        .register(ModelSpec {
            context_length: 0,
            ..plain_spec("unknown")
        })
        .unwrap();
    table
        .register(ModelSpec {
            context_length: 128_000,
            ..plain_spec("large")
        })
        .unwrap();
    table
}

fn verdicts(table: &Table, c: &Constraints) -> Vec<Option<Rejection>> {
    table
        .explain(c)
        .into_iter()
        .map(|row| match row.verdict {
            Verdict::Rejected(r) => Some(r),
            Verdict::Eligible(_) => None,
        })
        .collect()
}

#[test]
fn a_given_size_must_fit_a_known_window() {
    let table = table();
    let c = sized(Some(8_000), Some(500));
    assert_eq!(c.window_needed, Some(8_500));
    assert_eq!(
        verdicts(&table, &c),
        vec![
            Some(Rejection::ContextTooSmall {
                needed: 8_500,
                has: 8_192
            }),
            None,
            None
        ]
    );
}

#[test]
fn an_exact_fit_is_eligible() {
    let table = table();
    assert_eq!(
        verdicts(&table, &sized(Some(8_000), Some(192))),
        vec![None; 3]
    );
}

#[test]
fn an_unknown_size_is_not_held_to_the_default() {
    let c = sized(None, Some(10_000));
    assert_eq!(c.window_needed, None);
    assert_eq!(verdicts(&table(), &c), vec![None; 3]);
}

#[test]
fn without_output_tokens_the_prompt_alone_must_fit() {
    let c = sized(Some(8_192), None);
    assert_eq!(c.window_needed, Some(8_192));
    assert_eq!(verdicts(&table(), &c), vec![None; 3]);
    let c = sized(Some(8_193), None);
    assert!(matches!(
        verdicts(&table(), &c)[0],
        Some(Rejection::ContextTooSmall { needed: 8_193, .. })
    ));
}

#[test]
fn the_sum_saturates_instead_of_wrapping() {
    let c = sized(Some(i64::from(u32::MAX)), Some(i64::from(u32::MAX)));
    assert_eq!(c.window_needed, Some(u32::MAX));
    let rows = verdicts(&table(), &c);
    assert!(matches!(rows[2], Some(Rejection::ContextTooSmall { .. })));
    assert_eq!(rows[1], None, "an unknown window is not excluded");
}
