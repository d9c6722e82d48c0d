//! Properties of cache keys over random request values: equal values share a
//! key whatever order their maps were given in, different values (and types)
//! never share one, and nesting is bounded.

use std::borrow::Cow;

use orchestrator_core::hash::{cache_key, Canonical, Encoder, Unhashable, MAX_DEPTH};
use proptest::prelude::*;

/// A request value as a caller (the Python binding, here a test) holds it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer given as its decimal digits (it may fit `i64`).
    Digits(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Canonical for &Value {
    fn write(&self, out: &mut Encoder) -> Result<(), Unhashable> {
        match self {
            Value::None => out.none(),
            Value::Bool(b) => out.bool(*b),
            Value::Int(n) => out.int(*n),
            Value::Digits(d) => out.integer(d)?,
            Value::Float(f) => out.float(*f)?,
            Value::Str(s) => out.str(s),
            Value::Bytes(b) => out.bytes(b),
            Value::List(items) => out.list(items.len(), items.iter().map(Ok))?,
            Value::Map(entries) => {
                let mut entries: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), v))
                    .collect();
                out.map(&mut entries)?
            }
        }
        Ok(())
    }
}

/// The value the canonical rules make of `v`: -0.0 is 0.0, digits that fit
/// i64 are that i64, maps are sorted. Two values must share a key exactly
/// when their canonical forms are equal.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Float(f) if *f == 0.0 => Value::Float(0.0),
        Value::Digits(d) => d.parse().map_or_else(|_| v.clone(), Value::Int),
        Value::List(items) => Value::List(items.iter().map(canonical).collect()),
        Value::Map(entries) => {
            let mut sorted: Vec<_> = entries
                .iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(sorted)
        }
        other => other.clone(),
    }
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![any::<i64>(), -3i64..3].prop_map(Value::Int),
        prop_oneof![
            (-3i64..3).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u128>().prop_map(|n| n.to_string()),
            any::<u128>().prop_map(|n| format!("-{}", n.max(1))),
        ]
        .prop_map(Value::Digits),
        prop_oneof![Just(0.0), Just(-0.0), Just(1.0), -1e300f64..1e300].prop_map(Value::Float),
        "[ab]{0,2}".prop_map(Value::Str),
        prop::collection::vec(0u8..3, 0..3).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::btree_map("[ab]{0,2}", inner, 0..4)
                .prop_map(|m| Value::Map(m.into_iter().collect())),
        ]
    })
}

fn key(v: &Value) -> u128 {
    cache_key("ns", "provider", "model", &v, None::<&&Value>).unwrap()
}

/// `v` with every map's entries given in reverse order.
fn reversed(v: &Value) -> Value {
    match v {
        Value::List(items) => Value::List(items.iter().map(reversed).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn equal_values_share_a_key_whatever_their_map_order(v in value()) {
        prop_assert_eq!(key(&v), key(&reversed(&v)));
        prop_assert_eq!(key(&v), key(&canonical(&v)));
    }

    #[test]
    fn different_values_never_share_a_key(a in value(), b in value()) {
        prop_assert_eq!(canonical(&a) == canonical(&b), key(&a) == key(&b));
    }

    #[test]
    fn nesting_is_accepted_up_to_max_depth_and_refused_beyond(depth in 0usize..=MAX_DEPTH + 3) {
        let mut v = Value::None;
        for _ in 0..depth {
            v = Value::List(vec![v]);
        }
        let result = cache_key("ns", "p", "m", &&v, None::<&&Value>);
        prop_assert_eq!(result.is_ok(), depth <= MAX_DEPTH);
        if let Err(failure) = result {
            prop_assert!(failure.reason.contains("nested deeper than 64 levels"));
        }
    }
}

#[test]
fn the_same_value_under_other_identities_keys_apart() {
    let prompt = &Value::Str("hello".to_owned());
    let none = None::<&&Value>;
    let base = cache_key("ns", "p", "m", &prompt, none).unwrap();
    assert_ne!(base, cache_key("ns2", "p", "m", &prompt, none).unwrap());
    assert_ne!(base, cache_key("ns", "p2", "m", &prompt, none).unwrap());
    assert_ne!(base, cache_key("ns", "p", "m2", &prompt, none).unwrap());
    let empty = &Value::Map(vec![]);
    assert_eq!(
        base,
        cache_key("ns", "p", "m", &prompt, Some(&empty)).unwrap()
    );
}
