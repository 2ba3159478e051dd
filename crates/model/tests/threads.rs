//! What the number of CPU threads may and may not change.
//!
//! Scores must not depend on it: a figure measured on 2 cores has to come out the same on a
//! 16-core laptop (same instruction set), so every forward pass is computed image by image in
//! an order no thread split touches. Training is repeatable for a given seed and thread count;
//! at another count the conv layers' weight gradients, partial sums over each thread's share of
//! the batch, are added in another order, so they agree only to rounding.
//!
//! The pools here set the thread count of this crate's CPU kernels. candle's own matrix
//! products take theirs from `RAYON_NUM_THREADS` instead; `eval` run with it at 1, 2 and 3
//! wrote the same trials files (the model card's "Repeatability").

use candle_core::{Device, Tensor};
use model::{Arch, Init, SiameseNet};

fn images(n: usize, side: usize, seed: u32) -> Tensor {
    let v: Vec<f32> = (0..n * side * side)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 2) as f32)
        .collect();
    Tensor::from_vec(v, (n, 1, side, side), &Device::Cpu).unwrap()
}

/// The shipped model's kind of tower, small: batch norm and anti-aliased pools.
fn net() -> SiameseNet {
    let mut arch = Arch::convnet_widths(20, &[8, 8, 8], true);
    for b in &mut arch.blocks {
        b.pool_blur = true;
    }
    SiameseNet::new(&arch, Init::Kaiming, 4, &Device::Cpu).unwrap()
}

fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// The gradient of a loss over a 12-image batch for every tower parameter, by name.
fn tower_gradients(net: &SiameseNet, x: &Tensor) -> Vec<(String, Vec<f32>)> {
    let grads = net
        .embed(x)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    net.named_vars()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("head"))
        .map(|(name, v)| {
            let g = grads
                .get(&v)
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            (name, flat(g))
        })
        .collect()
}

#[test]
fn scores_are_the_same_bits_on_any_number_of_threads() {
    let (a, b) = (images(12, 20, 1), images(12, 20, 2));
    // A fresh network each time: a training-mode pass moves the batch-norm running statistics.
    let run = || {
        let net = net();
        let (ea, eb) = (
            net.embed_inference(&a).unwrap(),
            net.embed_inference(&b).unwrap(),
        );
        (
            flat(&ea),
            flat(&net.pairwise_logits(&ea, &eb).unwrap()),
            flat(&net.embed(&a).unwrap()),
        )
    };
    let one = on_threads(1, run);
    for threads in [2, 3, 5] {
        assert!(
            on_threads(threads, run) == one,
            "{threads} threads score differently from 1"
        );
    }
}

#[test]
fn gradients_repeat_for_a_thread_count_and_agree_to_rounding_across_counts() {
    let net = net();
    let x = images(12, 20, 3);
    let one = on_threads(1, || tower_gradients(&net, &x));
    // Rounding measured against the largest gradient of all: a conv bias before batch norm
    // has a true gradient of 0, so its values are nothing but that rounding.
    let scale = one
        .iter()
        .flat_map(|(_, g)| g)
        .fold(0f32, |m, v| m.max(v.abs()));
    for threads in [2, 3] {
        let first = on_threads(threads, || tower_gradients(&net, &x));
        let again = on_threads(threads, || tower_gradients(&net, &x));
        assert!(first == again, "{threads} threads: two passes differ");
        for ((name, g), (_, r)) in first.iter().zip(&one) {
            for (p, q) in g.iter().zip(r) {
                assert!(
                    (p - q).abs() <= 1e-5 * scale,
                    "{name}, {threads} threads: {p} against {q} on 1 (largest gradient {scale})"
                );
            }
        }
    }
}
