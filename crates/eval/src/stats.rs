//! Confidence intervals for accuracies.

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for `successes` out of `n` at normal quantile `z`; `(0, 1)` when
/// `n == 0`.
pub fn wilson(successes: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Resamples drawn by [`bootstrap_over_groups`].
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Random stream of the bootstrap (see `data::rng_for`); fixed, so a report is reproducible.
const STREAM_BOOTSTRAP: u32 = 0xb007;

/// A 95% percentile-bootstrap interval for the pooled accuracy of groups of trials,
/// resampling whole groups (`(correct, total)` each) with replacement.
///
/// Trials of one group are not independent: a Lake run's 20 queries share one alphabet, one
/// set of characters and one pair of drawers, so an easy or a hard pair of hands moves all
/// 20 together. A Wilson interval over the pooled trials treats them as independent and is
/// too narrow; resampling the groups keeps that correlation. `(0, 1)` with no trials.
pub fn bootstrap_over_groups(groups: &[(usize, usize)], resamples: usize) -> (f64, f64) {
    let trials: usize = groups.iter().map(|g| g.1).sum();
    if trials == 0 || resamples == 0 {
        return (0.0, 1.0);
    }
    let sums: Vec<(f64, usize)> = groups.iter().map(|&(c, n)| (c as f64, n)).collect();
    bootstrap_mean_over_groups(&sums, resamples)
}

/// A 95% percentile-bootstrap interval for the mean per trial of a value summed over groups
/// of trials (`(sum, trials)` each), resampling whole groups with replacement: the accuracy
/// when the sums count correct trials, a paired difference when they count one scorer's
/// extra correct trials minus the other's. `(0, 0)` with no trials.
pub fn bootstrap_mean_over_groups(groups: &[(f64, usize)], resamples: usize) -> (f64, f64) {
    use rand::Rng as _;
    let trials: usize = groups.iter().map(|g| g.1).sum();
    if trials == 0 || resamples == 0 {
        return (0.0, 0.0);
    }
    let mut rng = data::rng_for(0, STREAM_BOOTSTRAP, groups.len() as u64, trials as u64);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut sum, mut total) = (0.0f64, 0usize);
            for _ in 0..groups.len() {
                let (v, n) = groups[rng.random_range(0..groups.len())];
                sum += v;
                total += n;
            }
            if total == 0 { 0.0 } else { sum / total as f64 }
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * resamples as f64).floor() as usize).min(resamples - 1)];
    (at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_over_groups_matches_the_normal_approximation_and_sees_correlation() {
        // Ten runs at 20/20 and ten at 10/20: pooled 75%. The run accuracies' standard
        // deviation is 0.25 (population; 0.2565 with n - 1), so the run-level standard error
        // is 0.25 / sqrt(20) = 0.0559 and the normal interval 75 +- 10.96 points,
        // [64.0, 86.0]. Wilson over the 400 pooled trials would say [70.5, 79.0].
        let mut runs = vec![(20, 20); 10];
        runs.extend(vec![(10, 20); 10]);
        let (lo, hi) = bootstrap_over_groups(&runs, BOOTSTRAP_RESAMPLES);
        assert!(
            (lo - 0.640).abs() < 0.015 && (hi - 0.860).abs() < 0.015,
            "{lo} {hi}"
        );
        let (wlo, whi) = wilson(300, 400, Z95);
        assert!((wlo - 0.705).abs() < 0.005 && (whi - 0.790).abs() < 0.005);
        // Fixed stream: the same groups give the same interval.
        assert_eq!(
            bootstrap_over_groups(&runs, 1000),
            bootstrap_over_groups(&runs, 1000)
        );
        // Runs that all score alike leave nothing to resample: the interval is the point.
        assert_eq!(bootstrap_over_groups(&[(17, 20); 20], 500), (0.85, 0.85));
        assert_eq!(bootstrap_over_groups(&[], 500), (0.0, 1.0));
        assert_eq!(bootstrap_over_groups(&[(0, 0)], 500), (0.0, 1.0));
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), example: 81/263 -> 0.2553 to 0.3662.
        let (lo, hi) = wilson(81, 263, Z95);
        assert!(
            (lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4,
            "{lo} {hi}"
        );
        // 0/10 -> [0, 0.2775]; 10/10 -> [0.7225, 1]
        let (lo, hi) = wilson(0, 10, Z95);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 5e-4);
        let (lo, hi) = wilson(10, 10, Z95);
        assert!((lo - 0.7225).abs() < 5e-4 && (hi - 1.0).abs() < 1e-12);
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }
}
