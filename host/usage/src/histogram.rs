//! Latency histograms with fixed logarithmic buckets: bucket `i` holds durations up to
//! `50 us * 2^(i/4)` (each bucket 19% wider than the one before), the last one everything
//! longer. Fixed bounds make histograms of different minutes and nodes mergeable by
//! adding counts; a percentile is the upper bound of the bucket it falls in (at most 19%
//! high).

/// Number of buckets (the last: over ~44 s).
pub const BUCKETS: usize = 80;
const FIRST_US: f64 = 50.0;

/// Counts per bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram(pub Vec<u64>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(vec![0; BUCKETS])
    }
}

impl Histogram {
    /// The bucket of a duration in microseconds.
    pub fn bucket(us: u64) -> usize {
        if us as f64 <= FIRST_US {
            return 0;
        }
        let i = (4.0 * (us as f64 / FIRST_US).log2()).ceil() as usize;
        i.min(BUCKETS - 1)
    }

    /// The upper bound of bucket `i`, in milliseconds.
    pub fn upper_ms(i: usize) -> f64 {
        FIRST_US * 2f64.powf(i as f64 / 4.0) / 1000.0
    }

    pub fn observe_us(&mut self, us: u64) {
        self.0[Self::bucket(us)] += 1;
    }

    /// Adds `other`'s counts (any length: stored histograms are read as they are).
    pub fn merge(&mut self, other: &[u64]) {
        for (i, n) in other.iter().enumerate().take(BUCKETS) {
            self.0[i] += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0 < q <= 1) in milliseconds; `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::upper_ms(i));
            }
        }
        Some(Self::upper_ms(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values_within_a_fifth() {
        for us in [1, 50, 51, 120, 999, 1000, 12_345, 250_000, 3_000_000] {
            let i = Histogram::bucket(us);
            let upper = Histogram::upper_ms(i) * 1000.0;
            assert!(
                upper >= us as f64 - 1e-6,
                "{us} us in bucket {i} (<= {upper})"
            );
            if us > 50 {
                assert!(upper <= us as f64 * 1.19 + 1e-6, "{us} us: bound {upper}");
            }
        }
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn merged_percentiles_equal_those_of_all_samples() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for us in (1..=1000).map(|i| i * 100) {
            if us % 300 == 0 {
                a.observe_us(us)
            } else {
                b.observe_us(us)
            }
            all.observe_us(us);
        }
        let mut merged = Histogram::default();
        merged.merge(&a.0);
        merged.merge(&b.0);
        assert_eq!(merged, all);
        let p50 = merged.quantile_ms(0.5).unwrap();
        assert!(
            (50.0..=50.0 * 1.19).contains(&p50),
            "p50 {p50} ms of 0.1..100 ms"
        );
        let p99 = merged.quantile_ms(0.99).unwrap();
        assert!((99.0..=99.0 * 1.19).contains(&p99), "p99 {p99}");
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }
}
