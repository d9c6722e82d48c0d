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

/// Models scored together per pass over the features (accumulators stay in registers).
const SCORE_BLOCK: usize = 16;

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
    /// Sums run in f32 (twice the SIMD lanes); a block whose f32 sums
    /// overflow (large weights, variances or feature values) is summed again
    /// in f64, so every finite state and feature vector scores finite.
    pub fn score(&self, features: &Features, logits: &mut [f64], variances: &mut [f64]) {
        let n = self.models;
        let mut z = [0f32; SCORE_BLOCK];
        let mut v = [0f32; SCORE_BLOCK];
        for block in (0..n).step_by(SCORE_BLOCK) {
            let width = (n - block).min(SCORE_BLOCK);
            let (z, v) = (&mut z[..width], &mut v[..width]);
            self.score_block(features, block, z, v);
            let (logits, variances) = (
                &mut logits[block..block + width],
                &mut variances[block..block + width],
            );
            if z.iter().chain(v.iter()).all(|s| s.is_finite()) {
                for k in 0..width {
                    logits[k] = f64::from(z[k]);
                    variances[k] = f64::from(v[k]);
                }
            } else {
                self.score_block(features, block, logits, variances);
            }
        }
    }

    /// Sums of mean·x and variance·x² over `features` for the models from
    /// `block` on (as many as `z` holds), in the accumulator type `T`.
    fn score_block<T>(&self, features: &Features, block: usize, z: &mut [T], v: &mut [T])
    where
        T: Copy + Default + From<f32> + std::ops::Mul<Output = T> + std::ops::AddAssign,
    {
        let n = self.models;
        let width = z.len();
        z.fill(T::default());
        v.fill(T::default());
        for (&index, &x) in features.indices.iter().zip(&features.values) {
            let base = index as usize * n + block;
            let means = &self.mean[base..base + width];
            let vars = &self.variance[base..base + width];
            let x = T::from(x);
            let xx = x * x;
            for (((z, v), &mean), &var) in z.iter_mut().zip(v.iter_mut()).zip(means).zip(vars) {
                *z += T::from(mean) * x;
                *v += T::from(var) * xx;
            }
        }
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
