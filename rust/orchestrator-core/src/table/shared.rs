//! Shared state: the deltas a worker adds to shared totals and the other
//! workers' statistics it reads back.

use super::Table;
use crate::error::{non_negative, CoreError};
use crate::outcome::{Delta, SharedStats};

impl Table {
    /// The outcomes each model observed since the last call, by slot, and
    /// reset them: what a worker adds to shared totals.
    pub fn take_deltas(&mut self) -> Vec<(u32, Delta)> {
        let mut out = Vec::new();
        for i in 0..self.active.len() {
            if self.active[i] && self.deltas[i].requests > 0 {
                out.push((i as u32, std::mem::take(&mut self.deltas[i])));
            }
        }
        out
    }

    /// Put back deltas that could not be delivered, so they are sent later
    /// (added to whatever was observed since).
    pub fn restore_deltas(&mut self, deltas: &[(u32, Delta)]) {
        for (slot, d) in deltas {
            let i = *slot as usize;
            if !self.is_active(*slot) {
                continue;
            }
            let t = &mut self.deltas[i];
            t.requests += d.requests;
            t.successes += d.successes;
            for (a, b) in t.failures_by_class.iter_mut().zip(d.failures_by_class) {
                *a += b;
            }
            t.reward_sum += d.reward_sum;
            t.reward_sq_sum += d.reward_sq_sum;
            t.input_tokens += d.input_tokens;
            t.output_tokens += d.output_tokens;
            t.cost_usd += d.cost_usd;
        }
    }

    /// Set other workers' statistics of a model, used with this worker's own
    /// in every score.
    pub fn set_shared(&mut self, slot: u32, stats: SharedStats) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        non_negative("shared.n", stats.n)?;
        non_negative("shared.reward_sum", stats.reward_sum)?;
        non_negative("shared.reward_sq_sum", stats.reward_sq_sum)?;
        if stats.reward_sum > stats.n * (1.0 + 1e-9) + 1e-9 {
            return Err(CoreError::invalid("shared.reward_sum", stats.reward_sum));
        }
        self.total_shared_n += stats.n - self.shared[i].n;
        self.shared[i] = stats;
        Ok(())
    }

    pub fn shared(&self, slot: u32) -> Result<SharedStats, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.shared[i])
    }
}
