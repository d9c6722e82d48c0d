//! Every model's statistics as one matrix, for numpy.

use super::Table;

impl Table {
    /// Column names of [`Table::stats_matrix`].
    pub const STATS_COLUMNS: [&'static str; 12] = [
        "active",
        "trials",
        "pending",
        "successes",
        "failures",
        "mean_reward",
        "discounted_trials",
        "discounted_mean_reward",
        "latency_ewma_s",
        "tokens_per_second",
        "total_cost_usd",
        "breaker_state",
    ];

    /// Row-major `capacity() x STATS_COLUMNS.len()` matrix; unknown values are NaN.
    pub fn stats_matrix(&self) -> Vec<f64> {
        let cols = Self::STATS_COLUMNS.len();
        let mut out = Vec::with_capacity(self.active.len() * cols);
        for i in 0..self.active.len() {
            let o = &self.observed[i];
            let mean = |sum: f64, n: f64| if n > 0.0 { sum / n } else { f64::NAN };
            out.extend_from_slice(&[
                f64::from(u8::from(self.active[i])),
                self.trials[i] as f64,
                f64::from(self.pending[i]),
                o.successes as f64,
                (o.requests - o.successes) as f64,
                mean(o.reward_sum, o.requests as f64),
                self.disc_n[i] / self.weight,
                mean(self.disc_sum[i], self.disc_n[i]),
                o.latency_ewma_s.unwrap_or(f64::NAN),
                o.tokens_per_second.unwrap_or(f64::NAN),
                o.total_cost_usd,
                f64::from(self.breakers[i].state as u8),
            ]);
        }
        out
    }
}
