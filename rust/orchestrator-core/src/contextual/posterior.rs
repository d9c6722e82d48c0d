//! Per-model Bayesian logistic regression with a diagonal Gaussian posterior
//! over the weights (Chapelle & Li 2011), for every model at once.
//!
//! Weights live in two feature-major tables (means and variances): for each
//! feature a row of every model lane, so scoring a prompt reads one
//! contiguous run per feature and table. A model owns a lane.
//! Adding a model takes the lowest free lane and resets it to the prior
//! (O(features)); removing one frees its lane, so registering and
//! unregistering never re-lay out the other models' weights. Only adding a
//! model while every lane is taken re-lays the table out, and the lane count
//! then doubles, so that happens O(log models) times in a registry's life.
//! Online updates are one extended-Kalman step per observation; batch
//! fitting finds the MAP weights under the current posterior as prior
//! (AdaGrad over a few epochs) and sets each weight's variance from the
//! Laplace approximation.

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

/// Most models in one scoring block: a block's running sums stay in vector
/// registers (32 f32 sums are four AVX2 registers for the logits and four
/// for the variances).
const SCORE_BLOCK: usize = 32;

/// The posterior of every model's weights.
#[derive(Debug, Clone)]
pub struct Posteriors {
    dim: usize,
    prior_variance: f32,
    /// `dim` rows of `lanes` weight means.
    mean: Vec<f32>,
    /// `dim` rows of `lanes` weight variances.
    variance: Vec<f32>,
    /// Each model's lane.
    lane_of: Vec<usize>,
    /// Each lane's model, `None` when free; as long as the lane count.
    model_of_lane: Vec<Option<usize>>,
    pub(crate) observations: Vec<u64>,
    /// While sharing: each changed weight's (precision, precision × mean)
    /// before its first change since the last sync, by [`Posteriors::weight_id`].
    pub(crate) unsynced: Option<FxHashMap<usize, (f64, f64)>>,
    /// Lanes up to the last one taken: scoring skips the free lanes after it.
    scored: usize,
}

/// Optimiser settings of [`Posteriors::fit`].
#[derive(Debug, Clone, Copy)]
pub struct FitSettings {
    pub epochs: u32,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Posteriors {
    /// `models` models at the prior, one lane each.
    pub fn new(dim: usize, models: usize, prior_variance: f32) -> Self {
        let mut posteriors = Posteriors {
            dim,
            prior_variance,
            mean: Vec::new(),
            variance: Vec::new(),
            lane_of: Vec::new(),
            model_of_lane: Vec::new(),
            observations: vec![0; models],
            unsynced: None,
            scored: models,
        };
        posteriors.grow(models);
        // Fresh lanes are at the prior already.
        posteriors.lane_of = (0..models).collect();
        posteriors.model_of_lane = (0..models).map(Some).collect();
        posteriors
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn models(&self) -> usize {
        self.lane_of.len()
    }

    /// Lanes allocated, free ones included.
    pub fn lanes(&self) -> usize {
        self.model_of_lane.len()
    }

    /// Append a model with the prior as its posterior: the lowest free lane
    /// (its weights reset to the prior, nothing of its last owner kept), or,
    /// when every lane is taken, the first of twice as many lanes (at most
    /// `most_lanes`, but always one more). Returns its
    /// lane.
    pub fn add_model(&mut self, most_lanes: usize) -> usize {
        let model = self.lane_of.len();
        let lane = match self.model_of_lane.iter().position(Option::is_none) {
            Some(lane) => {
                self.reset_lane(lane);
                lane
            }
            None => {
                let first = self.lanes();
                self.grow((2 * first).min(most_lanes).max(first + 1));
                first
            }
        };
        self.model_of_lane[lane] = Some(model);
        self.scored = self.scored.max(lane + 1);
        self.lane_of.push(lane);
        self.observations.push(0);
        lane
    }

    /// Re-lay the weights out in `lanes` lanes (at least today's), the new
    /// lanes free and at the prior.
    fn grow(&mut self, lanes: usize) {
        let (dim, old) = (self.dim, self.lanes());
        // `vec![0.0; n]` maps zeroed pages lazily, so the means of features
        // no model has learned stay on the shared zero page, as in a table
        // allocated at once: cheaper to grow, and cache-friendly to read.
        let widen = |table: &[f32], fill: f32| {
            let mut out = vec![fill; dim * lanes];
            if old > 0 {
                for (to, from) in out.chunks_exact_mut(lanes).zip(table.chunks_exact(old)) {
                    if from.iter().any(|&value| value != fill) {
                        to[..old].copy_from_slice(from);
                    }
                }
            }
            out
        };
        self.mean = widen(&self.mean, 0.0);
        self.variance = widen(&self.variance, self.prior_variance);
        self.model_of_lane.resize(lanes, None);
    }

    /// Set every weight of `lane` to the prior.
    fn reset_lane(&mut self, lane: usize) {
        let lanes = self.lanes();
        for at in (lane..self.mean.len()).step_by(lanes) {
            // Only a learned mean is written, so a zero page stays shared.
            if self.mean[at] != 0.0 {
                self.mean[at] = 0.0;
            }
            self.variance[at] = self.prior_variance;
        }
    }

    /// Drop a model's posterior and free its lane; later models move down one index.
    pub fn remove_model(&mut self, model: usize) {
        let lane = self.lane_of.remove(model);
        self.model_of_lane[lane] = None;
        while self.scored > 0 && self.model_of_lane[self.scored - 1].is_none() {
            self.scored -= 1;
        }
        for owner in self.model_of_lane.iter_mut().flatten() {
            if *owner > model {
                *owner -= 1;
            }
        }
        self.observations.remove(model);
        if let Some(unsynced) = &mut self.unsynced {
            let dim = self.dim;
            unsynced.retain(|&id, _| id / dim != lane);
        }
    }

    /// The lane of `model`.
    pub fn lane(&self, model: usize) -> usize {
        self.lane_of[model]
    }

    /// Identity of `model`'s weight for `feature` that survives other
    /// models being added and removed (sharing records): `lane · dim + feature`.
    pub(crate) fn weight_id(&self, model: usize, feature: usize) -> usize {
        self.lane_of[model] * self.dim + feature
    }

    /// The model and feature of a [`Posteriors::weight_id`], if its lane is in use.
    pub(crate) fn weight_of_id(&self, id: usize) -> Option<(usize, usize)> {
        let model = (*self.model_of_lane.get(id / self.dim)?)?;
        Some((model, id % self.dim))
    }

    /// Where the weight of `lane` for `feature` is in either table.
    #[inline]
    fn place(&self, lane: usize, feature: usize) -> usize {
        feature * self.lanes() + lane
    }

    /// Mean and variance of `model`'s weight for `feature`.
    pub fn weight(&self, model: usize, feature: usize) -> (f32, f32) {
        let at = self.place(self.lane_of[model], feature);
        (self.mean[at], self.variance[at])
    }

    /// Set `model`'s weight for `feature`.
    pub fn set_weight(&mut self, model: usize, feature: usize, mean: f32, variance: f32) {
        let at = self.place(self.lane_of[model], feature);
        self.mean[at] = mean;
        self.variance[at] = variance;
    }

    /// Logit mean and variance of every model for `features`, into the slices.
    ///
    /// Each block's sums stay in registers for the whole pass over the
    /// features, two blocks per pass (twice the independent sums in flight).
    /// Sums run in f32 in feature order, one lane per model, so every
    /// instruction set gives bit-identical results and a model's score does
    /// not depend on the other models; a block whose f32 sums overflow
    /// (large weights, variances or feature values) is summed again in f64,
    /// so every finite state and feature vector scores finite.
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

    /// Score every lane up to the last one taken, with the widest block
    /// width their count allows.
    #[inline(always)]
    fn score_blocks(&self, features: &Features, logits: &mut [f64], variances: &mut [f64]) {
        match self.scored {
            0 => {}
            1 => self.score_in_blocks_of::<1>(features, logits, variances),
            2..=3 => self.score_in_blocks_of::<2>(features, logits, variances),
            4..=7 => self.score_in_blocks_of::<4>(features, logits, variances),
            8..=15 => self.score_in_blocks_of::<8>(features, logits, variances),
            16..=31 => self.score_in_blocks_of::<16>(features, logits, variances),
            _ => self.score_in_blocks_of::<SCORE_BLOCK>(features, logits, variances),
        }
    }

    /// Score the lanes up to the last one taken in blocks of `W` (`W` ≤
    /// their count), two blocks per pass over the features (twice the
    /// independent sums in flight); the last block starts `W` before the
    /// end, rescoring a few lanes identically.
    #[inline(always)]
    fn score_in_blocks_of<const W: usize>(
        &self,
        features: &Features,
        logits: &mut [f64],
        variances: &mut [f64],
    ) {
        let scored = self.scored;
        let blocks = scored.div_ceil(W);
        let start = |block: usize| (block * W).min(scored - W);
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

    /// Store the f32 sums of the block of lanes from `first` on for the
    /// models that own them, or, when some overflowed, the block summed
    /// again in f64.
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
        let owners = &self.model_of_lane[first..first + W];
        if z.iter().chain(v).all(|s| s.is_finite()) {
            for (k, owner) in owners.iter().enumerate() {
                if let Some(model) = *owner {
                    logits[model] = f64::from(z[k]);
                    variances[model] = f64::from(v[k]);
                }
            }
        } else {
            let [(z, v)] = self.block_sums::<f64, W, 1>(features, [first]);
            for (k, owner) in owners.iter().enumerate() {
                if let Some(model) = *owner {
                    logits[model] = z[k];
                    variances[model] = v[k];
                }
            }
        }
    }

    /// Sums of mean·x and variance·x² over `features` for the `B` blocks of
    /// `W` lanes starting at `starts`, in the accumulator type `T`.
    #[inline(always)]
    fn block_sums<T, const W: usize, const B: usize>(
        &self,
        features: &Features,
        starts: [usize; B],
    ) -> [([T; W], [T; W]); B]
    where
        T: Copy + Default + From<f32> + std::ops::Mul<Output = T> + std::ops::AddAssign,
    {
        let lanes = self.lanes();
        let mut sums = [([T::default(); W], [T::default(); W]); B];
        for (&index, &x) in features.indices.iter().zip(&features.values) {
            let row = index as usize * lanes;
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
            let (mean, variance) = self.weight(model, index as usize);
            let part = f64::from(mean) * f64::from(x);
            z += part;
            v += f64::from(variance) * f64::from(x) * f64::from(x);
            contribution(position, part);
        }
        (z, v)
    }

    /// Natural parameters (precision, precision × mean) of `model`'s weight for `feature`.
    pub(crate) fn natural(&self, model: usize, feature: usize) -> (f64, f64) {
        let (mean, variance) = self.weight(model, feature);
        let precision = 1.0 / f64::from(variance);
        (precision, precision * f64::from(mean))
    }

    /// Record a weight's value before a change, when sharing.
    fn remember(&mut self, model: usize, feature: usize) {
        if self.unsynced.is_some() {
            let natural = self.natural(model, feature);
            let id = self.weight_id(model, feature);
            if let Some(unsynced) = &mut self.unsynced {
                unsynced.entry(id).or_insert(natural);
            }
        }
    }

    /// Fold one observed quality in `[0, 1]` into `model`'s posterior
    /// (extended Kalman step of the logistic likelihood).
    pub fn update(&mut self, model: usize, features: &Features, quality: f64) {
        let (z, v) = self.score_one(model, features, &mut |_, _| {});
        let p = moderated(z, v);
        let curvature = p * (1.0 - p);
        let gain = (quality - p) / (1.0 + curvature * v);
        for (&index, &x) in features.indices.iter().zip(&features.values) {
            let feature = index as usize;
            self.remember(model, feature);
            let (mean, variance) = self.weight(model, feature);
            let variance = f64::from(variance);
            let x = f64::from(x);
            self.set_weight(
                model,
                feature,
                mean + (variance * x * gain) as f32,
                (1.0 / (1.0 / variance + curvature * x * x)) as f32,
            );
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
        let dim = self.dim;
        let mut touches = vec![0u32; dim];
        for row in rows {
            for &index in &row.indices {
                touches[index as usize] += 1;
            }
        }
        if self.unsynced.is_some() {
            for (model, _) in targets {
                for feature in 0..dim {
                    self.remember(*model, feature);
                }
            }
        }
        // Main's fit over lanes: each target's weights sit in its lane.
        let lanes = self.lanes();
        let targets: Vec<(usize, usize, &[f64])> = targets
            .iter()
            .map(|(model, qualities)| (*model, self.lane_of[*model], qualities.as_slice()))
            .collect();
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
                for &(_, lane, qualities) in &targets {
                    let z = self.lane_logit(row, lane);
                    let residual = sigmoid(f64::from(z)) as f32 - qualities[row_index] as f32;
                    for (&index, &x) in row.indices.iter().zip(&row.values) {
                        let at = index as usize * lanes + lane;
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
            for &(_, lane, _) in &targets {
                let p = sigmoid(f64::from(self.lane_logit(row, lane))) as f32;
                for (&index, &x) in row.indices.iter().zip(&row.values) {
                    precision[index as usize * lanes + lane] += p * (1.0 - p) * x * x;
                }
            }
        }
        for &(model, lane, _) in &targets {
            for at in (lane..self.variance.len()).step_by(lanes) {
                self.variance[at] = 1.0 / precision[at];
            }
            self.observations[model] += rows.len() as u64;
        }
    }

    /// The logit mean of the model in `lane` for `features`.
    fn lane_logit(&self, features: &Features, lane: usize) -> f32 {
        let lanes = self.lanes();
        features
            .indices
            .iter()
            .zip(&features.values)
            .map(|(&i, &x)| self.mean[i as usize * lanes + lane] * x)
            .sum()
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
        /// (terms + 2) · ε · Σ|term|, for every model count (full and partly
        /// used blocks, one or two blocks per pass), and stays
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
                posteriors.set_weight(at % models, at / models, mean * scale, variance * scale);
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
                    let (mean, variance) = posteriors.weight(model, index as usize);
                    let x = f64::from(x);
                    z_magnitude += (f64::from(mean) * x).abs();
                    v_magnitude += f64::from(variance) * x * x;
                }
                let (z, v) = posteriors.score_one(model, &features, &mut |_, _| {});
                prop_assert!(logits[model].is_finite() && variances[model].is_finite());
                prop_assert!((logits[model] - z).abs() <= bound(z_magnitude), "model {model}: {} vs {z}", logits[model]);
                prop_assert!((variances[model] - v).abs() <= bound(v_magnitude), "model {model}: {} vs {v}", variances[model]);
            }
        }
    }

    /// One step of a lane-table history.
    #[derive(Debug, Clone)]
    enum Step {
        Add,
        /// Remove the model at this index (modulo the model count).
        Remove(usize),
        /// Teach the model at this index (modulo the model count) one quality.
        Learn(usize, Vec<(usize, f32)>, f64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Add),
            2 => (0usize..64).prop_map(Step::Remove),
            4 => (
                0usize..64,
                proptest::collection::vec((0usize..12, -2.0f32..2.0), 1..6),
                0.0f64..=1.0,
            )
                .prop_map(|(model, entries, quality)| Step::Learn(model, entries, quality)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// After any history of adds, removes and updates, the lane table
        /// holds exactly what a table built fresh for the surviving models
        /// holds after replaying each one's own updates (a reused lane keeps
        /// nothing of its last owner; a model's posterior depends only on its
        /// own observations), scores bit-identically to it, reuses a free
        /// lane before growing, and grows only by doubling.
        #[test]
        fn a_churned_lane_table_equals_a_fresh_one(
            start in 0usize..20,
            steps in proptest::collection::vec(step(), 0..80),
            probe in proptest::collection::vec((0usize..12, -2.0f32..2.0), 1..8),
        ) {
            let dim = 12;
            let mut table = Posteriors::new(dim, start, 0.25);
            let mut histories: Vec<Vec<(Features, f64)>> = vec![Vec::new(); start];
            for step in steps {
                match step {
                    Step::Add => {
                        let (lanes, taken) = (table.lanes(), table.models());
                        let lane = table.add_model(usize::MAX);
                        if taken < lanes {
                            prop_assert_eq!(table.lanes(), lanes, "a free lane is reused");
                            prop_assert!(lane < lanes);
                        } else {
                            prop_assert_eq!(table.lanes(), (2 * lanes).max(1));
                            prop_assert_eq!(lane, lanes, "the first new lane");
                        }
                        histories.push(Vec::new());
                    }
                    Step::Remove(model) if !histories.is_empty() => {
                        let model = model % histories.len();
                        table.remove_model(model);
                        histories.remove(model);
                    }
                    Step::Learn(model, entries, quality) if !histories.is_empty() => {
                        let model = model % histories.len();
                        let features = features(dim, &entries);
                        table.update(model, &features, quality);
                        histories[model].push((features, quality));
                    }
                    Step::Remove(_) | Step::Learn(..) => {}
                }
            }
            let models = histories.len();
            prop_assert_eq!(table.models(), models);
            let mut fresh = Posteriors::new(dim, models, 0.25);
            for (model, history) in histories.iter().enumerate() {
                for (features, quality) in history {
                    fresh.update(model, features, *quality);
                }
                prop_assert_eq!(table.observations[model], history.len() as u64);
                for feature in 0..dim {
                    prop_assert_eq!(table.weight(model, feature), fresh.weight(model, feature));
                }
            }
            let probe = features(dim, &probe);
            let scores = |posteriors: &Posteriors| {
                let (mut logits, mut variances) = (vec![f64::NAN; models], vec![f64::NAN; models]);
                posteriors.score(&probe, &mut logits, &mut variances);
                (logits, variances)
            };
            prop_assert_eq!(scores(&table), scores(&fresh));
        }
    }

    /// Adding a model touches only its lane (or doubles the lanes), removing
    /// one frees its lane, and a reused lane starts from the prior: nothing
    /// of the model that held it before is inherited.
    #[test]
    fn a_recycled_lane_starts_from_the_prior() {
        let (dim, models) = (8, 17);
        let mut posteriors = Posteriors::new(dim, models, 0.5);
        assert_eq!(posteriors.lanes(), models);
        let features = features(dim, &[(1, 1.0), (3, -0.5)]);
        for model in 0..models {
            posteriors.update(model, &features, 1.0);
        }
        let last = models - 1;
        let learned: Vec<(f32, f32)> = (0..dim).map(|f| posteriors.weight(last, f)).collect();
        posteriors.remove_model(3);
        assert_eq!(posteriors.models(), last);
        // The last model moved down one index and kept its weights and lane.
        assert_eq!(posteriors.lane(last - 1), last);
        let moved: Vec<(f32, f32)> = (0..dim).map(|f| posteriors.weight(last - 1, f)).collect();
        assert_eq!(moved, learned);
        let lane = posteriors.add_model(usize::MAX);
        assert_eq!(lane, 3, "the freed lane is reused");
        assert_eq!(posteriors.lanes(), models, "no new lane");
        for feature in 0..dim {
            assert_eq!(posteriors.weight(last, feature), (0.0, 0.5));
        }
        assert_eq!(posteriors.observations[last], 0);
        let (mut logits, mut variances) = (vec![f64::NAN; models], vec![f64::NAN; models]);
        posteriors.score(&features, &mut logits, &mut variances);
        assert_eq!((logits[last], variances[last]), (0.0, 0.5 * 1.25));
        // Growing past the lanes allocated doubles them, keeping every weight.
        let keep = posteriors.weight(last - 1, 1);
        assert_eq!(posteriors.add_model(usize::MAX), models);
        assert_eq!(posteriors.lanes(), 2 * models);
        assert_eq!(posteriors.weight(last - 1, 1), keep);
        assert_eq!(posteriors.weight(models, 1), (0.0, 0.5));
        // A cap on the lanes bounds the growth, but a model always fits.
        for _ in models + 1..2 * models {
            posteriors.add_model(usize::MAX);
        }
        posteriors.add_model(2 * models + 1);
        assert_eq!(posteriors.lanes(), 2 * models + 1);
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
                    posteriors.set_weight(position, feature, mean, variance);
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
