//! Change detection and the discounted statistics' rescaling.

use super::{Table, FORGOTTEN};

impl Table {
    /// Change detection: when a model's recent rewards (a fast moving
    /// average over about 30 outcomes) sit more than `CHANGE_SIGMAS` standard
    /// errors from its long-run mean, its history no longer describes it:
    /// keep only `CHANGE_KEEP` outcomes' worth, centred on the recent level,
    /// so the model is re-learned in tens of requests instead of thousands.
    pub(super) fn detect_change(&mut self, i: usize, reward: f64) {
        const ALPHA: f64 = 0.03;
        const CHANGE_SIGMAS: f64 = 6.0;
        const CHANGE_KEEP: f64 = 20.0;
        let (level, seen) = &mut self.recent_reward[i];
        *level = if *seen == 0 {
            reward
        } else {
            *level + ALPHA * (reward - *level)
        };
        *seen = seen.saturating_add(1);
        let n = self.disc_n[i] / self.weight;
        if f64::from(*seen) < 2.0 / ALPHA || n <= 2.0 * CHANGE_KEEP {
            return;
        }
        let mean = self.disc_sum[i] / self.disc_n[i];
        let var = (self.disc_sq[i] / self.disc_n[i] - mean * mean).max(1e-4);
        let level = *level;
        let sd_level = (var * ALPHA / (2.0 - ALPHA)).sqrt();
        if (level - mean).abs() <= CHANGE_SIGMAS * sd_level {
            return;
        }
        let keep = CHANGE_KEEP * self.weight;
        self.total_disc_n += keep - self.disc_n[i];
        self.disc_n[i] = keep;
        self.disc_sum[i] = level * keep;
        self.disc_sq[i] = (var + level * level) * keep;
        self.recent_reward[i].1 = 0;
    }

    pub(super) fn rescale(&mut self) {
        let inv = 1.0 / self.weight;
        for i in 0..self.active.len() {
            self.disc_n[i] *= inv;
            self.disc_sum[i] *= inv;
            self.disc_sq[i] *= inv;
            if self.disc_n[i] < FORGOTTEN {
                // Discounted to nothing: forget it exactly, rather than let a
                // subnormal count make `1 / n` infinite.
                self.disc_n[i] = 0.0;
                self.disc_sum[i] = 0.0;
                self.disc_sq[i] = 0.0;
            }
        }
        self.total_disc_n = (0..self.active.len())
            .filter(|&i| self.active[i])
            .map(|i| self.disc_n[i])
            .sum();
        self.weight = 1.0;
    }
}
