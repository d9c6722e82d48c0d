//! Prompt-aware selection over a [`Table`]: the registry's contextual strategy.
//!
//! [`Routing`] keeps a contextual [`Router`] beside the table, one router
//! model per registered slot (a slot → model-index map that registration
//! keeps in step). One selection is one pass whatever the number of models:
//! [`Table::candidates`] filters (constraints, breakers, half-open probes,
//! exactly as [`Table::select`]), [`Router::decide_among`] picks among the
//! eligible slots by predicted quality − expected cost / willingness to pay,
//! and [`Table::claim`] issues the ticket. The decision waits for delayed
//! quality feedback under its request id.
//!
//! Without a prompt the router decides on the empty prompt, whose only
//! feature is the bias: each model's prompt-independent mean quality (the
//! router's non-contextual estimate) against its cost. An unpriced model
//! costs what the router was calibrated with, else nothing. Prompts longer
//! than [`MAX_ROUTED_PROMPT_BYTES`] are featurized from their first
//! [`MAX_ROUTED_PROMPT_BYTES`] bytes, so a decision's work is bounded.

use crate::contextual::{FeatureEffect, Prediction, Router, RouterConfig, MIN_WILLINGNESS_TO_PAY};
use crate::error::CoreError;
use crate::spec::Constraints;
use crate::table::Table;
use crate::verdict::Selection;

/// Bytes of a prompt the router reads (64 KiB, about 16k tokens); the rest
/// is ignored.
pub const MAX_ROUTED_PROMPT_BYTES: usize = 1 << 16;

/// The longest prefix of `text` within [`MAX_ROUTED_PROMPT_BYTES`] that
/// ends on a character boundary.
pub fn bounded_prompt(text: &str) -> &str {
    if text.len() <= MAX_ROUTED_PROMPT_BYTES {
        return text;
    }
    let mut end = MAX_ROUTED_PROMPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What one request tells the router.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prompted<'a> {
    /// The prompt text (chat messages joined by newlines); empty when none.
    pub text: &'a str,
    pub embedding: Option<&'a [f32]>,
    /// USD for +1.0 of expected quality; `None`: the routing's default.
    pub willingness_to_pay: Option<f64>,
}

/// One weight's shared change by model name: (model, feature, Δ precision,
/// Δ precision × mean).
pub type NamedChange = (String, u64, f64, f64);

/// A contextual selection: the table's selection and the request id its
/// quality feedback is reported under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutedSelection {
    pub selection: Selection,
    pub request_id: u64,
}

/// One eligible model's part in a contextual explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateScore {
    pub slot: u32,
    pub prediction: Prediction,
    /// The quality the next decision's exploration rule uses (the Thompson
    /// draw, the UCB bound, or the expectation when greedy).
    pub rule_quality: f64,
    /// `rule_quality` − expected cost / willingness to pay: what is maximised.
    pub value: f64,
    /// Training observations of the model's quality predictor.
    pub observations: u64,
    pub top_features: Vec<FeatureEffect>,
}

/// Why a request would go where it goes, from one snapshot; changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedExplanation {
    /// The slot the next selection would claim.
    pub chosen: Option<u32>,
    /// Every eligible model's breaker is open; `chosen` recovers soonest.
    pub fallback_open: bool,
    pub candidates: Vec<CandidateScore>,
}

/// A contextual router kept in step with a table's slots.
#[derive(Debug, Clone)]
pub struct Routing {
    router: Router,
    default_willingness_to_pay: f64,
    model_of_slot: Vec<Option<usize>>,
    slot_of_model: Vec<u32>,
    /// Scratch: eligible slots and their expected costs.
    eligible: Vec<(u32, Option<f64>)>,
    /// Scratch: the eligible slots' router models and costs.
    candidates: Vec<(usize, f64)>,
}

/// A request's willingness to pay: finite and at least
/// [`MIN_WILLINGNESS_TO_PAY`], else an error naming it.
pub fn finite_willingness(willingness_to_pay: f64) -> Result<f64, CoreError> {
    if willingness_to_pay.is_finite() && willingness_to_pay >= MIN_WILLINGNESS_TO_PAY {
        Ok(willingness_to_pay)
    } else {
        Err(CoreError::invalid(
            "willingness_to_pay",
            format!(
                "{willingness_to_pay} (USD per +1.0 quality: finite and at least \
                 {MIN_WILLINGNESS_TO_PAY})"
            ),
        ))
    }
}

impl Routing {
    /// A routing with no models; `willingness_to_pay` is the default of requests that name none.
    pub fn new(config: RouterConfig, willingness_to_pay: f64) -> Result<Self, CoreError> {
        Ok(Routing {
            router: Router::new(config)?,
            default_willingness_to_pay: finite_willingness(willingness_to_pay)?,
            model_of_slot: Vec::new(),
            slot_of_model: Vec::new(),
            eligible: Vec::new(),
            candidates: Vec::new(),
        })
    }

    /// Seed the router's Thompson draws (see [`Router::seed`]).
    pub fn seed(&mut self, seed: u64) {
        self.router.seed(seed);
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn default_willingness_to_pay(&self) -> f64 {
        self.default_willingness_to_pay
    }

    /// The router model of `slot`.
    fn model(&self, slot: u32) -> Result<usize, CoreError> {
        self.model_of_slot
            .get(slot as usize)
            .copied()
            .flatten()
            .ok_or(CoreError::UnknownSlot(slot))
    }

    /// A model was registered in `slot` under `name`: it starts at the prior.
    pub fn add(&mut self, slot: u32, name: &str) -> Result<(), CoreError> {
        let model = self.router.add_model(name, None)?;
        let i = slot as usize;
        if self.model_of_slot.len() <= i {
            self.model_of_slot.resize(i + 1, None);
        }
        self.model_of_slot[i] = Some(model);
        self.slot_of_model.push(slot);
        Ok(())
    }

    /// The model of `slot` was unregistered: its predictor and pending
    /// decisions are dropped.
    pub fn remove(&mut self, slot: u32) -> Result<(), CoreError> {
        let model = self.model(slot)?;
        let name = self.router.model_names()[model].clone();
        self.router.remove_model(&name)?;
        self.model_of_slot[slot as usize] = None;
        self.slot_of_model.remove(model);
        for entry in self.model_of_slot.iter_mut().flatten() {
            if *entry > model {
                *entry -= 1;
            }
        }
        Ok(())
    }

    /// The eligible slots of `c` as router candidates; whether they are the
    /// soonest-recovering open breaker's probe.
    fn load_candidates(&mut self, table: &Table, c: &Constraints, now: f64) -> bool {
        let fallback_open = table.candidates(c, now, &mut self.eligible);
        self.candidates.clear();
        for &(slot, cost) in &self.eligible {
            if let Some(model) = self.model_of_slot.get(slot as usize).copied().flatten() {
                let cost = cost.or_else(|| self.router.cost(model)).unwrap_or(0.0);
                self.candidates.push((model, cost));
            }
        }
        fallback_open
    }

    /// Keep only the router candidate of `slot`.
    fn keep_only(&mut self, slot: u32) {
        let model = self.model_of_slot.get(slot as usize).copied().flatten();
        self.candidates.retain(|&(m, _)| Some(m) == model);
    }

    fn willingness(&self, prompted: &Prompted<'_>) -> Result<f64, CoreError> {
        prompted
            .willingness_to_pay
            .map_or(Ok(self.default_willingness_to_pay), finite_willingness)
    }

    /// Select for one request: filter, decide, claim. `None` when no model
    /// is eligible. Nothing is claimed when the prompt or embedding is refused.
    pub fn select(
        &mut self,
        table: &mut Table,
        c: &Constraints,
        prompted: &Prompted<'_>,
    ) -> Result<Option<RoutedSelection>, CoreError> {
        let willingness_to_pay = self.willingness(prompted)?;
        let now = table.begin_selection();
        let fallback_open = self.load_candidates(table, c, now);
        if let Some(kept) = table.session_slot(c, now) {
            // The session's model passed the same checks: the router decides
            // among it alone (so the decision is recorded for feedback).
            self.keep_only(kept);
        }
        if self.candidates.is_empty() {
            return Ok(None);
        }
        let decision = self.router.decide_among(
            bounded_prompt(prompted.text),
            prompted.embedding,
            &self.candidates,
            willingness_to_pay,
            true,
            now,
        )?;
        let slot = self.slot_of_model[decision.model];
        let selection = table.claim(slot, c, now, fallback_open)?;
        table.settle_session_on(c, slot, now)?;
        let request_id = decision
            .request_id
            .ok_or_else(|| CoreError::invalid("request_id", "the decision was not recorded"))?;
        Ok(Some(RoutedSelection {
            selection,
            request_id,
        }))
    }

    /// Select for `count` requests with the same prompt, each seeing the
    /// earlier ones as pending; stops early when no model is eligible.
    pub fn select_many(
        &mut self,
        table: &mut Table,
        c: &Constraints,
        prompted: &Prompted<'_>,
        count: usize,
    ) -> Result<Vec<RoutedSelection>, CoreError> {
        if count > crate::table::MAX_SELECT_MANY {
            return Err(CoreError::invalid(
                "n",
                format!(
                    "{count} (at most {} selections per call)",
                    crate::table::MAX_SELECT_MANY
                ),
            ));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            match self.select(table, c, prompted)? {
                Some(selected) => {
                    // The caller calls each one itself: its call starts now.
                    let sel = &selected.selection;
                    table.start_call(sel.slot, sel.ticket)?;
                    out.push(selected);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// What the next [`Routing::select`] of this request would decide and
    /// why, per eligible model, with the `top` features of each prediction.
    /// No draw is consumed, nothing is recorded or claimed.
    pub fn explain(
        &mut self,
        table: &Table,
        c: &Constraints,
        prompted: &Prompted<'_>,
        top: usize,
    ) -> Result<RoutedExplanation, CoreError> {
        let willingness_to_pay = self.willingness(prompted)?;
        let text = bounded_prompt(prompted.text);
        let now = table.now();
        let fallback_open = self.load_candidates(table, c, now);
        if self.candidates.is_empty() {
            return Ok(RoutedExplanation {
                chosen: None,
                fallback_open: false,
                candidates: Vec::new(),
            });
        }
        let decision = self.router.preview_among(
            text,
            prompted.embedding,
            &self.candidates,
            willingness_to_pay,
        )?;
        let values = self.router.rule_values();
        let mut explained = self.router.explain(text, prompted.embedding, top)?;
        let candidates = values
            .into_iter()
            .map(|(model, rule_quality, value)| {
                let why = std::mem::take(&mut explained[model].top_features);
                CandidateScore {
                    slot: self.slot_of_model[model],
                    prediction: explained[model].prediction,
                    rule_quality,
                    value,
                    observations: explained[model].observations,
                    top_features: why,
                }
            })
            .collect();
        // A session kept on its model goes there, whatever the router prefers.
        let chosen = table
            .session_slot(c, now)
            .unwrap_or(self.slot_of_model[decision.model]);
        Ok(RoutedExplanation {
            chosen: Some(chosen),
            fallback_open,
            candidates,
        })
    }

    /// Each slot's value for the request (`-inf` where not eligible, and
    /// everywhere when only an open breaker's probe is left), changing nothing.
    pub fn scores(
        &mut self,
        table: &Table,
        c: &Constraints,
        prompted: &Prompted<'_>,
    ) -> Result<Vec<f64>, CoreError> {
        let willingness_to_pay = self.willingness(prompted)?;
        let mut scores = vec![f64::NEG_INFINITY; table.capacity()];
        let fallback_open = self.load_candidates(table, c, table.now());
        if self.candidates.is_empty() || fallback_open {
            return Ok(scores);
        }
        self.router.preview_among(
            bounded_prompt(prompted.text),
            prompted.embedding,
            &self.candidates,
            willingness_to_pay,
        )?;
        for (model, _, value) in self.router.rule_values() {
            scores[self.slot_of_model[model] as usize] = value;
        }
        Ok(scores)
    }

    /// Whether `request_id` would accept feedback now.
    pub fn is_pending(&self, table: &Table, request_id: u64) -> bool {
        self.router.is_pending(request_id, table.now())
    }

    /// Delayed feedback: the quality of the decision `request_id`; returns its slot.
    pub fn report(
        &mut self,
        table: &Table,
        request_id: u64,
        quality: f64,
    ) -> Result<u32, CoreError> {
        let model = self.router.report(request_id, quality, table.now())?;
        Ok(self.slot_of_model[model])
    }

    /// Fit from an evaluation table: per slot, one quality per prompt;
    /// `costs` (USD per call, by slot) price models the table leaves unpriced.
    pub fn calibrate(
        &mut self,
        prompts: &[&str],
        qualities: &[(u32, Vec<f64>)],
        costs: &[(u32, f64)],
    ) -> Result<(), CoreError> {
        let mut columns = Vec::with_capacity(qualities.len());
        for (slot, values) in qualities {
            columns.push((self.model(*slot)?, values.clone()));
        }
        let mut prices = Vec::with_capacity(costs.len());
        for &(slot, cost) in costs {
            prices.push((self.model(slot)?, cost));
        }
        let texts: Vec<&str> = prompts.iter().map(|p| bounded_prompt(p)).collect();
        self.router.calibrate(&texts, &columns, &prices)
    }

    /// Start recording the router's changes for sharing across workers
    /// ([`crate::contextual::sharing`]); the current state is the common start.
    pub fn start_sharing(&mut self) {
        self.router.start_sharing();
    }

    /// The changes since the last call, by model name (workers may register
    /// models in another order): `(model, feature, Δ precision, Δ precision × mean)`.
    pub fn take_changes(&mut self) -> Result<Vec<NamedChange>, CoreError> {
        let changes = self.router.take_changes()?;
        let names = self.router.model_names();
        let models = names.len().max(1);
        Ok(changes
            .into_iter()
            .map(|(at, dq, dh)| {
                let at = at as usize;
                (names[at % models].clone(), (at / models) as u64, dq, dh)
            })
            .collect())
    }

    /// Apply every worker's summed changes, by model name; models not
    /// registered here are skipped.
    pub fn apply_shared(&mut self, sums: &[NamedChange]) -> Result<(), CoreError> {
        let models = self.router.model_names().len() as u64;
        let dim = u64::from(self.router.featurizer().dim());
        let mut flat = Vec::with_capacity(sums.len());
        for (name, feature, dq, dh) in sums {
            if *feature >= dim {
                return Err(CoreError::invalid("shared feature index", feature));
            }
            if let Ok(model) = self.router.model_index(name) {
                flat.push((feature * models + model as u64, *dq, *dh));
            }
        }
        self.router.apply_shared(&flat)
    }

    /// The router's state ([`crate::contextual::persist`]).
    pub fn save(&self) -> Vec<u8> {
        self.router.save()
    }

    /// Replace the router's state with saved `bytes` (this routing's
    /// hyper-parameters): registered models found in the state keep what it
    /// learned, the others start at the prior, and models of the state that
    /// are not registered are dropped. Pending decisions are forgotten.
    pub fn load(&mut self, bytes: &[u8], table: &Table) -> Result<(), CoreError> {
        let mut router = Router::load_same_featurizer(bytes, *self.router.config())?;
        let stale: Vec<String> = router
            .model_names()
            .iter()
            .filter(|name| table.slot_of(name).is_none())
            .cloned()
            .collect();
        for name in &stale {
            router.remove_model(name)?;
        }
        for &slot in &self.slot_of_model {
            let name = &table.spec(slot)?.name;
            if router.model_index(name).is_err() {
                router.add_model(name, None)?;
            }
        }
        let mut slot_of_model = Vec::with_capacity(router.model_names().len());
        let mut model_of_slot = vec![None; self.model_of_slot.len()];
        for (model, name) in router.model_names().iter().enumerate() {
            let slot = table
                .slot_of(name)
                .ok_or_else(|| CoreError::UnknownModel(name.clone()))?;
            slot_of_model.push(slot);
            model_of_slot[slot as usize] = Some(model);
        }
        if self.router.is_sharing() {
            // Every worker loads the same state: it is the new common start.
            router.start_sharing();
        }
        self.router = router;
        self.slot_of_model = slot_of_model;
        self.model_of_slot = model_of_slot;
        Ok(())
    }
}
