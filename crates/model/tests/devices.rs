//! The network on the compiled-in accelerator against the CPU. The CPU runs our fused kernels
//! and the accelerator candle's generic ops, and the same seed gives the same weights on every
//! device, so a training-mode forward pass, the gradient of every parameter, the running
//! batch-norm statistics it leaves and the inference embedding after it must agree to float
//! rounding. Built only with `--features cuda` or `metal`
//! (`cargo test -p model --features cuda --test devices`); in such a build a missing device
//! is a failure, not a skip.
#![cfg(any(feature = "cuda", feature = "metal"))]

use candle_core::{Device, Tensor};
use model::loss::bce_with_logits;
use model::{Arch, BlurFilter, Init, SiameseNet};

fn accelerator() -> Device {
    #[cfg(feature = "cuda")]
    let device = Device::new_cuda(0).expect("built with `cuda`, but CUDA device 0 is missing");
    #[cfg(all(feature = "metal", not(feature = "cuda")))]
    let device = Device::new_metal(0).expect("built with `metal`, but no Metal device");
    device
}

/// Values spread over [0, 1). Not binary drawings: identical patches would tie inside pooling
/// windows, where the CPU gives the gradient to the first maximum (as PyTorch does) and the
/// generic ops split it between the tied ones, both valid but not equal.
fn images(n: usize, side: usize, seed: u32) -> Vec<f32> {
    (0..n * side * side)
        .map(|i| {
            let h = (i as u32)
                .wrapping_add(seed.wrapping_mul(0x9e37_79b9))
                .wrapping_mul(2654435761);
            (h >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest difference relative to the largest magnitude of the CPU's values.
fn rel_diff(got: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(got.len(), cpu.len());
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(cpu)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// `|got - cpu| / |cpu|` in the Euclidean norm: a gradient summed over a batch cancels, so
/// single entries can lose most of their digits to rounding while the vector keeps them.
fn rel_norm_diff(got: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(got.len(), cpu.len());
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| x * x).sum::<f32>().sqrt();
    norm(&mut got.iter().zip(cpu).map(|(a, b)| a - b)) / norm(&mut cpu.iter().copied()).max(1e-30)
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// Everything one training-mode step computes, read back to the host.
struct Step {
    embedding: Vec<f32>,
    loss: f32,
    grads: Vec<(String, Vec<f32>)>,
    buffers: Vec<(String, Vec<f32>)>,
    inference: Vec<f32>,
}

/// The first half of the batch as queries against the second half as candidates: their
/// square block of logits (diagonal: same), its BCE, and the backward pass.
fn step(arch: &Arch, device: &Device, batch: usize) -> Step {
    let net = SiameseNet::new(arch, Init::Default, 7, device).unwrap();
    let side = arch.input_side;
    let x = Tensor::from_vec(images(batch, side, 3), (batch, 1, side, side), device).unwrap();
    let e = net.embed(&x).unwrap();
    let half = batch / 2;
    let logits = net
        .pairwise_logits(
            &e.narrow(0, 0, half).unwrap(),
            &e.narrow(0, half, half).unwrap(),
        )
        .unwrap()
        .flatten_all()
        .unwrap();
    let labels: Vec<f32> = (0..half * half)
        .map(|i| f32::from(i / half == i % half))
        .collect();
    let labels = Tensor::from_vec(labels, half * half, device).unwrap();
    let loss = bce_with_logits(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let grads = net
        .named_vars()
        .into_iter()
        .map(|(name, v)| {
            let g = grads
                .get(&v)
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            (name, host(g))
        })
        .collect();
    let buffers = net
        .named_buffers()
        .into_iter()
        .map(|(name, v)| (name, host(v.as_tensor())))
        .collect();
    Step {
        embedding: host(&e),
        loss: loss.to_scalar::<f32>().unwrap(),
        grads,
        buffers,
        inference: host(&net.embed_inference(&x).unwrap()),
    }
}

/// Runs `arch` on both devices and checks every output against the CPU's.
fn agrees_with_cpu(arch: &Arch, batch: usize) {
    let cpu = step(arch, &Device::Cpu, batch);
    let acc = step(arch, &accelerator(), batch);
    let name = &arch.name;
    let forward = rel_diff(&acc.embedding, &cpu.embedding);
    let loss = (acc.loss - cpu.loss).abs() / cpu.loss.abs();
    eprintln!(
        "{name}: loss {} (cpu {}), embedding rel diff {forward:.2e}",
        acc.loss, cpu.loss
    );
    assert!(forward < 1e-4, "{name}: embedding differs by {forward}");
    assert!(loss < 1e-4, "{name}: loss {} vs {}", acc.loss, cpu.loss);
    let mut worst = (0f32, String::new());
    for (i, ((n, g), (_, c))) in acc.grads.iter().zip(&cpu.grads).enumerate() {
        // A conv bias in front of batch norm is cancelled by it: its true gradient is zero,
        // and both devices must find rounding noise, far below the conv weight's gradient.
        let block = n.strip_prefix("conv").and_then(|r| r.strip_suffix(".bias"));
        let before_bn = block
            .and_then(|b| b.parse::<usize>().ok())
            .is_some_and(|b| arch.blocks[b - 1].batch_norm);
        if before_bn {
            let weight = max_abs(&cpu.grads[i - 1].1);
            for (device, v) in [("cpu", c), ("accelerator", g)] {
                let ratio = max_abs(v) / weight;
                assert!(
                    ratio < 1e-3,
                    "{name}: {n} on the {device} has gradient {ratio} x the weight's"
                );
            }
            continue;
        }
        assert!(
            c.iter().any(|v| *v != 0.0),
            "{name}: gradient of {n} is all zero"
        );
        let d = rel_norm_diff(g, c);
        if d >= worst.0 {
            worst = (d, n.clone());
        }
        assert!(d < 2e-3, "{name}: gradient of {n} differs by {d} (norm)");
    }
    for ((n, b), (_, c)) in acc.buffers.iter().zip(&cpu.buffers) {
        let d = rel_diff(b, c);
        assert!(d < 1e-4, "{name}: running statistic {n} differs by {d}");
    }
    let inference = rel_diff(&acc.inference, &cpu.inference);
    eprintln!(
        "{name}: largest gradient difference {:.2e} (norm, {}), inference {inference:.2e}",
        worst.0, worst.1
    );
    assert!(
        inference < 1e-4,
        "{name}: inference embedding differs by {inference}"
    );
}

/// The shipped architecture: four conv-BN-ReLU-pool blocks on 40x40 input, anti-aliased (as
/// shipped since 2026-12-07) and with plain max-pools (as before).
#[test]
fn shipped_network_agrees_with_the_cpu() {
    let plain = Arch::convnet_widths(40, &[64, 96, 128, 256], true);
    for arch in [plain.clone().with_blur_pools(BlurFilter::Tri3), plain] {
        agrees_with_cpu(&arch, 16);
    }
}

/// Odd feature maps (21 -> 10 -> 5 -> 2) and a ceil pool, where candle's own max-pool
/// gradient goes wrong.
#[test]
fn odd_maps_and_ceil_pooling_agree_with_the_cpu() {
    let mut arch = Arch::convnet_widths(21, &[8, 12, 16], true);
    arch.blocks[2].pool_ceil = true;
    agrees_with_cpu(&arch, 8);
}

/// Blur pools (dense max, blurred stride-2 subsampling) on odd and even maps, with both filters.
#[test]
fn blur_pooled_blocks_agree_with_the_cpu() {
    for filter in [BlurFilter::Tri3, BlurFilter::Bin5] {
        agrees_with_cpu(
            &Arch::convnet_widths(21, &[8, 12, 16], true).with_blur_pools(filter),
            8,
        );
    }
}

/// Koch et al.'s 105x105 network (no batch norm, sigmoid embedding), the reference recipe.
#[test]
fn reference_network_agrees_with_the_cpu() {
    agrees_with_cpu(&Arch::koch(), 4);
}
