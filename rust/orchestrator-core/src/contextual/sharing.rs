//! Sharing what routers learn across workers, as additive natural parameters.
//!
//! The posterior of every weight is Gaussian, so its natural parameters
//! (precision and precision × mean) add up: a worker's learning since the
//! last sync is the change of those two numbers for each weight it touched.
//! Every worker pushes its changes to a shared store that sums them
//! ([`Router::take_changes`]) and reads the sums back
//! ([`Router::apply_shared`]); its posterior becomes the common starting
//! state plus everyone's changes, plus its own changes not yet pushed.
//! Sums commute, so the order in which workers sync does not matter and
//! nothing is counted twice. All workers must start from the same state
//! (fresh, or loaded from the same saved state). Records are kept by the
//! model's weight lane, so models added or removed while sharing move
//! nothing (a new model's starting state is the prior, the same everywhere);
//! a change's index is `feature · models + model` in the current model
//! list, and callers whose workers may list models differently share by
//! model name (`crate::routing::Routing::take_changes`).

use rustc_hash::FxHashMap;

use crate::error::CoreError;

use super::Router;

/// One weight's shared change: (weight index, Δ precision, Δ precision × mean).
pub type Change = (u64, f64, f64);

impl Router {
    /// Start recording changes for sharing; the current state is the common
    /// starting state every worker must share.
    pub fn start_sharing(&mut self) {
        let posteriors = &mut self.posteriors;
        let dim = posteriors.dim();
        let prior = (self.config.prior_precision as f32, 0.0f32);
        let mut baseline = vec![prior; posteriors.lanes() * dim];
        for model in 0..posteriors.models() {
            for feature in 0..dim {
                let (q, h) = posteriors.natural(model, feature);
                baseline[posteriors.weight_id(model, feature)] = (q as f32, h as f32);
            }
        }
        posteriors.unsynced = Some(FxHashMap::default());
        self.sharing_baseline = Some(baseline);
    }

    /// Whether [`Router::start_sharing`] was called.
    pub fn is_sharing(&self) -> bool {
        self.sharing_baseline.is_some()
    }

    /// Model `model` was appended: the starting state of its weights (its
    /// lane's, whoever held it before) is the prior. O(features): nothing
    /// else moves, records are kept by lane.
    pub(super) fn share_model_added(&mut self, model: usize) {
        let prior = (self.config.prior_precision as f32, 0.0f32);
        if let Some(baseline) = self.sharing_baseline.as_mut() {
            let dim = self.posteriors.dim();
            let lane = self.posteriors.lane(model);
            if baseline.len() < (lane + 1) * dim {
                baseline.resize((lane + 1) * dim, prior);
            }
            baseline[lane * dim..(lane + 1) * dim].fill(prior);
        }
    }

    /// The changes since the last call, to add to the shared sums; forgets
    /// them. A change's index is `feature · models + model`.
    pub fn take_changes(&mut self) -> Result<Vec<Change>, CoreError> {
        let posteriors = &mut self.posteriors;
        let Some(unsynced) = posteriors.unsynced.as_mut() else {
            return Err(CoreError::invalid("sharing", "not started"));
        };
        let before = std::mem::take(unsynced);
        let models = posteriors.models();
        let mut changes: Vec<Change> = before
            .into_iter()
            .filter_map(|(id, (q, h))| {
                let (model, feature) = posteriors.weight_of_id(id)?;
                let (q_now, h_now) = posteriors.natural(model, feature);
                Some(((feature * models + model) as u64, q_now - q, h_now - h))
            })
            .filter(|&(_, dq, dh)| dq != 0.0 || dh != 0.0)
            .collect();
        changes.sort_unstable_by_key(|change| change.0);
        Ok(changes)
    }

    /// Set every weight in `sums` (the shared sums of all workers' changes,
    /// indexed `feature · models + model`) to the starting state plus the
    /// sums, keeping this worker's changes not yet taken on top.
    pub fn apply_shared(&mut self, sums: &[Change]) -> Result<(), CoreError> {
        let Some(baseline) = self.sharing_baseline.as_ref() else {
            return Err(CoreError::invalid("sharing", "not started"));
        };
        let posteriors = &mut self.posteriors;
        let models = posteriors.models();
        let weights = posteriors.dim() * models;
        for &(index, dq, dh) in sums {
            let at = usize::try_from(index)
                .ok()
                .filter(|&at| at < weights)
                .ok_or_else(|| CoreError::invalid("shared weight index", index))?;
            let (feature, model) = (at / models, at % models);
            let id = posteriors.weight_id(model, feature);
            let (q0, h0) = baseline[id];
            let (mut q, mut h) = (f64::from(q0) + dq, f64::from(h0) + dh);
            let (q_now, h_now) = posteriors.natural(model, feature);
            if let Some(before) = posteriors
                .unsynced
                .as_mut()
                .and_then(|unsynced| unsynced.get_mut(&id))
            {
                // Local changes not yet taken stay on top of the shared state.
                let local = (q_now - before.0, h_now - before.1);
                *before = (q, h);
                q += local.0;
                h += local.1;
            }
            if !(q.is_finite() && q > 0.0 && h.is_finite()) {
                return Err(CoreError::invalid(
                    "shared state",
                    format!("weight {index} would have precision {q} and precision × mean {h}"),
                ));
            }
            posteriors.set_weight(model, feature, (h / q) as f32, (1.0 / q) as f32);
        }
        Ok(())
    }
}
