//! Learning-rate schedules as a factor on the base rate, a pure function of the step so that a
//! resumed run needs no schedule state beyond the step.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    Constant,
    /// PyTorch's StepLR: multiply by `gamma` every `every` steps.
    Step {
        every: u64,
        gamma: f64,
    },
    /// Linear warm-up for `warmup` steps, then cosine decay to `min_factor` at the last step.
    Cosine {
        warmup: u64,
        min_factor: f64,
    },
    /// Koch et al.: the rate shrinks by `decay` (1%) each epoch.
    EpochDecay {
        decay: f64,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Step {
            every: 500,
            gamma: 0.9,
        }
    }
}

impl Schedule {
    /// Factor on the base rate for `step` (0-based) of `total` steps of `per_epoch` each.
    pub fn factor(&self, step: u64, total: u64, per_epoch: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powi((step / every.max(1)) as i32),
            Schedule::Cosine { warmup, min_factor } => {
                if step < warmup {
                    return (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min_factor
                    + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::EpochDecay { decay } => (1.0 - decay).powi((step / per_epoch.max(1)) as i32),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Schedule::Step { every, gamma }
                if every == 0 || !(gamma > 0.0 && gamma.is_finite()) =>
            {
                Err("step schedule needs every > 0 and gamma > 0".into())
            }
            Schedule::Cosine { min_factor, .. } if !(0.0..=1.0).contains(&min_factor) => {
                Err("cosine min_factor must be in [0, 1]".into())
            }
            Schedule::EpochDecay { decay } if !(0.0..1.0).contains(&decay) => {
                Err("epoch decay must be in [0, 1)".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lr_matches_pytorch() {
        let s = Schedule::default();
        assert_eq!(s.factor(0, 10_000, 100), 1.0);
        assert_eq!(s.factor(499, 10_000, 100), 1.0);
        assert!((s.factor(500, 10_000, 100) - 0.9).abs() < 1e-12);
        assert!((s.factor(1999, 10_000, 100) - 0.729).abs() < 1e-12);
    }

    #[test]
    fn cosine_warms_up_and_ends_at_min() {
        let s = Schedule::Cosine {
            warmup: 10,
            min_factor: 0.1,
        };
        assert!((s.factor(0, 110, 10) - 0.1).abs() < 1e-12);
        assert!((s.factor(9, 110, 10) - 1.0).abs() < 1e-12);
        assert!((s.factor(10, 110, 10) - 1.0).abs() < 1e-12);
        assert!((s.factor(60, 110, 10) - 0.55).abs() < 1e-12);
        assert!((s.factor(110, 110, 10) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn koch_decays_one_percent_per_epoch() {
        let s = Schedule::EpochDecay { decay: 0.01 };
        assert_eq!(s.factor(99, 1000, 100), 1.0);
        assert!((s.factor(250, 1000, 100) - 0.99f64.powi(2)).abs() < 1e-12);
    }
}
