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
//! (fresh, or loaded from the same saved state). A weight's index depends on
//! the model list; models added or removed while sharing keep the records in
//! step (a new model's starting state is the prior, the same everywhere), and
//! callers whose workers may list models differently share by model name
//! (`crate::routing::Routing::take_changes`).

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
        let baseline = (0..posteriors.mean.len())
            .map(|at| posteriors.natural(at))
            .map(|(q, h)| (q as f32, h as f32))
            .collect();
        posteriors.unsynced = Some(FxHashMap::default());
        self.sharing_baseline = Some(baseline);
    }

    /// Whether [`Router::start_sharing`] was called.
    pub fn is_sharing(&self) -> bool {
        self.sharing_baseline.is_some()
    }

    /// A model was appended (there were `before` models): the starting state
    /// of its weights is the prior, and recorded weight indices move.
    pub(super) fn share_model_added(&mut self, before: usize) {
        let prior = (self.config.prior_precision as f32, 0.0f32);
        let after = before + 1;
        if let Some(baseline) = self.sharing_baseline.as_mut() {
            let dim = self.posteriors.dim();
            let mut grown = Vec::with_capacity(dim * after);
            for feature in 0..dim {
                grown.extend_from_slice(&baseline[feature * before..(feature + 1) * before]);
                grown.push(prior);
            }
            *baseline = grown;
        }
        if let Some(unsynced) = self.posteriors.unsynced.as_mut().filter(|_| before > 0) {
            *unsynced = std::mem::take(unsynced)
                .into_iter()
                .map(|(at, natural)| ((at / before) * after + at % before, natural))
                .collect();
        }
    }

    /// Model `model` was removed (there were `before` models): its records
    /// are dropped and the others' indices move.
    pub(super) fn share_model_removed(&mut self, model: usize, before: usize) {
        let after = before - 1;
        let moved = |at: usize| {
            let (feature, m) = (at / before, at % before);
            (m != model).then(|| feature * after + if m > model { m - 1 } else { m })
        };
        if let Some(baseline) = self.sharing_baseline.as_mut() {
            *baseline = baseline
                .iter()
                .enumerate()
                .filter(|&(at, _)| at % before != model)
                .map(|(_, natural)| *natural)
                .collect();
        }
        if let Some(unsynced) = self.posteriors.unsynced.as_mut() {
            *unsynced = std::mem::take(unsynced)
                .into_iter()
                .filter_map(|(at, natural)| moved(at).map(|at| (at, natural)))
                .collect();
        }
    }

    /// The changes since the last call, to add to the shared sums; forgets them.
    pub fn take_changes(&mut self) -> Result<Vec<Change>, CoreError> {
        let posteriors = &mut self.posteriors;
        let Some(unsynced) = posteriors.unsynced.as_mut() else {
            return Err(CoreError::invalid("sharing", "not started"));
        };
        let before = std::mem::take(unsynced);
        let mut changes: Vec<Change> = before
            .into_iter()
            .map(|(at, (q, h))| {
                let (q_now, h_now) = posteriors.natural(at);
                (at as u64, q_now - q, h_now - h)
            })
            .filter(|&(_, dq, dh)| dq != 0.0 || dh != 0.0)
            .collect();
        changes.sort_unstable_by_key(|change| change.0);
        Ok(changes)
    }

    /// Set every weight in `sums` (the shared sums of all workers' changes)
    /// to the starting state plus the sums, keeping this worker's changes
    /// not yet taken on top.
    pub fn apply_shared(&mut self, sums: &[Change]) -> Result<(), CoreError> {
        let Some(baseline) = self.sharing_baseline.as_ref() else {
            return Err(CoreError::invalid("sharing", "not started"));
        };
        let posteriors = &mut self.posteriors;
        let weights = posteriors.mean.len();
        for &(index, dq, dh) in sums {
            let at = usize::try_from(index)
                .ok()
                .filter(|&at| at < weights)
                .ok_or_else(|| CoreError::invalid("shared weight index", index))?;
            let (q0, h0) = baseline[at];
            let (mut q, mut h) = (f64::from(q0) + dq, f64::from(h0) + dh);
            let (q_now, h_now) = posteriors.natural(at);
            if let Some(before) = posteriors
                .unsynced
                .as_mut()
                .and_then(|unsynced| unsynced.get_mut(&at))
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
            posteriors.variance[at] = (1.0 / q) as f32;
            posteriors.mean[at] = (h / q) as f32;
        }
        Ok(())
    }
}
