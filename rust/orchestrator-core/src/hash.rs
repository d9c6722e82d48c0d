//! Stable 128-bit cache keys (XXH3-128) over a canonical encoding of a
//! request.
//!
//! A request's values write themselves to an [`Encoder`] (see
//! [`Canonical`]), which keeps the canonical rules: floats are finite and
//! `-0.0` is `0.0`; an integer is an `i64` when it fits and its canonical
//! decimal digits otherwise (never both); map entries are written sorted by
//! key and each key once; nothing sits deeper than [`MAX_DEPTH`]. Every value
//! is written with a type tag and a length, so keyword order never changes a
//! key, equal values always share one, and no two different values (or
//! types) share an encoding. Nothing is copied: values stream into the hash.

use std::borrow::Cow;

use xxhash_rust::xxh3::Xxh3;

use crate::error::CoreError;

/// Bump when the encoding changes, so old cache entries stop matching.
pub const KEY_FORMAT_VERSION: u8 = 1;

/// The deepest a value may sit below the root of a prompt or of the
/// parameters (a value inside 64 containers is accepted, one more is not).
pub const MAX_DEPTH: usize = 64;

/// Why a value cannot be part of a cache key, and where it sits. `wrong_type`
/// tells a value of a kind keys do not take (the caller's type error) from a
/// value of the right kind outside its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhashable {
    pub reason: String,
    pub wrong_type: bool,
    root: &'static str,
    /// Path segments, innermost first (they are added on the way out).
    segments: Vec<String>,
}

impl Unhashable {
    /// A value outside its domain (a NaN, too deep, a malformed integer).
    pub fn bad_value(reason: impl Into<String>) -> Self {
        Unhashable {
            reason: reason.into(),
            wrong_type: false,
            root: "",
            segments: Vec::new(),
        }
    }

    /// A value of a kind that keys do not take.
    pub fn wrong_type(reason: impl Into<String>) -> Self {
        Unhashable {
            wrong_type: true,
            ..Unhashable::bad_value(reason)
        }
    }

    fn at_key(mut self, key: &str) -> Self {
        self.segments.push(format!("[{key:?}]"));
        self
    }

    fn at_index(mut self, index: usize) -> Self {
        self.segments.push(format!("[{index}]"));
        self
    }

    fn under(mut self, root: &'static str) -> Self {
        self.root = root;
        self
    }

    /// Where the value sits: `prompt[0]["content"]`.
    pub fn path(&self) -> String {
        let mut path = self.root.to_owned();
        for segment in self.segments.iter().rev() {
            path.push_str(segment);
        }
        path
    }
}

impl From<Unhashable> for CoreError {
    fn from(failure: Unhashable) -> Self {
        CoreError::Unhashable {
            path: failure.path(),
            reason: failure.reason,
        }
    }
}

impl std::fmt::Display for Unhashable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", CoreError::from(self.clone()))
    }
}

/// A value a cache key can be computed over: it writes itself, once, with
/// the encoder's methods (containers through [`Encoder::list`] and
/// [`Encoder::map`], which write their items).
pub trait Canonical {
    fn write(&self, out: &mut Encoder) -> Result<(), Unhashable>;
}

/// Writes values in the canonical encoding, keeping its rules.
pub struct Encoder {
    state: Xxh3,
    /// How deep below its root the value being written sits.
    depth: usize,
}

impl Encoder {
    fn new() -> Self {
        let mut state = Xxh3::new();
        state.update(&[b'K', KEY_FORMAT_VERSION]);
        Encoder { state, depth: 0 }
    }

    fn tag_len(&mut self, tag: u8, len: usize) {
        self.state.update(&[tag]);
        self.state.update(&(len as u64).to_le_bytes());
    }

    pub fn none(&mut self) {
        self.state.update(b"N");
    }

    pub fn bool(&mut self, value: bool) {
        self.state.update(if value { b"T" } else { b"F" });
    }

    pub fn int(&mut self, value: i64) {
        self.state.update(b"I");
        self.state.update(&value.to_le_bytes());
    }

    /// An integer of any size from its decimal digits (an optional `-`, no
    /// leading zeros); one that fits `i64` is written as that `i64`, so an
    /// integer has one encoding whichever way it arrives.
    pub fn integer(&mut self, decimal: &str) -> Result<(), Unhashable> {
        let digits = decimal.strip_prefix('-').unwrap_or(decimal);
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && decimal != "-0";
        if !canonical {
            return Err(Unhashable::bad_value(format!(
                "{decimal:?} is not the decimal digits of an integer"
            )));
        }
        match decimal.parse::<i64>() {
            Ok(value) => self.int(value),
            Err(_) => {
                self.tag_len(b'J', decimal.len());
                self.state.update(decimal.as_bytes());
            }
        }
        Ok(())
    }

    /// A finite float; `-0.0` is written as `0.0`.
    pub fn float(&mut self, value: f64) -> Result<(), Unhashable> {
        if !value.is_finite() {
            return Err(Unhashable::bad_value(format!(
                "{value} is not a finite number"
            )));
        }
        let value = if value == 0.0 { 0.0 } else { value };
        self.state.update(b"D");
        self.state.update(&value.to_bits().to_le_bytes());
        Ok(())
    }

    pub fn str(&mut self, value: &str) {
        self.tag_len(b'S', value.len());
        self.state.update(value.as_bytes());
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.tag_len(b'B', value.len());
        self.state.update(value);
    }

    /// A sequence of `len` items (a list and a tuple of equal items share
    /// an encoding); `items` must yield exactly `len` of them.
    pub fn list<T: Canonical>(
        &mut self,
        len: usize,
        items: impl IntoIterator<Item = Result<T, Unhashable>>,
    ) -> Result<(), Unhashable> {
        self.tag_len(b'L', len);
        let mut written = 0;
        for (i, item) in items.into_iter().enumerate() {
            let item = item.map_err(|f| f.at_index(i))?;
            self.child(&item).map_err(|f| f.at_index(i))?;
            written += 1;
        }
        if written != len {
            return Err(Unhashable::bad_value(format!(
                "changed size while it was hashed ({len} items, then {written})"
            )));
        }
        Ok(())
    }

    /// A map with string keys, given in any order: it is written sorted by
    /// key, and a key given twice is refused.
    pub fn map<T: Canonical>(
        &mut self,
        entries: &mut [(Cow<'_, str>, T)],
    ) -> Result<(), Unhashable> {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(twice) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Unhashable::bad_value(format!(
                "has the key {:?} twice",
                twice[0].0
            )));
        }
        self.tag_len(b'M', entries.len());
        for (key, value) in entries.iter() {
            self.str(key);
            self.child(value).map_err(|f| f.at_key(key))?;
        }
        Ok(())
    }

    /// Write an item one level deeper, refused beyond [`MAX_DEPTH`].
    fn child<T: Canonical>(&mut self, item: &T) -> Result<(), Unhashable> {
        self.depth += 1;
        let written = if self.depth > MAX_DEPTH {
            Err(Unhashable::bad_value(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )))
        } else {
            item.write(self)
        };
        self.depth -= 1;
        written
    }

    fn finish(&self) -> u128 {
        self.state.digest128()
    }
}

/// The cache key of a request: its namespace, the model's provider and
/// identity, the prompt, and the generation parameters (none: an empty
/// map). A failure names the value under `prompt` or `params`.
pub fn cache_key<P: Canonical, Q: Canonical>(
    namespace: &str,
    provider: &str,
    model: &str,
    prompt: &P,
    params: Option<&Q>,
) -> Result<u128, Unhashable> {
    let mut out = Encoder::new();
    out.str(namespace);
    out.str(provider);
    out.str(model);
    prompt.write(&mut out).map_err(|f| f.under("prompt"))?;
    match params {
        Some(params) => params.write(&mut out).map_err(|f| f.under("params"))?,
        None => out.tag_len(b'M', 0),
    }
    Ok(out.finish())
}

/// The keyed hash of a session id (see [`crate::sessions`]): what the core
/// keeps instead of the id. `secret` is random per process, or shared by the
/// workers of one shared state; without it the ids cannot be recomputed
/// from a guess, nor collisions chosen.
pub fn session_key(secret: u64, id: &str) -> u128 {
    let mut state = Xxh3::with_seed(secret);
    state.update(&[b'S', KEY_FORMAT_VERSION]);
    state.update(id.as_bytes());
    state.digest128()
}

/// A key as 32 lowercase hex digits.
pub fn to_hex(key: u128) -> String {
    format!("{key:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few values, enough for the encoder's own rules.
    enum V {
        Int(i64),
        Digits(&'static str),
        Float(f64),
        Str(&'static str),
        None,
        List(Vec<V>),
        Map(Vec<(&'static str, V)>),
    }

    impl Canonical for V {
        fn write(&self, out: &mut Encoder) -> Result<(), Unhashable> {
            match self {
                V::Int(n) => out.int(*n),
                V::Digits(d) => out.integer(d)?,
                V::Float(f) => out.float(*f)?,
                V::Str(s) => out.str(s),
                V::None => out.none(),
                V::List(items) => out.list(items.len(), items.iter().map(Ok))?,
                V::Map(entries) => {
                    let mut entries: Vec<_> = entries
                        .iter()
                        .map(|(k, v)| (Cow::Borrowed(*k), v))
                        .collect();
                    out.map(&mut entries)?
                }
            }
            Ok(())
        }
    }

    impl Canonical for &V {
        fn write(&self, out: &mut Encoder) -> Result<(), Unhashable> {
            (*self).write(out)
        }
    }

    fn key(value: V) -> Result<u128, Unhashable> {
        cache_key::<V, V>("", "p", "m", &value, None)
    }

    #[test]
    fn type_tags_and_lengths_keep_values_apart() {
        let values = [
            key(V::Int(1)),
            key(V::Float(1.0)),
            key(V::Str("1")),
            key(V::None),
            key(V::List(vec![V::Int(1)])),
            key(V::List(vec![V::Str("ab"), V::Str("c")])),
            key(V::List(vec![V::Str("a"), V::Str("bc")])),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(a.as_ref().unwrap(), b.as_ref().unwrap());
            }
        }
    }

    #[test]
    fn negative_zero_is_zero_and_nan_is_refused() {
        assert_eq!(key(V::Float(0.0)), key(V::Float(-0.0)));
        let err = key(V::Float(f64::NAN)).unwrap_err();
        assert_eq!(err.reason, "NaN is not a finite number");
        assert!(!err.wrong_type);
        assert_eq!(
            err.to_string(),
            "cannot hash prompt for a cache key: NaN is not a finite number"
        );
    }

    #[test]
    fn an_integer_has_one_encoding_whichever_way_it_arrives() {
        assert_eq!(key(V::Digits("-42")), key(V::Int(-42)));
        assert_eq!(key(V::Digits("0")), key(V::Int(0)));
        assert_ne!(key(V::Digits("9223372036854775808")), key(V::Int(i64::MAX)));
        for malformed in ["", "-", "-0", "007", "1e3", "12a", "+5", "-0x1", " 1"] {
            assert!(key(V::Digits(malformed)).is_err(), "{malformed:?}");
        }
    }

    #[test]
    fn a_map_is_sorted_and_a_key_given_twice_is_refused() {
        let ab = key(V::Map(vec![("a", V::Int(1)), ("b", V::Int(2))]));
        let ba = key(V::Map(vec![("b", V::Int(2)), ("a", V::Int(1))]));
        assert_eq!(ab, ba);
        let twice = key(V::Map(vec![("a", V::Int(1)), ("a", V::Int(2))]));
        assert!(twice.unwrap_err().reason.contains("\"a\" twice"));
    }

    #[test]
    fn depth_is_bounded_and_the_path_names_the_value() {
        let nested = |depth: usize| {
            let mut value = V::None;
            for _ in 0..depth {
                value = V::List(vec![value]);
            }
            value
        };
        assert!(key(nested(MAX_DEPTH)).is_ok());
        let err = key(nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.path(), format!("prompt{}", "[0]".repeat(MAX_DEPTH + 1)));
        let bad = V::Map(vec![("k", V::List(vec![V::Float(f64::INFINITY)]))]);
        let err = cache_key::<V, V>("", "p", "m", &V::None, Some(&bad)).unwrap_err();
        assert_eq!(err.path(), "params[\"k\"][0]");
    }

    /// The encoding of one request, pinned: a change of the encoding must
    /// bump `KEY_FORMAT_VERSION` (the Python tests pin more).
    #[test]
    fn keys_are_stable_across_releases() {
        let key = cache_key::<V, V>("", "openai", "gpt-4o", &V::Str("hello"), None).unwrap();
        assert_eq!(to_hex(key), "0ea4d4c299049ea6719ffca7174c3e5f");
    }
}
