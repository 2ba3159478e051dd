//! Named training recipes (`--preset NAME`).

use data::{AffineConfig, PairConfig};
use model::{Arch, Init};

use crate::config::TrainConfig;
use crate::optim::OptimizerConfig;
use crate::schedule::Schedule;

pub const NAMES: &[&str] = &["reference", "koch", "conv4"];

/// The recipe called `name`, or `None`.
pub fn preset(name: &str) -> Option<TrainConfig> {
    let base = TrainConfig::default();
    let with_arch = |arch: Arch, cfg: TrainConfig| TrainConfig {
        pairs: PairConfig {
            side: arch.input_side,
            ..cfg.pairs.clone()
        },
        arch,
        ..cfg
    };
    match name {
        "reference" => Some(base),
        "koch" => Some(TrainConfig {
            name: "koch".into(),
            init: Init::Koch,
            optimizer: OptimizerConfig::koch_sgd(),
            schedule: Schedule::EpochDecay { decay: 0.01 },
            pairs: PairConfig {
                augment: Some(AffineConfig::koch()),
                ..base.pairs.clone()
            },
            ..base
        }),
        "conv4" => Some(with_arch(
            Arch::conv4(28, 64),
            TrainConfig {
                name: "conv4".into(),
                epochs: 10,
                pairs_per_epoch: 32_000,
                schedule: Schedule::Cosine {
                    warmup: 100,
                    min_factor: 0.05,
                },
                optimizer: OptimizerConfig::Adamw {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                },
                pairs: PairConfig {
                    augment: Some(AffineConfig::koch()),
                    same_alphabet_negatives: 0.5,
                    ..base.pairs.clone()
                },
                ..base
            },
        )),
        _ => None,
    }
}
