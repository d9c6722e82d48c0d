//! Stable 128-bit cache keys (XXH3-128) over a canonical encoding of a
//! request: every value is written with a type tag and a length, and map
//! entries are written in key order, so keyword order never changes a key
//! and no two different requests share an encoding.

use xxhash_rust::xxh3::Xxh3;

use crate::error::CoreError;

/// Bump when the encoding changes, so old cache entries stop matching.
pub const KEY_FORMAT_VERSION: u8 = 1;

/// Incremental canonical encoder and hasher. Callers write map entries in
/// ascending key order (see [`KeyHasher::sort_entries`]).
pub struct KeyHasher {
    state: Xxh3,
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHasher {
    pub fn new() -> Self {
        let mut state = Xxh3::new();
        state.update(&[b'K', KEY_FORMAT_VERSION]);
        KeyHasher { state }
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

    /// An integer too large for i64, as its decimal digits.
    pub fn big_int(&mut self, decimal: &str) {
        self.tag_len(b'J', decimal.len());
        self.state.update(decimal.as_bytes());
    }

    /// A float; `-0.0` is written as `0.0`; NaN and infinities are refused.
    pub fn float(&mut self, value: f64, path: &str) -> Result<(), CoreError> {
        if !value.is_finite() {
            return Err(CoreError::Unhashable {
                path: path.to_owned(),
                reason: format!("{value} is not a finite number"),
            });
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

    /// Start a list of `len` values.
    pub fn list(&mut self, len: usize) {
        self.tag_len(b'L', len);
    }

    /// Start a map of `len` entries; write each as `str(key)` then the value.
    pub fn map(&mut self, len: usize) {
        self.tag_len(b'M', len);
    }

    /// Sort map entries by key, the order [`KeyHasher::map`] expects.
    pub fn sort_entries<V>(entries: &mut [(&str, V)]) {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }

    pub fn finish(&self) -> u128 {
        self.state.digest128()
    }
}

/// A key as 32 lowercase hex digits.
pub fn to_hex(key: u128) -> String {
    format!("{key:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(write: impl FnOnce(&mut KeyHasher)) -> u128 {
        let mut h = KeyHasher::new();
        write(&mut h);
        h.finish()
    }

    #[test]
    fn type_tags_keep_values_apart() {
        let one_int = key(|h| h.int(1));
        let one_float = key(|h| h.float(1.0, "x").unwrap());
        let one_str = key(|h| h.str("1"));
        assert_ne!(one_int, one_float);
        assert_ne!(one_int, one_str);
        assert_ne!(key(|h| h.none()), key(|h| h.bool(false)));
    }

    #[test]
    fn lengths_keep_boundaries_apart() {
        let ab_c = key(|h| {
            h.str("ab");
            h.str("c")
        });
        let a_bc = key(|h| {
            h.str("a");
            h.str("bc")
        });
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn negative_zero_is_zero_and_nan_is_refused() {
        assert_eq!(
            key(|h| h.float(0.0, "t").unwrap()),
            key(|h| h.float(-0.0, "t").unwrap())
        );
        let err = KeyHasher::new().float(f64::NAN, "temperature").unwrap_err();
        assert!(err.to_string().contains("temperature"));
    }

    #[test]
    fn keys_are_stable_across_releases() {
        let k = key(|h| {
            h.str("gpt-4");
            h.str("hello")
        });
        assert_eq!(to_hex(k).len(), 32);
        assert_eq!(
            k,
            key(|h| {
                h.str("gpt-4");
                h.str("hello")
            })
        );
    }
}
