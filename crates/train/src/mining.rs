//! Hard-negative mining: the network being trained says which training classes it finds most
//! alike, so that some episodes put a class among exactly those (`config::HardNegativeConfig`).
//! The table lives in checkpoints, so a resumed run samples what the uninterrupted one did.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use data::episodes::EpisodeSampler;
use data::neighbours::{HardNegatives, Neighbours};
use model::SiameseNet;
use rayon::prelude::*;

use crate::config::HardNegativeConfig;
use crate::error::{Result, TrainError};

/// Name of the neighbour table among a checkpoint's tensors.
pub const TENSOR_NAME: &str = "aux.hard_negative_neighbours";

/// Each class's nearest classes by the network's head, on the mean embedding of the class's
/// first `cfg.drawings` drawings (undistorted, turned as the class is).
pub fn mine(
    net: &SiameseNet,
    sampler: &EpisodeSampler,
    cfg: &HardNegativeConfig,
) -> Result<HardNegatives> {
    let t = Instant::now();
    let per = cfg.drawings.max(1);
    let classes = sampler.class_count();
    let dim = net.arch().embedding_dim()?;
    let embedded = net.embed_images(&sampler.class_images(per), 256)?;
    let mut means = vec![0f32; classes * dim];
    for (c, mean) in means.chunks_mut(dim).enumerate() {
        for e in embedded[c * per * dim..(c + 1) * per * dim].chunks(dim) {
            mean.iter_mut()
                .zip(e)
                .for_each(|(m, v)| *m += v / per as f32);
        }
    }
    // The head is symmetric in its two embeddings: score each pair once.
    let head = net.head_host()?;
    let mean = |c: usize| &means[c * dim..(c + 1) * dim];
    let upper: Vec<Vec<f32>> = (0..classes)
        .into_par_iter()
        .map(|c| {
            (c + 1..classes)
                .map(|d| head.logit(mean(c), mean(d)))
                .collect()
        })
        .collect();
    let score = |c: usize, d: usize| {
        let (lo, hi) = (c.min(d), c.max(d));
        upper[lo][hi - lo - 1]
    };
    let k = cfg.neighbours.min(classes.saturating_sub(1));
    let neighbours = Neighbours::from_scores(classes, k, score)?;
    tracing::info!(
        classes,
        neighbours = k,
        seconds = t.elapsed().as_secs_f64(),
        "mined hard negatives"
    );
    hard_negatives(cfg, neighbours, sampler)
}

/// `neighbours` as the sampler's hard negatives, checked against it.
fn hard_negatives(
    cfg: &HardNegativeConfig,
    neighbours: Neighbours,
    sampler: &EpisodeSampler,
) -> Result<HardNegatives> {
    let hard = HardNegatives {
        fraction: cfg.fraction,
        neighbours: Arc::new(neighbours),
    };
    sampler.check_hard_negatives(&hard)?;
    Ok(hard)
}

/// The table as a checkpoint tensor (`[classes, k]`, u32).
pub fn state_tensor(hard: &HardNegatives) -> Result<(String, Tensor)> {
    let n = &hard.neighbours;
    let t = Tensor::from_slice(n.table(), (n.classes(), n.k()), &Device::Cpu)?;
    Ok((TENSOR_NAME.to_string(), t))
}

/// The table a checkpoint holds, if any, checked against the sampler.
pub fn from_checkpoint(
    tensors: &HashMap<String, Tensor>,
    cfg: &HardNegativeConfig,
    sampler: &EpisodeSampler,
) -> Result<Option<HardNegatives>> {
    let Some(t) = tensors.get(TENSOR_NAME) else {
        return Ok(None);
    };
    let bad = |e: String| TrainError::Config(format!("the checkpoint's `{TENSOR_NAME}`: {e}"));
    let (classes, k) = t.dims2().map_err(|e| bad(e.to_string()))?;
    let table = t
        .to_dtype(candle_core::DType::U32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<u32>())
        .map_err(|e| bad(e.to_string()))?;
    let neighbours = Neighbours::from_table(classes, k, table).map_err(|e| bad(e.to_string()))?;
    hard_negatives(cfg, neighbours, sampler).map(Some)
}
