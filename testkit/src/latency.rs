//! Percentiles of a set of latencies, as the load benchmarks report them.

/// Percentiles of latencies in microseconds, reported in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// How many latencies.
    pub count: usize,
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Largest, ms.
    pub max: f64,
}

impl Percentiles {
    /// Sorts `micros` and reads the percentiles (nearest rank); all zero when empty.
    pub fn of(mut micros: Vec<u64>) -> Percentiles {
        micros.sort_unstable();
        let at = |p: f64| quantile(&micros, p);
        Percentiles {
            count: micros.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

/// The `p` quantile (0..=1) of sorted `micros`, in milliseconds; 0 when empty.
pub fn quantile(sorted_micros: &[u64], p: f64) -> f64 {
    let last = sorted_micros.len().saturating_sub(1);
    let index = ((sorted_micros.len() as f64 * p) as usize).min(last);
    sorted_micros.get(index).copied().unwrap_or(0) as f64 / 1000.0
}

/// Latencies of a long run in constant memory: 10 µs buckets up to 100 ms, 1 ms buckets up to
/// 100 s, one bucket beyond; percentiles read to the bucket's upper bound.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_micros: u64,
}

const FINE: u64 = 10_000; // 10 µs buckets below 100 ms
const COARSE: u64 = 99_900; // then 1 ms buckets up to 100 s

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; (FINE + COARSE + 1) as usize],
            count: 0,
            max_micros: 0,
        }
    }
}

impl Histogram {
    /// Counts one latency.
    pub fn record(&mut self, micros: u64) {
        let bucket = if micros < 100_000 {
            micros / 10
        } else {
            (FINE + (micros - 100_000) / 1000).min(FINE + COARSE)
        };
        self.buckets[bucket as usize] += 1;
        self.count += 1;
        self.max_micros = self.max_micros.max(micros);
    }

    /// p50, p99, p99.9 and the maximum of what was recorded.
    pub fn percentiles(&self) -> Percentiles {
        let at = |p: f64| {
            let rank = ((self.count as f64 * p) as u64).min(self.count.saturating_sub(1));
            let mut seen = 0;
            for (bucket, n) in self.buckets.iter().enumerate() {
                seen += n;
                if seen > rank {
                    let bucket = bucket as u64;
                    let upper = if bucket < FINE {
                        (bucket + 1) * 10
                    } else if bucket < FINE + COARSE {
                        100_000 + (bucket - FINE + 1) * 1000
                    } else {
                        self.max_micros
                    };
                    return upper.min(self.max_micros) as f64 / 1000.0;
                }
            }
            0.0
        };
        Percentiles {
            count: self.count as usize,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: self.max_micros as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_in_milliseconds() {
        let p = Percentiles::of((1..=1000).rev().map(|ms| ms * 1000).collect());
        assert_eq!(p.count, 1000);
        assert_eq!(
            (p.p50, p.p99, p.p999, p.max),
            (501.0, 991.0, 1000.0, 1000.0)
        );
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }

    #[test]
    fn histogram_reads_to_the_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=1000 {
            h.record(ms * 1000 + 3);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(
            (p.p50, p.p99, p.p999, p.max),
            (502.0, 992.0, 1000.003, 1000.003)
        );
        let mut fine = Histogram::default();
        fine.record(1234);
        assert_eq!(fine.percentiles().p50, 1.234, "capped by the largest");
        fine.record(1_000_000_000);
        assert_eq!(fine.percentiles().p999, 1_000_000.0, "the last bucket");
        assert_eq!(Histogram::default().percentiles(), Percentiles::default());
    }
}
