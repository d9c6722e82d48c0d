//! What was observed of one model: counts, tokens, cost, and recent latencies
//! for percentiles. Read as a [`Snapshot`].

use crate::ERROR_CLASSES;

/// Recent latencies kept per model for percentiles.
const RING: usize = 256;
/// Successes in the "recent" latency window and in the baseline before it.
pub const RECENT_LATENCIES: usize = 20;
pub const BASELINE_LATENCIES: usize = 200;
/// Weight of the newest observation in the moving averages.
const EWMA_ALPHA: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct Observed {
    pub requests: u64,
    pub successes: u64,
    pub failures_by_class: [u64; ERROR_CLASSES.len()],
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_cost_usd: f64,
    pub reward_sum: f64,
    pub reward_sq_sum: f64,
    /// Moving average of output tokens per second, over successes with tokens.
    pub tokens_per_second: Option<f64>,
    pub latency_ewma_s: Option<f64>,
    latencies: Ring,
    ttfts: Ring,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            requests: 0,
            successes: 0,
            failures_by_class: [0; ERROR_CLASSES.len()],
            input_tokens: 0,
            output_tokens: 0,
            total_cost_usd: 0.0,
            reward_sum: 0.0,
            reward_sq_sum: 0.0,
            tokens_per_second: None,
            latency_ewma_s: None,
            latencies: Ring::default(),
            ttfts: Ring::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Ring {
    values: Box<[f32; RING]>,
    len: usize,
    next: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            values: Box::new([0.0; RING]),
            len: 0,
            next: 0,
        }
    }
}

impl Ring {
    fn push(&mut self, value: f64) {
        self.values[self.next] = value as f32;
        self.next = (self.next + 1) % RING;
        self.len = (self.len + 1).min(RING);
    }

    /// Median of the newest `recent` values, and of up to `baseline` values
    /// before them: a model's latency now against its own normal.
    fn levels(&self, recent: usize, baseline: usize) -> (Option<f64>, Option<f64>) {
        let newest_first =
            (1..=self.len).map(|back| f64::from(self.values[(self.next + RING - back) % RING]));
        let values: Vec<f64> = newest_first.take(recent + baseline).collect();
        let split = recent.min(values.len());
        (median(&values[..split]), median(&values[split..]))
    }

    /// `(p50, p95)` of the kept values, by nearest rank.
    fn percentiles(&self) -> (Option<f64>, Option<f64>) {
        if self.len == 0 {
            return (None, None);
        }
        let mut sorted: Vec<f32> = self.values[..self.len].to_vec();
        sorted.sort_by(f32::total_cmp);
        let rank = |p: f64| {
            let idx = ((p * self.len as f64).ceil() as usize).clamp(1, self.len) - 1;
            f64::from(sorted[idx])
        };
        (Some(rank(0.50)), Some(rank(0.95)))
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

fn ewma(previous: Option<f64>, value: f64) -> f64 {
    match previous {
        Some(p) => p + EWMA_ALPHA * (value - p),
        None => value,
    }
}

/// One outcome as folded into [`Observed`]; inputs are validated by the table.
pub struct Observation {
    pub success: bool,
    pub error_class: u8,
    pub latency_s: f64,
    pub ttft_s: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub reward: f64,
}

impl Observed {
    pub fn record(&mut self, o: &Observation) {
        self.requests += 1;
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.total_cost_usd += o.cost_usd;
        self.reward_sum += o.reward;
        self.reward_sq_sum += o.reward * o.reward;
        if o.success {
            self.successes += 1;
            self.latencies.push(o.latency_s);
            self.latency_ewma_s = Some(ewma(self.latency_ewma_s, o.latency_s));
            if let Some(ttft) = o.ttft_s {
                self.ttfts.push(ttft);
            }
            let generation_s = o.latency_s - o.ttft_s.unwrap_or(0.0);
            if o.output_tokens > 0 && generation_s > 0.0 {
                let speed = o.output_tokens as f64 / generation_s;
                // A near-zero duration says nothing about speed (and would
                // overflow); such calls are skipped rather than poisoning it.
                if speed.is_finite() {
                    self.tokens_per_second = Some(ewma(self.tokens_per_second, speed));
                }
            }
        } else {
            let class = usize::from(o.error_class).min(ERROR_CLASSES.len() - 1);
            self.failures_by_class[class] += 1;
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let (latency_p50_s, latency_p95_s) = self.latencies.percentiles();
        let (ttft_p50_s, ttft_p95_s) = self.ttfts.percentiles();
        let (recent_latency_p50_s, baseline_latency_p50_s) =
            self.latencies.levels(RECENT_LATENCIES, BASELINE_LATENCIES);
        Snapshot {
            recent_latency_p50_s,
            baseline_latency_p50_s,
            requests: self.requests,
            successes: self.successes,
            failures_by_class: self.failures_by_class,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_cost_usd: self.total_cost_usd,
            mean_reward: if self.requests > 0 {
                Some(self.reward_sum / self.requests as f64)
            } else {
                None
            },
            latency_p50_s,
            latency_p95_s,
            ttft_p50_s,
            ttft_p95_s,
            tokens_per_second: self.tokens_per_second,
        }
    }
}

/// A copy of what was observed of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub requests: u64,
    pub successes: u64,
    pub failures_by_class: [u64; ERROR_CLASSES.len()],
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_cost_usd: f64,
    pub mean_reward: Option<f64>,
    pub latency_p50_s: Option<f64>,
    pub latency_p95_s: Option<f64>,
    pub ttft_p50_s: Option<f64>,
    pub ttft_p95_s: Option<f64>,
    pub tokens_per_second: Option<f64>,
    /// Median latency of the newest [`RECENT_LATENCIES`] successes.
    pub recent_latency_p50_s: Option<f64>,
    /// Median latency of up to [`BASELINE_LATENCIES`] successes before those.
    pub baseline_latency_p50_s: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_answer_does_not_make_speed_infinite() {
        let mut o = Observed::default();
        let fast = Observation {
            success: true,
            error_class: 0,
            latency_s: 1e-320,
            ttft_s: None,
            input_tokens: 1,
            output_tokens: 10,
            cost_usd: 0.0,
            reward: 1.0,
        };
        o.record(&fast);
        o.record(&Observation {
            latency_s: 1.0,
            ..fast
        });
        assert_eq!(o.tokens_per_second, Some(10.0));
    }

    #[test]
    fn recent_latency_is_compared_with_the_values_before_it() {
        let mut ring = Ring::default();
        for _ in 0..100 {
            ring.push(1.0);
        }
        for _ in 0..20 {
            ring.push(5.0);
        }
        assert_eq!(ring.levels(20, 200), (Some(5.0), Some(1.0)));
        assert_eq!(Ring::default().levels(20, 200), (None, None));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut ring = Ring::default();
        for v in 1..=100 {
            ring.push(f64::from(v));
        }
        assert_eq!(ring.percentiles(), (Some(50.0), Some(95.0)));
        for v in 1..=1000 {
            ring.push(f64::from(v));
        }
        let (p50, _) = ring.percentiles();
        assert!(p50.unwrap() > 800.0, "only recent values are kept");
    }
}
