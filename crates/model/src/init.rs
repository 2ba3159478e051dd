//! Parameter initialisation, drawn from a seeded ChaCha stream on the host so that a seed gives
//! the same network on every device.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Koch et al.: conv weights N(0, 0.01), biases N(0.5, 0.01), dense weights N(0, 0.2).
    Koch,
    /// PyTorch's (and candle's) defaults: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    Default,
    /// He et al. for ReLU nets: weights N(0, sqrt(2 / fan_in)), biases 0.
    Kaiming,
}

impl std::str::FromStr for Init {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "koch" => Ok(Init::Koch),
            "default" | "pytorch" => Ok(Init::Default),
            "kaiming" | "he" => Ok(Init::Kaiming),
            _ => Err(format!(
                "unknown init `{s}` (expected koch, default or kaiming)"
            )),
        }
    }
}

/// Which kind of layer a parameter belongs to (Koch's scheme treats them differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Conv,
    Dense,
}

pub(crate) struct Initializer {
    rng: ChaCha8Rng,
    init: Init,
}

impl Initializer {
    pub fn new(init: Init, seed: u64) -> Self {
        Initializer {
            rng: ChaCha8Rng::seed_from_u64(seed),
            init,
        }
    }

    fn normal(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let d = Normal::new(mean, std).expect("finite positive std");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    fn uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect()
    }

    /// Weights (`fan_in` inputs per output) and biases (`outputs`) of one layer.
    pub fn layer(
        &mut self,
        kind: LayerKind,
        weights: usize,
        outputs: usize,
        fan_in: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let bound = 1.0 / (fan_in as f32).sqrt();
        match (self.init, kind) {
            (Init::Koch, LayerKind::Conv) => (
                self.normal(weights, 0.0, 0.01),
                self.normal(outputs, 0.5, 0.01),
            ),
            (Init::Koch, LayerKind::Dense) => (
                self.normal(weights, 0.0, 0.2),
                self.normal(outputs, 0.5, 0.01),
            ),
            (Init::Default, _) => (self.uniform(weights, bound), self.uniform(outputs, bound)),
            (Init::Kaiming, _) => (
                self.normal(weights, 0.0, (2.0 / fan_in as f32).sqrt()),
                vec![0.0; outputs],
            ),
        }
    }
}
