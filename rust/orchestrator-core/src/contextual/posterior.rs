//! Per-model Bayesian logistic regression with a diagonal Gaussian posterior
//! over the weights (Chapelle & Li 2011), for every model at once.
//!
//! Weights are stored feature-major (`[feature][model]`), so scoring a prompt
//! for all models reads one contiguous run per feature. Online updates are
//! one extended-Kalman step per observation; batch fitting finds the MAP
//! weights under the current posterior as prior (AdaGrad over a few epochs)
//! and sets each weight's variance from the Laplace approximation.

use rustc_hash::FxHashMap;

use crate::features::{next_random, Features};

/// Logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Probit correction of the expected sigmoid under a Gaussian logit of
/// variance `variance` (MacKay 1992).
pub fn moderated(z: f64, variance: f64) -> f64 {
    sigmoid(z / (1.0 + std::f64::consts::PI * variance / 8.0).sqrt())
}

/// Most models in one block: a block's running sums stay in vector
/// registers (32 f32 sums are four AVX2 registers for the logits and four
/// for the variances).
const SCORE_BLOCK: usize = 32;

/// The posterior of every model's weights.
#[derive(Debug, Clone)]
pub struct Posteriors {
    dim: usize,
    models: usize,
    prior_variance: f32,
    pub(crate) mean: Vec<f32>,
    pub(crate) variance: Vec<f32>,
    pub(crate) observations: Vec<u64>,
    /// While sharing: each changed weight's (precision, precision × mean)
    /// before its first change since the last sync.
    pub(crate) unsynced: Option<FxHashMap<usize, (f64, f64)>>,
}

/// Optimiser settings of [`Posteriors::fit`].
#[derive(Debug, Clone, Copy)]
pub struct FitSettings {
    pub epochs: u32,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Posteriors {
    pub fn new(dim: usize, models: usize, prior_variance: f32) -> Self {
        Posteriors {
            dim,
            models,
            prior_variance,
            mean: vec![0.0; dim * models],
            variance: vec![prior_variance; dim * models],
            observations: vec![0; models],
            unsynced: None,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn models(&self) -> usize {
        self.models
    }

    /// Append a model with the prior as its posterior.
    pub fn add_model(&mut self) {
        let old = self.models;
        let new = old + 1;
        let relayout = |values: &[f32], fill: f32| {
            let mut out = Vec::with_capacity(self.dim * new);
            for row in values.chunks_exact(old.max(1)).take(self.dim) {
                out.extend_from_slice(&row[..old]);
                out.push(fill);
            }
            if old == 0 {
                out.resize(self.dim, fill);
            }
            out
        };
        self.mean = relayout(&self.mean, 0.0);
        self.variance = relayout(&self.variance, self.prior_variance);
        self.observations.push(0);
        self.models = new;
    }

    /// Drop a model's posterior; later models move down one index.
    pub fn remove_model(&mut self, model: usize) {
        let old = self.models;
        let keep = |values: &[f32]| {
            let mut out = Vec::with_capacity(self.dim * (old - 1));
            for row in values.chunks_exact(old) {
                out.extend_from_slice(&row[..model]);
                out.extend_from_slice(&row[model + 1..]);
            }
            out
        };
        self.mean = keep(&self.mean);
        self.variance = keep(&self.variance);
        self.observations.remove(model);
        self.models = old - 1;
    }

    /// Logit mean and variance of every model for `features`, into the slices.
    ///
    /// Models are scored in blocks of a fixed width (the largest power of two
    /// up to [`SCORE_BLOCK`] that the model count allows; the last block
    /// overlaps the one before instead of running short), so each block's
    /// sums stay in registers for the whole pass over the features. Sums run
    /// in f32 in feature order, one lane per model, so every block width and
    /// instruction set gives bit-identical results; a block whose f32 sums
    /// overflow (large weights, variances or feature values) is summed again
    /// in f64, so every finite state and feature vector scores finite.
    pub fn score(&self, features: &Features, logits: &mut [f64], variances: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { self.score_avx2(features, logits, variances) };
            }
        }
        self.score_blocks(features, logits, variances);
    }

    /// [`Posteriors::score`] compiled for AVX2 (same arithmetic, wider
    /// registers). An AVX-512 build took a quarter to a third less time at
    /// 100 models on the development machine, but its target feature needs
    /// Rust 1.89 and the workspace promises 1.85.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn score_avx2(&self, features: &Features, logits: &mut [f64], variances: &mut [f64]) {
        self.score_blocks(features, logits, variances);
    }

    /// Score every model with the widest block width the model count allows.
    #[inline(always)]
    fn score_blocks(&self, features: &Features, logits: &mut [f64], variances: &mut [f64]) {
        match self.models {
            0 => {}
            1 => self.score_in_blocks_of::<1>(features, logits, variances),
            2..=3 => self.score_in_blocks_of::<2>(features, logits, variances),
            4..=7 => self.score_in_blocks_of::<4>(features, logits, variances),
            8..=15 => self.score_in_blocks_of::<8>(features, logits, variances),
            16..=31 => self.score_in_blocks_of::<16>(features, logits, variances),
            _ => self.score_in_blocks_of::<SCORE_BLOCK>(features, logits, variances),
        }
    }

    /// Score every model in blocks of `W` (`W` ≤ the model count), two
    /// blocks per pass over the features (twice the independent sums in
    /// flight); the last block starts `W` before the end, rescoring a few
    /// models identically.
    #[inline(always)]
    fn score_in_blocks_of<const W: usize>(
        &self,
        features: &Features,
        logits: &mut [f64],
        variances: &mut [f64],
    ) {
        let n = self.models;
        let blocks = n.div_ceil(W);
        let start = |block: usize| (block * W).min(n - W);
        let mut block = 0;
        while block + 1 < blocks {
            let starts = [start(block), start(block + 1)];
            let sums = self.block_sums::<f32, W, 2>(features, starts);
            for (&first, (z, v)) in starts.iter().zip(&sums) {
                self.store_block(features, first, z, v, logits, variances);
            }
            block += 2;
        }
        if block < blocks {
            let [(z, v)] = self.block_sums::<f32, W, 1>(features, [start(block)]);
            self.store_block(features, start(block), &z, &v, logits, variances);
        }
    }

    /// Store the f32 sums of the block of models from `first` on, or, when
    /// some overflowed, the block summed again in f64.
    #[inline(always)]
    fn store_block<const W: usize>(
        &self,
        features: &Features,
        first: usize,
        z: &[f32; W],
        v: &[f32; W],
        logits: &mut [f64],
        variances: &mut [f64],
    ) {
        let (logits, variances) = (
            &mut logits[first..first + W],
            &mut variances[first..first + W],
        );
        if z.iter().chain(v).all(|s| s.is_finite()) {
            for k in 0..W {
                logits[k] = f64::from(z[k]);
                variances[k] = f64::from(v[k]);
            }
        } else {
            let [(z, v)] = self.block_sums::<f64, W, 1>(features, [first]);
            logits.copy_from_slice(&z);
            variances.copy_from_slice(&v);
        }
    }

    /// Sums of mean·x and variance·x² over `features` for the `B` blocks of
    /// `W` models starting at `starts`, in the accumulator type `T`.
    #[inline(always)]
    fn block_sums<T, const W: usize, const B: usize>(
        &self,
        features: &Features,
        starts: [usize; B],
    ) -> [([T; W], [T; W]); B]
    where
        T: Copy + Default + From<f32> + std::ops::Mul<Output = T> + std::ops::AddAssign,
    {
        let n = self.models;
        let mut sums = [([T::default(); W], [T::default(); W]); B];
        for (&index, &x) in features.indices.iter().zip(&features.values) {
            let row = index as usize * n;
            let x = T::from(x);
            let xx = x * x;
            for ((z, v), &first) in sums.iter_mut().zip(&starts) {
                let means: &[f32; W] = self.mean[row + first..row + first + W]
                    .try_into()
                    .expect("a block is W weights");
                let vars: &[f32; W] = self.variance[row + first..row + first + W]
                    .try_into()
                    .expect("a block is W weights");
                for k in 0..W {
                    z[k] += T::from(means[k]) * x;
                    v[k] += T::from(vars[k]) * xx;
                }
            }
        }
        sums
    }

    /// One model's logit mean and variance, with each feature's contribution
    /// to the logit passed to `contribution`.
    pub fn score_one(
        &self,
        model: usize,
        features: &Features,
        contribution: &mut dyn FnMut(usize, f64),
    ) -> (f64, f64) {
        let (mut z, mut v) = (0f64, 0f64);
        for (position, (&index, &x)) in features.indices.iter().zip(&features.values).enumerate() {
            let at = index as usize * self.models + model;
            let part = f64::from(self.mean[at]) * f64::from(x);
            z += part;
            v += f64::from(self.variance[at]) * f64::from(x) * f64::from(x);
            contribution(position, part);
        }
        (z, v)
    }

    /// Natural parameters (precision, precision × mean) of weight `at`.
    pub(crate) fn natural(&self, at: usize) -> (f64, f64) {
        let precision = 1.0 / f64::from(self.variance[at]);
        (precision, precision * f64::from(self.mean[at]))
    }

    /// Record weight `at`'s value before a change, when sharing.
    fn remember(&mut self, at: usize) {
        let natural = self.natural(at);
        if let Some(unsynced) = &mut self.unsynced {
            unsynced.entry(at).or_insert(natural);
        }
    }

    /// `model`'s logit mean for `features`.
    fn logit(&self, features: &Features, model: usize) -> f32 {
        features
            .indices
            .iter()
            .zip(&features.values)
            .map(|(&i, &x)| self.mean[i as usize * self.models + model] * x)
            .sum()
    }

    /// Fold one observed quality in `[0, 1]` into `model`'s posterior
    /// (extended Kalman step of the logistic likelihood).
    pub fn update(&mut self, model: usize, features: &Features, quality: f64) {
        let (z, v) = self.score_one(model, features, &mut |_, _| {});
        let p = moderated(z, v);
        let curvature = p * (1.0 - p);
        let gain = (quality - p) / (1.0 + curvature * v);
        for (&index, &x) in features.indices.iter().zip(&features.values) {
            let at = index as usize * self.models + model;
            self.remember(at);
            let variance = f64::from(self.variance[at]);
            let x = f64::from(x);
            self.mean[at] += (variance * x * gain) as f32;
            self.variance[at] = (1.0 / (1.0 / variance + curvature * x * x)) as f32;
        }
        self.observations[model] += 1;
    }

    /// Fit the models in `targets` (model index, one quality per row) to the
    /// rows, with the current posterior as the prior; rows are sparse
    /// feature vectors. The posterior becomes the Laplace approximation
    /// around the MAP weights.
    pub fn fit(&mut self, rows: &[Features], targets: &[(usize, Vec<f64>)], settings: FitSettings) {
        if rows.is_empty() || targets.is_empty() {
            return;
        }
        let n = self.models;
        let mut touches = vec![0u32; self.dim];
        for row in rows {
            for &index in &row.indices {
                touches[index as usize] += 1;
            }
        }
        if self.unsynced.is_some() {
            for (model, _) in targets {
                for feature in 0..self.dim {
                    self.remember(feature * n + *model);
                }
            }
        }
        let prior_mean = self.mean.clone();
        let prior_precision: Vec<f32> = self.variance.iter().map(|v| 1.0 / v).collect();
        let mut squared_gradients = vec![0f32; self.mean.len()];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let mut state = settings.seed;
        let rate = settings.learning_rate as f32;
        for _ in 0..settings.epochs {
            shuffle(&mut order, &mut state);
            for &row_index in &order {
                let row = &rows[row_index];
                for (model, qualities) in targets {
                    let model = *model;
                    let z = self.logit(row, model);
                    let residual = sigmoid(f64::from(z)) as f32 - qualities[row_index] as f32;
                    for (&index, &x) in row.indices.iter().zip(&row.values) {
                        let at = index as usize * n + model;
                        let pull = prior_precision[at] * (self.mean[at] - prior_mean[at])
                            / touches[index as usize] as f32;
                        let gradient = residual * x + pull;
                        squared_gradients[at] += gradient * gradient;
                        self.mean[at] -= rate * gradient / (squared_gradients[at].sqrt() + 1e-6);
                    }
                }
            }
        }
        let mut precision = prior_precision;
        for row in rows {
            for (model, _) in targets {
                let model = *model;
                let z = self.logit(row, model);
                let p = sigmoid(f64::from(z)) as f32;
                for (&index, &x) in row.indices.iter().zip(&row.values) {
                    precision[index as usize * n + model] += p * (1.0 - p) * x * x;
                }
            }
        }
        for (model, _) in targets {
            for feature in 0..self.dim {
                let at = feature * n + model;
                self.variance[at] = 1.0 / precision[at];
            }
            self.observations[*model] += rows.len() as u64;
        }
    }
}

/// Seeded Fisher-Yates shuffle.
fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        order.swap(i, (next_random(state) % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Features over `dim` slots from (slot, value) pairs (slots may repeat).
    fn features(dim: usize, entries: &[(usize, f32)]) -> Features {
        let mut out = Features::new();
        for &(slot, value) in entries {
            out.indices.push((slot % dim) as u32);
            out.values.push(value);
        }
        out
    }

    /// Scores from the portable code and every vector instruction set this CPU has.
    fn every_path(posteriors: &Posteriors, features: &Features) -> Vec<(Vec<f64>, Vec<f64>)> {
        let models = posteriors.models();
        let mut paths = Vec::new();
        let mut run = |path: &dyn Fn(&mut [f64], &mut [f64])| {
            let (mut logits, mut variances) = (vec![f64::NAN; models], vec![f64::NAN; models]);
            path(&mut logits, &mut variances);
            paths.push((logits, variances));
        };
        run(&|z, v| posteriors.score_blocks(features, z, v));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                run(&|z, v| unsafe { posteriors.score_avx2(features, z, v) });
            }
        }
        paths
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The blocked f32 scoring agrees with the straightforward f64 sum of
        /// every model within the bound of recursive f32 summation,
        /// (terms + 2) · ε · Σ|term|, for every model count (every block
        /// width, with and without an overlapping last block), and stays
        /// finite when f32 sums would overflow (the f64 fallback); the portable
        /// code and each instruction set give bit-identical scores.
        #[test]
        fn blocked_scores_match_the_straightforward_sum(
            models in 1usize..80,
            dim in 1usize..40,
            entries in proptest::collection::vec((0usize..40, -4.0f32..4.0), 0..60),
            weights in proptest::collection::vec((-3.0f32..3.0, 0.0f32..2.0), 40 * 80),
            scale in prop_oneof![Just(1.0f32), Just(1e37f32)],
        ) {
            let mut posteriors = Posteriors::new(dim, models, 1.0);
            for (at, &(mean, variance)) in weights.iter().take(dim * models).enumerate() {
                posteriors.mean[at] = mean * scale;
                posteriors.variance[at] = variance * scale;
            }
            let features = features(dim, &entries);
            let (mut logits, mut variances) = (vec![f64::NAN; models], vec![f64::NAN; models]);
            posteriors.score(&features, &mut logits, &mut variances);
            for (logits_of_path, variances_of_path) in every_path(&posteriors, &features) {
                prop_assert_eq!(&logits_of_path, &logits);
                prop_assert_eq!(&variances_of_path, &variances);
            }
            let terms = features.len() as f64;
            let bound = |magnitude: f64| (terms + 2.0) * f64::from(f32::EPSILON) * magnitude;
            for model in 0..models {
                let (mut z_magnitude, mut v_magnitude) = (0.0, 0.0);
                for (&index, &x) in features.indices.iter().zip(&features.values) {
                    let at = index as usize * models + model;
                    let x = f64::from(x);
                    z_magnitude += (f64::from(posteriors.mean[at]) * x).abs();
                    v_magnitude += f64::from(posteriors.variance[at]) * x * x;
                }
                let (z, v) = posteriors.score_one(model, &features, &mut |_, _| {});
                prop_assert!(logits[model].is_finite() && variances[model].is_finite());
                prop_assert!((logits[model] - z).abs() <= bound(z_magnitude), "model {model}: {} vs {z}", logits[model]);
                prop_assert!((variances[model] - v).abs() <= bound(v_magnitude), "model {model}: {} vs {v}", variances[model]);
            }
        }
    }

    /// Every block width and instruction set sums in the same order, so a
    /// model's score does not depend on how many models are scored with it.
    #[test]
    fn a_model_scores_the_same_alone_and_among_many() {
        let dim = 16;
        let features = features(dim, &[(1, 0.3), (5, -0.7), (1, 0.2), (9, 1.0)]);
        let weight = |feature: usize, model: usize| {
            (
                ((feature * 7 + model * 13) % 11) as f32 / 3.0 - 1.5,
                (model % 5) as f32 / 7.0,
            )
        };
        let posteriors_of = |models: &[usize]| {
            let mut posteriors = Posteriors::new(dim, models.len(), 1.0);
            for feature in 0..dim {
                for (position, &model) in models.iter().enumerate() {
                    let (mean, variance) = weight(feature, model);
                    posteriors.mean[feature * models.len() + position] = mean;
                    posteriors.variance[feature * models.len() + position] = variance;
                }
            }
            posteriors
        };
        for models in [2usize, 3, 8, 17, 33, 100] {
            let all: Vec<usize> = (0..models).collect();
            let (mut logits, mut variances) = (vec![0.0; models], vec![0.0; models]);
            posteriors_of(&all).score(&features, &mut logits, &mut variances);
            for model in all {
                let (mut z, mut v) = ([0.0], [0.0]);
                posteriors_of(&[model]).score(&features, &mut z, &mut v);
                assert_eq!(
                    (logits[model], variances[model]),
                    (z[0], v[0]),
                    "{model} of {models}"
                );
            }
        }
    }
}
