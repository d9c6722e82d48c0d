//! Prompt-aware routing: per prompt, each model's predicted quality with its
//! uncertainty, and the decision that maximises expected quality minus
//! expected cost / willingness to pay.
//!
//! A [`Router`] owns a [`Featurizer`], one Bayesian logistic model per routed
//! model ([`posterior`]), the decisions waiting for delayed feedback
//! ([`pending`]) and reusable scratch buffers. It learns online from
//! reported qualities, is calibrated in batch from an evaluation table, and
//! saves to a documented binary format ([`persist`]).

pub mod pending;
pub mod persist;
pub mod posterior;
pub mod sharing;

use crate::error::{non_negative, unit_interval, CoreError};
use crate::features::{Features, Featurizer, FeaturizerConfig};
use crate::rng::DrawKey;
use pending::Pending;
use posterior::{moderated, sigmoid, FitSettings, Posteriors};

/// Willingness to pay used when a request names none: USD for +1.0 of
/// expected quality. At 1.0 a model costing $0.01 more per call must be
/// expected to be at least 0.01 better.
pub const DEFAULT_WILLINGNESS_TO_PAY: f64 = 1.0;

/// The least willingness to pay accepted (USD for +1.0 of expected
/// quality): a millionth of a millionth of a dollar. Smaller values carry no
/// meaning, and cost / willingness_to_pay would overflow for real prices.
pub const MIN_WILLINGNESS_TO_PAY: f64 = 1e-12;

/// Most weights a router holds (features × model lanes, [`posterior`]; 8
/// bytes each, so 2 GiB): more is refused with an error rather than failing
/// to allocate.
pub const MAX_WEIGHTS: usize = 1 << 28;

/// How a decision treats the uncertainty of its predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exploration {
    /// Expected quality only (no exploration).
    Greedy,
    /// Quality drawn from each model's posterior (Thompson sampling).
    Thompson,
    /// Quality at the logit mean plus `weight` standard deviations (UCB).
    Ucb(f64),
}

/// Hyper-parameters of a [`Router`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterConfig {
    pub featurizer: FeaturizerConfig,
    /// Precision of the Gaussian prior on every weight.
    pub prior_precision: f64,
    pub exploration: Exploration,
    /// Passes over the table in [`Router::calibrate`].
    pub epochs: u32,
    /// AdaGrad step size in [`Router::calibrate`].
    pub learning_rate: f64,
    /// Seconds a decision accepts delayed feedback.
    pub feedback_ttl_s: f64,
    /// Decisions kept for delayed feedback; the oldest is dropped first.
    pub max_pending: usize,
    pub seed: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            featurizer: FeaturizerConfig::default(),
            prior_precision: 4.0,
            exploration: Exploration::Thompson,
            epochs: 4,
            learning_rate: 0.1,
            feedback_ttl_s: 3_600.0,
            max_pending: 65_536,
            seed: 0x5EED,
        }
    }
}

impl RouterConfig {
    fn validate(&self) -> Result<(), CoreError> {
        if !(self.prior_precision.is_finite() && self.prior_precision > 0.0) {
            return Err(CoreError::invalid("prior_precision", self.prior_precision));
        }
        if let Exploration::Ucb(weight) = self.exploration {
            non_negative("exploration_weight", weight)?;
        }
        if !(1..=1_000).contains(&self.epochs) {
            return Err(CoreError::invalid("epochs", self.epochs));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(CoreError::invalid("learning_rate", self.learning_rate));
        }
        if !(self.feedback_ttl_s.is_finite() && self.feedback_ttl_s > 0.0) {
            return Err(CoreError::invalid("feedback_ttl_s", self.feedback_ttl_s));
        }
        if !(1..=1 << 20).contains(&self.max_pending) {
            return Err(CoreError::invalid("max_pending", self.max_pending));
        }
        Ok(())
    }
}

/// One model's prediction for a prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Expected quality in [0, 1].
    pub quality: f64,
    /// Standard deviation of the quality (delta method on the logit).
    pub uncertainty: f64,
}

/// The outcome of [`Router::decide`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Index of the chosen model.
    pub model: usize,
    /// Id to report delayed feedback under, when the decision was recorded.
    pub request_id: Option<u64>,
    /// The quality the decision used for the chosen model (drawn under Thompson).
    pub score_quality: f64,
}

/// One feature's part in a model's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureEffect {
    /// The n-gram, character n-gram (`#ab`), structure signal or `embedding[i]`.
    pub feature: String,
    /// Its contribution to the logit (positive raises predicted quality).
    pub logit: f64,
}

/// Why a model got its prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelExplanation {
    pub prediction: Prediction,
    /// Expected cost used by decisions, when known.
    pub expected_cost: Option<f64>,
    /// Training observations folded in (calibration rows plus reports).
    pub observations: u64,
    /// The largest contributions by absolute value, largest first.
    pub top_features: Vec<FeatureEffect>,
}

/// A candidate's quality under the exploration rule and its value.
#[derive(Debug, Clone, Copy)]
struct Choice {
    model: usize,
    quality: f64,
    penalty: f64,
    value: f64,
}

impl Choice {
    fn new(model: usize, quality: f64, penalty: f64) -> Self {
        Choice {
            model,
            quality,
            penalty,
            value: quality - penalty,
        }
    }

    /// Replace `best` with this choice if it has a higher value (ties go to the cheaper).
    fn keep_better(self, best: &mut Option<Choice>) {
        let better = best.is_none_or(|b| {
            self.value > b.value || (self.value == b.value && self.penalty < b.penalty)
        });
        if better {
            *best = Some(self);
        }
    }
}

/// The prompt-aware router.
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
    featurizer: Featurizer,
    names: Vec<String>,
    costs: Vec<Option<f64>>,
    posteriors: Posteriors,
    pending: Pending,
    scratch: Features,
    logits: Vec<f64>,
    variances: Vec<f64>,
    /// Scratch: each eligible model and its cost / willingness_to_pay.
    candidates: Vec<(usize, f64)>,
    /// Thompson draws are a pure function of (seed, decision number, model),
    /// so a preview or an explanation shows the draw the next decision uses.
    draws: DrawKey,
    /// Decisions made so far: the counter Thompson draws are keyed by.
    decisions: u64,
    /// Natural parameters of every weight when sharing started, by weight
    /// lane and feature ([`sharing`]).
    sharing_baseline: Option<Vec<(f32, f32)>>,
}

impl Router {
    pub fn new(config: RouterConfig) -> Result<Self, CoreError> {
        config.validate()?;
        let featurizer = Featurizer::new(config.featurizer)?;
        Ok(Router {
            config,
            featurizer,
            names: Vec::new(),
            costs: Vec::new(),
            posteriors: Posteriors::new(
                featurizer.dim() as usize,
                0,
                (1.0 / config.prior_precision) as f32,
            ),
            pending: Pending::new(config.max_pending, config.feedback_ttl_s),
            scratch: Features::new(),
            logits: Vec::new(),
            variances: Vec::new(),
            candidates: Vec::new(),
            draws: DrawKey::new(config.seed),
            decisions: 0,
            sharing_baseline: None,
        })
    }

    /// A router over `models` (name, expected cost per call if known), all at the prior.
    pub fn with_models(
        config: RouterConfig,
        models: &[(&str, Option<f64>)],
    ) -> Result<Self, CoreError> {
        let mut router = Router::new(config)?;
        for (position, &(name, cost)) in models.iter().enumerate() {
            router.check_new_model(name, cost)?;
            if models[..position].iter().any(|(known, _)| *known == name) {
                return Err(CoreError::DuplicateModel(name.to_owned()));
            }
        }
        router.check_capacity(models.len())?;
        router.posteriors = Posteriors::new(
            router.featurizer.dim() as usize,
            models.len(),
            (1.0 / config.prior_precision) as f32,
        );
        router.names = models.iter().map(|(name, _)| (*name).to_owned()).collect();
        router.costs = models.iter().map(|(_, cost)| *cost).collect();
        router.logits = vec![0.0; models.len()];
        router.variances = vec![0.0; models.len()];
        Ok(router)
    }

    fn check_new_model(&self, name: &str, cost: Option<f64>) -> Result<(), CoreError> {
        if name.is_empty() {
            return Err(CoreError::invalid("name", "\"\" (empty)"));
        }
        if self.names.iter().any(|known| known == name) {
            return Err(CoreError::DuplicateModel(name.to_owned()));
        }
        if let Some(cost) = cost {
            non_negative("cost", cost)?;
        }
        Ok(())
    }

    /// Seed Thompson sampling's draws; the decision counter restarts, so the
    /// run from here on depends only on the seed and what is learned.
    pub fn seed(&mut self, seed: u64) {
        self.draws = DrawKey::new(seed);
        self.decisions = 0;
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Index of a model by name.
    pub fn model_index(&self, name: &str) -> Result<usize, CoreError> {
        self.names
            .iter()
            .position(|known| known == name)
            .ok_or_else(|| CoreError::UnknownModel(name.to_owned()))
    }

    /// Add a model (prior posterior) with an optional expected cost per call; returns its index.
    pub fn add_model(&mut self, name: &str, cost: Option<f64>) -> Result<usize, CoreError> {
        self.check_new_model(name, cost)?;
        self.check_capacity(self.names.len() + 1)?;
        let model = self.names.len();
        self.posteriors.add_model(self.most_lanes());
        self.share_model_added(model);
        self.names.push(name.to_owned());
        self.costs.push(cost);
        self.logits.push(0.0);
        self.variances.push(0.0);
        Ok(self.names.len() - 1)
    }

    /// Remove a model; later models move down one index and its pending decisions are dropped.
    pub fn remove_model(&mut self, name: &str) -> Result<(), CoreError> {
        let model = self.model_index(name)?;
        self.posteriors.remove_model(model);
        self.pending.forget_model(model);
        self.names.remove(model);
        self.costs.remove(model);
        self.logits.pop();
        self.variances.pop();
        Ok(())
    }

    /// A model's stored expected cost per call (USD), when known.
    pub fn cost(&self, model: usize) -> Option<f64> {
        self.costs.get(model).copied().flatten()
    }

    /// Set a model's expected cost per call (USD).
    pub fn set_cost(&mut self, model: usize, cost: f64) -> Result<(), CoreError> {
        self.check_model(model)?;
        self.costs[model] = Some(non_negative("cost", cost)?);
        Ok(())
    }

    /// The most weight lanes the router may hold ([`MAX_WEIGHTS`]).
    fn most_lanes(&self) -> usize {
        MAX_WEIGHTS / self.featurizer.dim() as usize
    }

    /// Refuse `models` models when their weights exceed [`MAX_WEIGHTS`].
    fn check_capacity(&self, models: usize) -> Result<(), CoreError> {
        let dim = self.featurizer.dim() as usize;
        if dim.saturating_mul(models) > MAX_WEIGHTS {
            return Err(CoreError::invalid(
                "models",
                format!(
                    "{models} models × {dim} features exceed {MAX_WEIGHTS} weights; \
                     lower hash_bits"
                ),
            ));
        }
        Ok(())
    }

    fn check_model(&self, model: usize) -> Result<(), CoreError> {
        if model < self.names.len() {
            Ok(())
        } else {
            Err(CoreError::invalid("model", model))
        }
    }

    /// Featurize into the router's scratch buffer and score every model.
    fn score_prompt(&mut self, text: &str, embedding: Option<&[f32]>) -> Result<(), CoreError> {
        self.featurizer
            .featurize(text, embedding, &mut self.scratch)?;
        self.posteriors
            .score(&self.scratch, &mut self.logits, &mut self.variances);
        Ok(())
    }

    /// Expected quality and uncertainty of every model for a prompt.
    pub fn predict(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
    ) -> Result<Vec<Prediction>, CoreError> {
        self.score_prompt(text, embedding)?;
        Ok(self
            .logits
            .iter()
            .zip(&self.variances)
            .map(|(&z, &v)| prediction(z, v))
            .collect())
    }

    /// The candidate with the best value under a deterministic quality rule.
    fn best_by(&self, quality: impl Fn(f64, f64) -> f64) -> Option<Choice> {
        let mut best: Option<Choice> = None;
        for &(model, penalty) in &self.candidates {
            let q = quality(self.logits[model], self.variances[model]);
            Choice::new(model, q, penalty).keep_better(&mut best);
        }
        best
    }

    /// Thompson sampling: every candidate's quality drawn from its posterior.
    fn best_by_thompson(&self) -> Option<Choice> {
        // Draws are keyed by (decision, model), so drawing every candidate
        // costs one normal each and no pruning bound can change the pick.
        let mut best: Option<Choice> = None;
        for &(model, penalty) in &self.candidates {
            self.draw(model, penalty).keep_better(&mut best);
        }
        best
    }

    /// A Thompson draw of `model`'s quality for the next decision.
    fn draw(&self, model: usize, penalty: f64) -> Choice {
        let (z, v) = (self.logits[model], self.variances[model]);
        let quality = sigmoid(z + v.sqrt() * self.draws.normal(self.decisions, model));
        Choice::new(model, quality, penalty)
    }

    /// The quality the next decision's exploration rule gives `model` for
    /// the prompt last scored (its Thompson draw, UCB bound or expectation).
    fn rule_quality(&self, model: usize) -> f64 {
        let (z, v) = (self.logits[model], self.variances[model]);
        match self.config.exploration {
            Exploration::Greedy => moderated(z, v),
            Exploration::Ucb(weight) => sigmoid(z + weight * v.sqrt()),
            Exploration::Thompson => self.draw(model, 0.0).quality,
        }
    }

    /// Choose among `eligible` model indices (all models when `None`) the one
    /// maximising quality − cost / willingness_to_pay, with quality as the
    /// exploration rule says. `costs` (per model, by index) overrides the
    /// stored costs. With `record`, the decision waits for delayed feedback
    /// under the returned request id; `now` is the caller's clock in seconds.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
        eligible: Option<&[usize]>,
        costs: Option<&[f64]>,
        willingness_to_pay: f64,
        record: bool,
        now: f64,
    ) -> Result<Decision, CoreError> {
        let willingness_to_pay = positive_willingness(willingness_to_pay)?;
        if let Some(costs) = costs {
            if costs.len() != self.names.len() {
                return Err(CoreError::invalid(
                    "costs",
                    format!("{} values for {} models", costs.len(), self.names.len()),
                ));
            }
            for &cost in costs {
                non_negative("costs", cost)?;
            }
        }
        if let Some(eligible) = eligible {
            if let Some(&bad) = eligible.iter().find(|&&m| m >= self.names.len()) {
                return Err(CoreError::invalid("eligible", bad));
            }
        }
        self.score_prompt(text, embedding)?;
        let count = eligible.map_or(self.names.len(), <[usize]>::len);
        self.candidates.clear();
        for position in 0..count {
            let model = eligible.map_or(position, |e| e[position]);
            let cost = match costs {
                Some(costs) => costs[model],
                None => self.costs[model].ok_or_else(|| {
                    CoreError::invalid(
                        "costs",
                        format!("no cost is known for model {:?}", self.names[model]),
                    )
                })?,
            };
            self.candidates
                .push((model, penalty(cost, willingness_to_pay)));
        }
        self.choose(record, now)
    }

    /// [`Router::decide`] for a caller that has already filtered the models
    /// (the registry's selection pass): `candidates` holds each eligible
    /// model's index and expected cost (USD) for this request.
    pub fn decide_among(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
        candidates: &[(usize, f64)],
        willingness_to_pay: f64,
        record: bool,
        now: f64,
    ) -> Result<Decision, CoreError> {
        self.load_candidates(text, embedding, candidates, willingness_to_pay)?;
        self.choose(record, now)
    }

    /// Check `candidates`, score the prompt and keep each candidate's cost penalty.
    fn load_candidates(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
        candidates: &[(usize, f64)],
        willingness_to_pay: f64,
    ) -> Result<(), CoreError> {
        let willingness_to_pay = positive_willingness(willingness_to_pay)?;
        for &(model, cost) in candidates {
            self.check_model(model)?;
            non_negative("costs", cost)?;
        }
        self.score_prompt(text, embedding)?;
        self.candidates.clear();
        self.candidates.extend(
            candidates
                .iter()
                .map(|&(model, cost)| (model, penalty(cost, willingness_to_pay))),
        );
        Ok(())
    }

    /// The best of `self.candidates` (scored for the prompt in the scratch
    /// buffer) under the exploration rule, changing nothing.
    fn best(&self) -> Result<Choice, CoreError> {
        let best = match self.config.exploration {
            Exploration::Greedy => self.best_by(moderated),
            Exploration::Ucb(weight) => self.best_by(|z, v| sigmoid(z + weight * v.sqrt())),
            Exploration::Thompson => self.best_by_thompson(),
        };
        best.ok_or_else(|| CoreError::invalid("eligible", "no model to choose from"))
    }

    /// The best candidate, recorded for feedback if asked; the next decision draws anew.
    fn choose(&mut self, record: bool, now: f64) -> Result<Decision, CoreError> {
        let Choice {
            model,
            quality: score_quality,
            ..
        } = self.best()?;
        self.decisions += 1;
        let request_id = record.then(|| self.pending.record(model, &self.scratch, now));
        Ok(Decision {
            model,
            request_id,
            score_quality,
        })
    }

    /// What [`Router::decide_among`] would decide next, without deciding:
    /// no draw is consumed and nothing is recorded (explanations).
    pub fn preview_among(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
        candidates: &[(usize, f64)],
        willingness_to_pay: f64,
    ) -> Result<Decision, CoreError> {
        self.load_candidates(text, embedding, candidates, willingness_to_pay)?;
        let choice = self.best()?;
        Ok(Decision {
            model: choice.model,
            request_id: None,
            score_quality: choice.quality,
        })
    }

    /// For each of `candidates` (after [`Router::preview_among`] or
    /// [`Router::decide_among`] scored the prompt): the quality the next
    /// decision's exploration rule gives it, and its value (that quality
    /// minus cost / willingness_to_pay).
    pub fn rule_values(&self) -> Vec<(usize, f64, f64)> {
        self.candidates
            .iter()
            .map(|&(model, penalty)| {
                let quality = self.rule_quality(model);
                (model, quality, quality - penalty)
            })
            .collect()
    }

    /// Whether `request_id` would accept feedback at `now` (nothing changes).
    pub fn is_pending(&self, request_id: u64, now: f64) -> bool {
        self.pending.is_live(request_id, now)
    }

    /// Learn that `model` reached `quality` on this prompt.
    pub fn learn(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
        model: usize,
        quality: f64,
    ) -> Result<(), CoreError> {
        self.check_model(model)?;
        let quality = unit_interval("quality", quality)?;
        self.featurizer
            .featurize(text, embedding, &mut self.scratch)?;
        self.posteriors.update(model, &self.scratch, quality);
        Ok(())
    }

    /// Delayed feedback: the quality of the decision `request_id`, at `now`.
    /// Returns the index of the model it was about.
    pub fn report(&mut self, request_id: u64, quality: f64, now: f64) -> Result<usize, CoreError> {
        let quality = unit_interval("quality", quality)?;
        let claimed = self.pending.claim(request_id, now)?;
        let model = claimed.model;
        self.posteriors.update(model, claimed.features, quality);
        Ok(model)
    }

    /// Fit the router from an evaluation table: `qualities` holds, per model
    /// index, one quality in [0, 1] per prompt; `costs` the models' expected
    /// cost per call, stored for later decisions. Models not in `qualities`
    /// keep their posterior. Online learning continues from the result.
    pub fn calibrate(
        &mut self,
        prompts: &[&str],
        qualities: &[(usize, Vec<f64>)],
        costs: &[(usize, f64)],
    ) -> Result<(), CoreError> {
        if prompts.is_empty() {
            return Err(CoreError::invalid("prompts", "empty"));
        }
        let mut seen = vec![false; self.names.len()];
        for (model, values) in qualities {
            self.check_model(*model)?;
            if std::mem::replace(&mut seen[*model], true) {
                return Err(CoreError::invalid("qualities", "a model appears twice"));
            }
            if values.len() != prompts.len() {
                return Err(CoreError::invalid(
                    "qualities",
                    format!(
                        "{} values for model {:?} but {} prompts",
                        values.len(),
                        self.names[*model],
                        prompts.len()
                    ),
                ));
            }
            for (row, &value) in values.iter().enumerate() {
                if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                    return Err(CoreError::invalid(
                        "qualities",
                        format!(
                            "{value} for model {:?} at row {row} (must be in [0, 1])",
                            self.names[*model]
                        ),
                    ));
                }
            }
        }
        for &(model, cost) in costs {
            self.check_model(model)?;
            non_negative("costs", cost)?;
        }
        let mut rows = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let mut features = Features::new();
            self.featurizer.featurize(prompt, None, &mut features)?;
            rows.push(features);
        }
        self.posteriors.fit(
            &rows,
            qualities,
            FitSettings {
                epochs: self.config.epochs,
                learning_rate: self.config.learning_rate,
                seed: self.config.seed,
            },
        );
        for &(model, cost) in costs {
            self.costs[model] = Some(cost);
        }
        Ok(())
    }

    /// Per model: prediction, expected cost and the `top` features that moved it most.
    pub fn explain(
        &mut self,
        text: &str,
        embedding: Option<&[f32]>,
        top: usize,
    ) -> Result<Vec<ModelExplanation>, CoreError> {
        let mut names: Vec<(u32, String)> = Vec::new();
        self.featurizer.featurize_with(
            text,
            embedding,
            &mut self.scratch,
            &mut |index, text| {
                names.push((index, text.to_owned()));
            },
        )?;
        let structure = self.featurizer.structure_offset();
        let embedding_offset = self.featurizer.embedding_offset();
        let feature_name = |position: usize, index: u32| -> String {
            if index >= embedding_offset {
                format!("embedding[{}]", index - embedding_offset)
            } else if index >= structure {
                crate::features::STRUCTURE_NAMES[(index - structure) as usize].to_owned()
            } else {
                names
                    .get(position)
                    .map_or_else(|| format!("bucket {index}"), |(_, n)| n.clone())
            }
        };
        let mut out = Vec::with_capacity(self.names.len());
        for model in 0..self.names.len() {
            let mut effects: Vec<(usize, f64)> = Vec::with_capacity(self.scratch.len());
            let (z, v) = self
                .posteriors
                .score_one(model, &self.scratch, &mut |position, part| {
                    effects.push((position, part));
                });
            effects.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            let top_features = effects
                .iter()
                .filter(|(_, part)| *part != 0.0)
                .take(top)
                .map(|&(position, part)| FeatureEffect {
                    feature: feature_name(position, self.scratch.indices[position]),
                    logit: part,
                })
                .collect();
            out.push(ModelExplanation {
                prediction: prediction(z, v),
                expected_cost: self.costs[model],
                observations: self.posteriors.observations[model],
                top_features,
            });
        }
        Ok(out)
    }
}

/// `willingness_to_pay` if it is > 0 (infinity means cost is ignored), else an error.
/// A standalone decision's willingness to pay: at least
/// [`MIN_WILLINGNESS_TO_PAY`]; infinity means cost does not matter.
fn positive_willingness(willingness_to_pay: f64) -> Result<f64, CoreError> {
    if willingness_to_pay.is_nan() || willingness_to_pay < MIN_WILLINGNESS_TO_PAY {
        return Err(CoreError::invalid(
            "willingness_to_pay",
            format!(
                "{willingness_to_pay} (USD per +1.0 quality: at least {MIN_WILLINGNESS_TO_PAY})"
            ),
        ));
    }
    Ok(willingness_to_pay)
}

/// The quality a cost gives up at `willingness_to_pay`; finite for any
/// finite cost, so a candidate's value is never `-inf`.
fn penalty(cost: f64, willingness_to_pay: f64) -> f64 {
    (cost / willingness_to_pay).min(f64::MAX)
}

/// Expected quality and its standard deviation from a logit mean and variance.
fn prediction(z: f64, v: f64) -> Prediction {
    let quality = moderated(z, v);
    Prediction {
        quality,
        // The delta method's figure, capped at 0.5: no quality in [0, 1]
        // has a larger standard deviation.
        uncertainty: (quality * (1.0 - quality) * v.sqrt()).min(0.5),
    }
}
