//! Traffic splitting: each event goes to one revision, picked by weight.

use ferry_api::contract::{RevisionTarget, Target};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The generator of traffic-split draws: following `seed` (`--traffic-seed`, reproducible
/// tests), random when `None`.
pub fn seeded_rng(seed: Option<u64>) -> std::sync::Mutex<SmallRng> {
    std::sync::Mutex::new(seed.map_or_else(SmallRng::from_os_rng, SmallRng::seed_from_u64))
}

/// Picks the URL for one event: the target's URL, or a revision drawn with probability
/// `percent / 100`.
pub fn choose<'a>(target: &'a Target, rng: &mut impl Rng) -> &'a str {
    match target {
        Target::Url(url) => url,
        Target::Revisions(revisions) => choose_revision(revisions, rng),
    }
}

/// Picks one revision of a split, drawn with probability `percent / 100`.
pub fn choose_revision<'a>(revisions: &'a [RevisionTarget], rng: &mut impl Rng) -> &'a str {
    pick(revisions, rng.random_range(0..100))
}

/// The revision whose cumulative percent range holds `roll` (0..100).
fn pick(revisions: &[RevisionTarget], roll: u32) -> &str {
    let mut upper = 0;
    for r in revisions {
        upper += r.percent;
        if roll < upper {
            return &r.url;
        }
    }
    revisions.last().map_or("", |r| r.url.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_percents() {
        let rev = |n: &str, p| RevisionTarget {
            revision: n.into(),
            url: format!("http://{n}"),
            percent: p,
        };
        let target = Target::Revisions(vec![rev("a", 80), rev("b", 20), rev("c", 0)]);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(choose(&target, &mut rng)).or_insert(0) += 1;
        }
        let a = counts["http://a"];
        assert!((7_700..8_300).contains(&a), "a got {a} of 10000");
        assert!(!counts.contains_key("http://c"), "0% gets nothing");
        assert_eq!(
            choose(&Target::Url("http://x".into()), &mut rng),
            "http://x"
        );
    }

    #[test]
    fn a_90_10_split_passes_a_chi_square_test() {
        let rev = |n: &str, p| RevisionTarget {
            revision: n.into(),
            url: format!("http://{n}"),
            percent: p,
        };
        let target = Target::Revisions(vec![rev("stable", 90), rev("canary", 10)]);
        // Several seeds: the split must hold for any of them, not one lucky stream.
        for seed in 0..5 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let n = 10_000.0;
            let canary = (0..10_000)
                .filter(|_| choose(&target, &mut rng) == "http://canary")
                .count() as f64;
            let (expected_canary, expected_stable) = (n * 0.1, n * 0.9);
            let chi2 = (canary - expected_canary).powi(2) / expected_canary
                + ((n - canary) - expected_stable).powi(2) / expected_stable;
            // One degree of freedom: p > 0.001 ⇔ χ² < 10.828.
            assert!(
                chi2 < 10.828,
                "seed {seed}: canary {canary} of {n}, χ² {chi2:.2}"
            );
        }
    }
}
