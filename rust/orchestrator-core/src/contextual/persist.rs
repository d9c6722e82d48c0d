//! Router state as bytes. Little-endian throughout:
//!
//! | field | type |
//! |---|---|
//! | magic `ORCROUTE` | 8 bytes |
//! | format version ([`STATE_FORMAT_VERSION`]) | u32 |
//! | featurizer version ([`FEATURIZER_VERSION`]) | u32 |
//! | hash_bits, word_ngrams, char_ngrams, 0 | 4 × u8 |
//! | embedding_dim | u32 |
//! | models `n` | u32 |
//! | per model: name length, UTF-8 name, has cost (0/1), cost USD, observations | u32, bytes, u8, f64, u64 |
//! | weight means, feature-major (`[feature][model]`) | `dim·n` × f32 |
//! | weight variances, same layout | `dim·n` × f32 |
//! | checksum: XXH3-64 of every byte above | u64 |
//!
//! The checksum makes a state damaged on disk or in transit (a flipped bit
//! in a weight is otherwise a valid float) an error instead of knowledge.
//! Hyper-parameters (prior, exploration, epochs...) are not state: the loader
//! supplies them. Pending decisions are not saved.

use xxhash_rust::xxh3::xxh3_64;

use crate::error::CoreError;
use crate::features::{FeaturizerConfig, FEATURIZER_VERSION};

use super::{Router, RouterConfig};

/// Version of the byte layout above.
pub const STATE_FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"ORCROUTE";

/// Bytes of the trailing checksum.
const CHECKSUM_BYTES: usize = 8;

/// Length of the feature vector the state's featurizer settings describe.
fn router_dim(config: &RouterConfig) -> Result<u32, CoreError> {
    Ok(crate::features::Featurizer::new(config.featurizer)?.dim())
}

fn corrupt(detail: impl std::fmt::Display) -> CoreError {
    CoreError::invalid("state", detail)
}

/// A cursor over the saved bytes that fails with a clear error at the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CoreError> {
        if self.bytes.len() < n {
            return Err(corrupt(format!("truncated while reading {what}")));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, CoreError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn floats(&mut self, count: usize, what: &str) -> Result<Vec<f32>, CoreError> {
        let raw = self.take(count * 4, what)?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(corrupt(format!("{what} holds a non-finite value")));
        }
        Ok(values)
    }
}

impl Router {
    /// The router's learned state in the format above.
    pub fn save(&self) -> Vec<u8> {
        let featurizer = self.featurizer.config();
        let weights = self.posteriors.dim() * self.posteriors.models();
        let mut out = Vec::with_capacity(64 + weights * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STATE_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&FEATURIZER_VERSION.to_le_bytes());
        out.extend_from_slice(&[
            featurizer.hash_bits,
            featurizer.word_ngrams,
            featurizer.char_ngrams,
            0,
        ]);
        out.extend_from_slice(&featurizer.embedding_dim.to_le_bytes());
        out.extend_from_slice(&(self.names.len() as u32).to_le_bytes());
        for (model, name) in self.names.iter().enumerate() {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(u8::from(self.costs[model].is_some()));
            out.extend_from_slice(&self.costs[model].unwrap_or(0.0).to_le_bytes());
            out.extend_from_slice(&self.posteriors.observations[model].to_le_bytes());
        }
        let (dim, models) = (self.posteriors.dim(), self.posteriors.models());
        for part in [0, 1] {
            for feature in 0..dim {
                for model in 0..models {
                    let (mean, variance) = self.posteriors.weight(model, feature);
                    let value = if part == 0 { mean } else { variance };
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        let checksum = xxh3_64(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// A router from saved state, with `config`'s hyper-parameters; the
    /// featurizer settings come from the state. Refuses state written by
    /// another featurizer or format version, and damaged state (checksum).
    pub fn load(bytes: &[u8], config: RouterConfig) -> Result<Router, CoreError> {
        Self::read(bytes, config, false)
    }

    /// Like [`Router::load`], refusing a state whose featurizer settings are
    /// not `config`'s before anything is allocated: a router configured by
    /// its owner (a registry's selector) keeps its features, and a 36-byte
    /// state cannot make it allocate a 2^24-bucket weight table.
    pub fn load_same_featurizer(bytes: &[u8], config: RouterConfig) -> Result<Router, CoreError> {
        Self::read(bytes, config, true)
    }

    fn read(
        bytes: &[u8],
        config: RouterConfig,
        same_featurizer: bool,
    ) -> Result<Router, CoreError> {
        let mut reader = Reader { bytes };
        if reader.take(8, "the header")? != MAGIC {
            return Err(corrupt("not router state (bad magic bytes)"));
        }
        let format = reader.u32("the format version")?;
        if format != STATE_FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {format}; this build reads version {STATE_FORMAT_VERSION}"
            )));
        }
        let version = reader.u32("the featurizer version")?;
        if version != FEATURIZER_VERSION {
            return Err(corrupt(format!(
                "written by featurizer version {version}; this build has version \
                 {FEATURIZER_VERSION}: recalibrate instead of loading it"
            )));
        }
        let [hash_bits, word_ngrams, char_ngrams, _] = reader.array::<4>("the featurizer")?;
        let embedding_dim = reader.u32("the embedding size")?;
        let featurizer = FeaturizerConfig {
            hash_bits,
            word_ngrams,
            char_ngrams,
            embedding_dim,
        };
        let (config, expected) = (
            RouterConfig {
                featurizer,
                ..config
            },
            config,
        );
        if same_featurizer && featurizer != expected.featurizer {
            return Err(corrupt(format!(
                "its featurizer settings {featurizer:?} are not this router's {:?}: \
                 load it where the router is configured the same",
                expected.featurizer
            )));
        }
        let models = reader.u32("the model count")?;
        let mut entries = Vec::new();
        for _ in 0..models {
            let length = reader.u32("a model name")? as usize;
            let name = std::str::from_utf8(reader.take(length, "a model name")?)
                .map_err(|_| corrupt("a model name is not UTF-8"))?;
            let [has_cost] = reader.array::<1>("a model cost")?;
            let cost = f64::from_le_bytes(reader.array("a model cost")?);
            let observations = u64::from_le_bytes(reader.array("a model's observations")?);
            entries.push((name, (has_cost == 1).then_some(cost), observations));
        }
        let weights = (u64::from(router_dim(&config)?)).saturating_mul(u64::from(models));
        let expected = weights
            .saturating_mul(8)
            .saturating_add(CHECKSUM_BYTES as u64);
        if expected != reader.bytes.len() as u64 {
            return Err(corrupt(format!(
                "{} bytes of weights and checksum for {models} models, expected {expected}",
                reader.bytes.len(),
            )));
        }
        // The layout is consistent: check the bytes before interpreting the weights.
        let (payload, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        if xxh3_64(payload).to_le_bytes() != checksum {
            return Err(corrupt(
                "checksum mismatch: the state was damaged after it was saved",
            ));
        }
        reader.bytes = &reader.bytes[..reader.bytes.len() - CHECKSUM_BYTES];
        let mut router = Router::with_models(
            config,
            &entries
                .iter()
                .map(|&(name, cost, _)| (name, cost))
                .collect::<Vec<_>>(),
        )?;
        for (model, &(_, _, observations)) in entries.iter().enumerate() {
            router.posteriors.observations[model] = observations;
        }
        let (dim, models) = (router.posteriors.dim(), router.posteriors.models());
        let weights = dim * models;
        let mean = reader.floats(weights, "the weight means")?;
        let variance = reader.floats(weights, "the weight variances")?;
        if variance.iter().any(|v| *v <= 0.0) {
            return Err(corrupt("the weight variances hold a value ≤ 0"));
        }
        // Learning only shrinks a weight's variance from the prior's.
        let prior = (1.0 / config.prior_precision) as f32;
        if variance.iter().any(|v| *v > prior) {
            return Err(corrupt(
                "the weight variances hold a value above the prior's (learning only shrinks them)",
            ));
        }
        for feature in 0..dim {
            for model in 0..models {
                let at = feature * models + model;
                router
                    .posteriors
                    .set_weight(model, feature, mean[at], variance[at]);
            }
        }
        Ok(router)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_router() -> Router {
        let config = RouterConfig {
            featurizer: FeaturizerConfig {
                hash_bits: 10,
                ..FeaturizerConfig::default()
            },
            ..RouterConfig::default()
        };
        let mut router = Router::with_models(config, &[("cheap", Some(0.001)), ("best", None)])
            .expect("a valid router");
        router
            .learn("what is 2+2", None, 0, 1.0)
            .expect("a valid observation");
        router
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let router = small_router();
        let state = router.save();
        assert!(Router::load(&state, *router.config()).is_ok());
        // Every bit of every 7th byte: header, names, costs, weights and the checksum itself.
        for at in (0..state.len()).step_by(7).chain([state.len() - 1]) {
            for bit in 0..8 {
                let mut damaged = state.clone();
                damaged[at] ^= 1 << bit;
                let error = Router::load(&damaged, *router.config())
                    .expect_err("a damaged state must not load");
                assert!(error.to_string().contains("state"), "{error}");
            }
        }
    }

    #[test]
    fn load_same_featurizer_refuses_other_settings_before_allocating() {
        let router = small_router();
        let state = router.save();
        let wider = RouterConfig {
            featurizer: FeaturizerConfig {
                hash_bits: 24,
                ..router.config().featurizer
            },
            ..*router.config()
        };
        let error = Router::load_same_featurizer(&state, wider).unwrap_err();
        assert!(error.to_string().contains("featurizer settings"), "{error}");
        assert!(Router::load_same_featurizer(&state, *router.config()).is_ok());
        assert!(
            Router::load(&state, wider).is_ok(),
            "the standalone load takes the state's"
        );
    }

    #[test]
    fn a_flipped_weight_names_the_checksum() {
        let router = small_router();
        let mut state = router.save();
        let middle = state.len() / 2;
        state[middle] ^= 0x10;
        let error = Router::load(&state, *router.config()).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }
}
