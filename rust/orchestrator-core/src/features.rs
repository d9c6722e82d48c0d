//! Content features of a prompt: one pass over the text into a sparse vector.
//!
//! Words (runs of alphanumeric characters, ASCII lower-cased) and single ASCII
//! punctuation marks are tokens. Word n-grams up to [`FeaturizerConfig::word_ngrams`]
//! and, optionally, character n-grams inside each word are hashed with seeded
//! XXH3 into `2^hash_bits` buckets with a hash-derived sign (signed feature
//! hashing), each group scaled to unit norm. A fixed block of length and
//! structure signals follows the hashed block, and a caller's dense embedding
//! follows that. The caller owns the [`Features`] buffer, so featurizing a
//! request allocates nothing once the buffer has grown to its working size.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::CoreError;

/// Version of the feature layout. Stored router state records it; bump it
/// whenever a change would move a prompt's features.
pub const FEATURIZER_VERSION: u32 = 1;

/// Seed of every feature hash; part of the layout, never change it without
/// bumping [`FEATURIZER_VERSION`].
pub const HASH_SEED: u64 = 0x6f72_6368_6573_7472;

/// Largest magnitude of an embedding component. Normalised and raw model
/// embeddings stay far below it; beyond it the variance term `σ²·x²` of the
/// f32 posterior and its Kalman updates would overflow or underflow, so a
/// larger value is refused rather than turned into an infinite uncertainty.
pub const MAX_EMBEDDING_MAGNITUDE: f32 = 1e6;

/// Names of the structure signals, in the order of their feature slots.
pub const STRUCTURE_NAMES: [&str; 12] = [
    "bias",
    "log_tokens",
    "code_fences",
    "math_share",
    "digit_share",
    "questions",
    "non_ascii_share",
    "upper_share",
    "log_lines",
    "punctuation_share",
    "log_words",
    "mean_word_length",
];

/// Number of structure signals.
pub const STRUCTURE_FEATURES: usize = STRUCTURE_NAMES.len();

/// Shape of the feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeaturizerConfig {
    /// The hashed block has `2^hash_bits` buckets (10..=24).
    pub hash_bits: u8,
    /// Longest word n-gram hashed (1..=3).
    pub word_ngrams: u8,
    /// Length of the character n-grams hashed inside words; 0 turns them off (else 2..=6).
    pub char_ngrams: u8,
    /// Length of the caller's dense embedding; 0 means none.
    pub embedding_dim: u32,
}

impl Default for FeaturizerConfig {
    fn default() -> Self {
        FeaturizerConfig {
            hash_bits: 16,
            word_ngrams: 2,
            char_ngrams: 0,
            embedding_dim: 0,
        }
    }
}

/// A sparse feature vector plus the scratch space that builds it; reuse one
/// per thread or per caller. Indices may repeat (their values add up).
#[derive(Debug, Default, Clone)]
pub struct Features {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    word: Vec<u8>,
}

impl Features {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.indices.clear();
        self.values.clear();
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    fn push(&mut self, index: u32, value: f32) {
        self.indices.push(index);
        self.values.push(value);
    }

    /// Sign of each entry's value (+1, -1 or 0).
    pub fn signs(&self) -> Vec<i8> {
        self.values
            .iter()
            .map(|v| v.signum() as i8 * i8::from(*v != 0.0))
            .collect()
    }

    /// Copy another vector's entries in (keeps this buffer's capacity).
    pub fn copy_from(&mut self, other: &Features) {
        self.clear();
        self.indices.extend_from_slice(&other.indices);
        self.values.extend_from_slice(&other.values);
    }
}

/// Counters gathered in the token pass that become the structure signals.
/// ASCII classes are read off a histogram of the ASCII bytes at the end, so
/// the pass itself does one increment per ASCII byte.
struct Counts {
    ascii: [u32; 128],
    non_ascii: u32,
    non_ascii_upper: u32,
    non_ascii_math: u32,
    words: u32,
    word_chars: u32,
    fences: u32,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            ascii: [0; 128],
            non_ascii: 0,
            non_ascii_upper: 0,
            non_ascii_math: 0,
            words: 0,
            word_chars: 0,
            fences: 0,
        }
    }
}

impl Counts {
    fn sum(&self, range: std::ops::RangeInclusive<u8>) -> u32 {
        self.ascii[usize::from(*range.start())..=usize::from(*range.end())]
            .iter()
            .sum()
    }

    fn of(&self, byte: u8) -> u32 {
        self.ascii[byte as usize]
    }

    /// Characters: ASCII bytes plus decoded non-ASCII characters.
    fn chars(&self) -> u32 {
        self.ascii.iter().sum::<u32>() + self.non_ascii
    }

    fn math(&self) -> u32 {
        b"=+*/^<>%|\\$".iter().map(|&b| self.of(b)).sum::<u32>() + self.non_ascii_math
    }

    fn upper(&self) -> u32 {
        self.sum(b'A'..=b'Z') + self.non_ascii_upper
    }

    /// ASCII punctuation: the four runs `!`..`/`, `:`..`@`, `[`..`` ` `` and `{`..`~`.
    fn punctuation(&self) -> u32 {
        self.sum(b'!'..=b'/')
            + self.sum(b':'..=b'@')
            + self.sum(b'['..=b'`')
            + self.sum(b'{'..=b'~')
    }
}

/// Bytes that belong to words: ASCII letters and digits (non-ASCII
/// characters are classified when decoded).
const ASCII_WORD: [bool; 128] = {
    let mut table = [false; 128];
    let mut byte = 0;
    while byte < 128 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    table
};

/// The last tokens' hashes and start offsets, newest first, for n-grams.
#[derive(Default)]
struct History {
    hashes: [u64; 3],
    starts: [usize; 3],
    len: usize,
}

/// The featurizer: a validated [`FeaturizerConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Featurizer {
    config: FeaturizerConfig,
}

/// Next value of a splitmix64 sequence whose state is `state`.
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix(*state)
}

/// splitmix64 finaliser: combines token hashes into n-gram hashes.
fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of the n-gram ending with `current`, given the hash of the (n-1)-gram before it.
fn extend(previous: u64, current: u64, n: u64) -> u64 {
    mix(previous.rotate_left(21) ^ current ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn is_math(c: char) -> bool {
    matches!(
        c,
        '=' | '+' | '*' | '/' | '^' | '<' | '>' | '%' | '|' | '\\' | '$'
    ) || ('\u{2200}'..='\u{22FF}').contains(&c)
        || ('\u{0391}'..='\u{03C9}').contains(&c)
}

impl Featurizer {
    pub fn new(config: FeaturizerConfig) -> Result<Self, CoreError> {
        if !(10..=24).contains(&config.hash_bits) {
            return Err(CoreError::invalid("hash_bits", config.hash_bits));
        }
        if !(1..=3).contains(&config.word_ngrams) {
            return Err(CoreError::invalid("word_ngrams", config.word_ngrams));
        }
        if config.char_ngrams != 0 && !(2..=6).contains(&config.char_ngrams) {
            return Err(CoreError::invalid("char_ngrams", config.char_ngrams));
        }
        if config.embedding_dim > 1 << 16 {
            return Err(CoreError::invalid("embedding_dim", config.embedding_dim));
        }
        Ok(Featurizer { config })
    }

    pub fn config(&self) -> FeaturizerConfig {
        self.config
    }

    /// Buckets of the hashed block.
    pub fn hashed_dim(&self) -> u32 {
        1 << self.config.hash_bits
    }

    /// Index of the first structure signal.
    pub fn structure_offset(&self) -> u32 {
        self.hashed_dim()
    }

    /// Index of the first embedding component.
    pub fn embedding_offset(&self) -> u32 {
        self.hashed_dim() + STRUCTURE_FEATURES as u32
    }

    /// Length of the full feature vector.
    pub fn dim(&self) -> u32 {
        self.embedding_offset() + self.config.embedding_dim
    }

    /// Bucket and sign of a 64-bit feature hash.
    fn bucket(&self, hash: u64) -> (u32, f32) {
        let index = (hash & u64::from(self.hashed_dim() - 1)) as u32;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        (index, sign)
    }

    /// Hash of one token (its bytes, ASCII lower-cased by the caller).
    #[inline]
    pub fn token_hash(token: &[u8]) -> u64 {
        xxh3_64_with_seed(token, HASH_SEED)
    }

    /// Featurize `text` (and an optional embedding) into `out`, replacing its contents.
    pub fn featurize(
        &self,
        text: &str,
        embedding: Option<&[f32]>,
        out: &mut Features,
    ) -> Result<(), CoreError> {
        self.scan::<false, _>(text, embedding, out, &mut |_, _| {})
    }

    /// [`Featurizer::featurize`], reporting every hashed feature's bucket and
    /// text to `on_feature`, for explanations (character n-grams read `#ab`,
    /// with `#` marking a word boundary).
    pub fn featurize_with<F: FnMut(u32, &str)>(
        &self,
        text: &str,
        embedding: Option<&[f32]>,
        out: &mut Features,
        on_feature: &mut F,
    ) -> Result<(), CoreError> {
        self.scan::<true, F>(text, embedding, out, on_feature)
    }

    /// The featurizing pass; with `NAMED` it reports features to `on_feature`.
    fn scan<const NAMED: bool, F: FnMut(u32, &str)>(
        &self,
        text: &str,
        embedding: Option<&[f32]>,
        out: &mut Features,
        on_feature: &mut F,
    ) -> Result<(), CoreError> {
        if let Some(values) = embedding {
            if values.len() != self.config.embedding_dim as usize {
                return Err(CoreError::invalid(
                    "embedding",
                    format!(
                        "length {} but the router expects {}",
                        values.len(),
                        self.config.embedding_dim
                    ),
                ));
            }
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(CoreError::invalid("embedding", bad));
            }
            if let Some(bad) = values.iter().find(|v| v.abs() > MAX_EMBEDDING_MAGNITUDE) {
                return Err(CoreError::invalid(
                    "embedding",
                    format!("{bad} (components must be within ±{MAX_EMBEDDING_MAGNITUDE})"),
                ));
            }
        }
        out.clear();
        let mut counts = Counts::default();
        let mut history = History::default();
        let mut word = std::mem::take(&mut out.word);
        word.clear();
        let bytes = text.as_bytes();
        let mut position = 0usize;
        while position < bytes.len() {
            // A word: a run of ASCII letters and digits and alphanumeric
            // non-ASCII characters, ended by the separator (or the text's end).
            let start = position;
            let mut lower_case = true;
            let mut separator = None;
            while position < bytes.len() {
                let byte = bytes[position];
                if byte.is_ascii() {
                    counts.ascii[byte as usize] += 1;
                    if !ASCII_WORD[byte as usize] {
                        separator = Some((byte, 1));
                        break;
                    }
                    lower_case &= !byte.is_ascii_uppercase();
                    position += 1;
                } else {
                    let c = text[position..].chars().next().unwrap_or(' ');
                    counts.non_ascii += 1;
                    counts.non_ascii_upper += u32::from(c.is_uppercase());
                    counts.non_ascii_math += u32::from(is_math(c));
                    if !c.is_alphanumeric() {
                        separator = Some((byte, c.len_utf8()));
                        break;
                    }
                    position += c.len_utf8();
                }
            }
            if position > start {
                let span = (start, position);
                let token = if lower_case {
                    &bytes[start..position]
                } else {
                    word.clear();
                    word.extend(bytes[start..position].iter().map(u8::to_ascii_lowercase));
                    &word[..]
                };
                counts.words += 1;
                counts.word_chars += (span.1 - span.0) as u32;
                let hash = Self::token_hash(token);
                self.push_ngrams::<NAMED, F>(hash, span, text, &mut history, out, on_feature);
                if self.config.char_ngrams > 0 {
                    self.push_char_ngrams::<NAMED, F>(token, out, on_feature);
                }
            }
            let Some((byte, width)) = separator else {
                break;
            };
            if byte.is_ascii_punctuation() {
                if byte == b'`'
                    && bytes[..position].ends_with(b"``")
                    && !bytes[..position].ends_with(b"```")
                {
                    counts.fences += 1;
                }
                let hash = Self::token_hash(&bytes[position..position + 1]);
                self.push_ngrams::<NAMED, F>(
                    hash,
                    (position, position + 1),
                    text,
                    &mut history,
                    out,
                    on_feature,
                );
            }
            position += width;
        }
        out.word = word;
        Self::normalise(out);
        self.push_structure(&counts, out);
        if let Some(values) = embedding {
            let offset = self.embedding_offset();
            for (i, value) in values.iter().enumerate() {
                if *value != 0.0 {
                    out.push(offset + i as u32, *value);
                }
            }
        }
        Ok(())
    }

    /// Push the token's unigram and the word n-grams it ends; `span` is the
    /// token's byte range in `text` (explanations name n-grams by it).
    fn push_ngrams<const NAMED: bool, F: FnMut(u32, &str)>(
        &self,
        hash: u64,
        span: (usize, usize),
        text: &str,
        history: &mut History,
        out: &mut Features,
        on_feature: &mut F,
    ) {
        let (index, sign) = self.bucket(hash);
        out.push(index, sign);
        if NAMED {
            on_feature(index, &text[span.0..span.1]);
        }
        let longest = usize::from(self.config.word_ngrams);
        let mut gram = hash;
        for n in 1..longest.min(history.len + 1) {
            gram = extend(history.hashes[n - 1], gram, n as u64 + 1);
            let (index, sign) = self.bucket(gram);
            out.push(index, sign);
            if NAMED {
                on_feature(index, &text[history.starts[n - 1]..span.1]);
            }
        }
        history.hashes.copy_within(0..2, 1);
        history.starts.copy_within(0..2, 1);
        history.hashes[0] = hash;
        history.starts[0] = span.0;
        history.len = (history.len + 1).min(3);
    }

    /// Character n-grams of the word padded with a boundary mark on each side.
    fn push_char_ngrams<const NAMED: bool, F: FnMut(u32, &str)>(
        &self,
        word: &[u8],
        out: &mut Features,
        on_feature: &mut F,
    ) {
        let n = usize::from(self.config.char_ngrams);
        let padded_len = word.len() + 2;
        if padded_len < n {
            return;
        }
        let mut window = [0u8; 8];
        for start in 0..=padded_len - n {
            for (k, slot) in window[..n].iter_mut().enumerate() {
                let at = start + k;
                *slot = if at == 0 || at == padded_len - 1 {
                    b'#'
                } else {
                    word[at - 1]
                };
            }
            let hash = mix(Self::token_hash(&window[..n]) ^ 0xC4A5);
            let (index, sign) = self.bucket(hash);
            out.push(index, sign);
            if NAMED {
                on_feature(index, std::str::from_utf8(&window[..n]).unwrap_or("#?"));
            }
        }
    }

    /// Scale the hashed block to unit norm, so long prompts do not outweigh short ones.
    fn normalise(out: &mut Features) {
        if out.values.is_empty() {
            return;
        }
        let scale = 1.0 / (out.values.len() as f32).sqrt();
        for value in &mut out.values {
            *value *= scale;
        }
    }

    fn push_structure(&self, counts: &Counts, out: &mut Features) {
        let chars = counts.chars();
        let share = |n: u32| (n as f32 / chars.max(1) as f32).min(1.0);
        let log_scaled = |n: f32, top: f32| ((1.0 + n).ln() / (1.0 + top).ln()).min(1.0);
        let tokens = token_estimate_from(chars, counts.words);
        let signals: [f32; STRUCTURE_FEATURES] = [
            1.0,
            log_scaled(tokens as f32, 32_768.0),
            (counts.fences as f32 / 4.0).min(1.0),
            (share(counts.math()) * 10.0).min(1.0),
            (share(counts.sum(b'0'..=b'9')) * 5.0).min(1.0),
            (counts.of(b'?') as f32 / 3.0).min(1.0),
            share(counts.non_ascii),
            (share(counts.upper()) * 5.0).min(1.0),
            log_scaled(counts.of(b'\n') as f32, 1_024.0),
            (share(counts.punctuation()) * 5.0).min(1.0),
            log_scaled(counts.words as f32, 16_384.0),
            (counts.word_chars as f32 / counts.words.max(1) as f32 / 12.0).min(1.0),
        ];
        let offset = self.structure_offset();
        for (i, value) in signals.iter().enumerate() {
            if *value != 0.0 {
                out.push(offset + i as u32, *value);
            }
        }
    }
}

/// Estimated tokens of a text of `chars` characters and `words` words: the
/// larger of chars/4 and words·4/3, the usual rules of thumb for BPE tokenizers.
fn token_estimate_from(chars: u32, words: u32) -> u32 {
    (chars / 4).max(words * 4 / 3)
}

/// Estimated tokens of a prompt (see [`token_estimate_from`]).
pub fn token_estimate(text: &str) -> u32 {
    let chars = text.chars().count() as u32;
    let words = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count() as u32;
    token_estimate_from(chars, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn featurizer(config: FeaturizerConfig) -> Featurizer {
        Featurizer::new(config).unwrap()
    }

    fn featurize(config: FeaturizerConfig, text: &str) -> Features {
        let mut out = Features::new();
        featurizer(config).featurize(text, None, &mut out).unwrap();
        out
    }

    fn sixteen_bits() -> FeaturizerConfig {
        FeaturizerConfig {
            hash_bits: 16,
            ..FeaturizerConfig::default()
        }
    }

    /// The tokens of `text` by the definition, one character at a time:
    /// runs of alphanumeric characters (ASCII lower-cased) and single ASCII
    /// punctuation marks.
    fn reference_tokens(text: &str) -> Vec<Vec<u8>> {
        let mut tokens = Vec::new();
        let mut word = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() {
                word.push(c.to_ascii_lowercase());
                continue;
            }
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word).into_bytes());
            }
            if c.is_ascii_punctuation() {
                tokens.push(vec![c as u8]);
            }
        }
        tokens
    }

    proptest::proptest! {
        /// The single-pass tokenizer (word runs hashed in place when already
        /// lower case) finds the tokens the definition does, in order.
        #[test]
        fn unigrams_are_the_hashed_tokens_of_the_definition(
            text in "([a-zA-Z0-9]{1,6}|[ .,?!`(){}=+\\-]|[éÉßΩπ∑日本😀]|\\s){0,40}",
        ) {
            let unigrams = FeaturizerConfig { word_ngrams: 1, ..sixteen_bits() };
            let f = featurizer(unigrams);
            let out = featurize(unigrams, &text);
            let expected: Vec<(u32, f32)> = reference_tokens(&text)
                .iter()
                .map(|token| f.bucket(Featurizer::token_hash(token)))
                .collect();
            let hashed: Vec<(u32, f32)> = out
                .indices
                .iter()
                .zip(&out.values)
                .filter(|(&index, _)| index < f.hashed_dim())
                .map(|(&index, &value)| (index, value.signum()))
                .collect();
            proptest::prop_assert_eq!(hashed, expected);
        }
    }

    #[test]
    fn token_hashes_are_pinned() {
        // Part of FEATURIZER_VERSION 1: these must not change across runs,
        // platforms or releases (XXH3-64 with a fixed seed is specified on bytes).
        assert_eq!(FEATURIZER_VERSION, 1);
        assert_eq!(Featurizer::token_hash(b"hello"), 15_000_776_346_013_271_406);
        assert_eq!(Featurizer::token_hash(b"?"), 14_435_472_786_081_262_510);
    }

    #[test]
    fn feature_indices_and_signs_are_pinned() {
        let out = featurize(sixteen_bits(), "Hello world?");
        // hello, world, "hello world", ?, "world ?", then the structure signals.
        assert_eq!(&out.indices[..5], &[1390, 25768, 35896, 11182, 50952]);
        assert_eq!(&out.signs()[..5], &[-1, 1, 1, -1, 1]);
        assert_eq!(out.indices[5], 1 << 16);
    }

    #[test]
    fn words_are_case_insensitive_and_n_grams_follow_the_setting() {
        let lower = featurize(sixteen_bits(), "hello world");
        let upper = featurize(sixteen_bits(), "HELLO World");
        let hashed = |f: &Features| f.indices.iter().filter(|&&i| i < 1 << 16).count();
        assert_eq!(lower.indices[..3], upper.indices[..3]);
        assert_eq!(hashed(&lower), 3);
        let unigrams = FeaturizerConfig {
            word_ngrams: 1,
            ..sixteen_bits()
        };
        assert_eq!(hashed(&featurize(unigrams, "hello world")), 2);
        let chars = FeaturizerConfig {
            char_ngrams: 3,
            ..sixteen_bits()
        };
        // "#hi#" has two 3-grams on top of the word itself.
        assert_eq!(hashed(&featurize(chars, "hi")), 3);
    }

    #[test]
    fn hashed_block_has_unit_norm_and_structure_signals_are_bounded() {
        let text = "Solve x^2 + 3 = 7?\n```python\nprint(1)\n```\nÉtape 2";
        let config = sixteen_bits();
        let out = featurize(config, text);
        let hashed: f32 = out
            .indices
            .iter()
            .zip(&out.values)
            .filter(|(&i, _)| i < 1 << 16)
            .map(|(_, v)| v * v)
            .sum();
        assert!((hashed - 1.0).abs() < 1e-5);
        let structure = |name: &str| {
            let slot = (1 << 16) + STRUCTURE_NAMES.iter().position(|n| *n == name).unwrap() as u32;
            out.indices
                .iter()
                .position(|&i| i == slot)
                .map_or(0.0, |at| out.values[at])
        };
        assert_eq!(structure("bias"), 1.0);
        assert_eq!(structure("code_fences"), 0.5);
        assert!(structure("math_share") > 0.0);
        assert!(structure("non_ascii_share") > 0.0);
        assert!(structure("questions") > 0.0);
        for value in &out.values {
            assert!(value.is_finite() && value.abs() <= 1.0);
        }
    }

    #[test]
    fn reused_buffer_does_not_grow() {
        let f = featurizer(sixteen_bits());
        let mut out = Features::new();
        let text = "a fairly long prompt with words ".repeat(40);
        f.featurize(&text, None, &mut out).unwrap();
        let capacity = (out.indices.capacity(), out.values.capacity());
        for _ in 0..10 {
            f.featurize(&text, None, &mut out).unwrap();
        }
        assert_eq!(capacity, (out.indices.capacity(), out.values.capacity()));
    }

    #[test]
    fn embedding_is_appended_and_validated() {
        let config = FeaturizerConfig {
            embedding_dim: 3,
            ..sixteen_bits()
        };
        let f = featurizer(config);
        let mut out = Features::new();
        f.featurize("hi", Some(&[0.5, 0.0, -1.0]), &mut out)
            .unwrap();
        let offset = f.embedding_offset();
        assert_eq!(out.indices[out.len() - 2..], [offset, offset + 2]);
        let wrong = f.featurize("hi", Some(&[1.0]), &mut out).unwrap_err();
        assert!(wrong.to_string().contains("embedding"));
        let nan = f.featurize("hi", Some(&[1.0, f32::NAN, 0.0]), &mut out);
        assert!(nan.unwrap_err().to_string().contains("embedding"));
        let huge = f.featurize("hi", Some(&[1.0, 3e38, 0.0]), &mut out);
        assert!(huge.unwrap_err().to_string().contains("embedding"));
        let bound = [MAX_EMBEDDING_MAGNITUDE, -MAX_EMBEDDING_MAGNITUDE, 0.0];
        assert!(f.featurize("hi", Some(&bound), &mut out).is_ok());
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (config, field) in [
            (
                FeaturizerConfig {
                    hash_bits: 30,
                    ..sixteen_bits()
                },
                "hash_bits",
            ),
            (
                FeaturizerConfig {
                    word_ngrams: 0,
                    ..sixteen_bits()
                },
                "word_ngrams",
            ),
            (
                FeaturizerConfig {
                    char_ngrams: 9,
                    ..sixteen_bits()
                },
                "char_ngrams",
            ),
        ] {
            assert!(Featurizer::new(config)
                .unwrap_err()
                .to_string()
                .contains(field));
        }
    }

    #[test]
    fn empty_text_has_only_structure_signals() {
        let out = featurize(sixteen_bits(), "");
        assert!(out.indices.iter().all(|&i| i >= 1 << 16));
        assert_eq!(token_estimate(""), 0);
        assert_eq!(token_estimate("four words in here"), 5);
    }
}
