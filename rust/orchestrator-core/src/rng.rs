//! Counter-based random draws for Thompson sampling.
//!
//! A draw is a pure function of `(seed, selection number, slot)`, so an
//! explanation can show exactly the draw the next selection will use without
//! consuming it, and a seeded run does not depend on how often anything else
//! (explanations, scores) looked at the table.

/// The SplitMix64 finaliser: a bijective mix of 64 bits.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in (0, 1] from 64 random bits.
#[inline]
fn unit(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// The random stream of one table: a seed and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawKey {
    seed: u64,
}

impl DrawKey {
    pub fn new(seed: u64) -> Self {
        DrawKey { seed: mix(seed) }
    }

    /// A standard normal draw (Box-Muller) for `slot` at selection number
    /// `selection`; always finite.
    #[inline]
    pub fn normal(&self, selection: u64, slot: usize) -> f64 {
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        let key = mix(self.seed ^ mix(selection.wrapping_mul(GOLDEN)) ^ (slot as u64));
        let (u1, u2) = (unit(mix(key)), unit(mix(key.wrapping_add(GOLDEN))));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pure_and_look_standard_normal() {
        let key = DrawKey::new(7);
        assert_eq!(key.normal(3, 1), key.normal(3, 1));
        assert_ne!(key.normal(3, 1), key.normal(4, 1));
        assert_ne!(key.normal(3, 1), key.normal(3, 2));
        let n = 20_000u64;
        let draws: Vec<f64> = (0..n).map(|k| key.normal(k, 0)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        assert!(draws.iter().all(|d| d.is_finite()));
    }
}
