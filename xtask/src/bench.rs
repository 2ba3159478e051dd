//! `cargo xtask bench`: training and embedding throughput of both architectures at batch 32 and
//! 128, with peak memory, measured the way `../shared/bench/torch_reference.py` measures
//! PyTorch (random inputs, AdamW lr 6e-4, median of N steps after W warm-ups). Each
//! configuration runs in its own process so that its peak memory is its own.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use model::loss::bce_with_logits;
use model::{Arch, BlurFilter, Init, SiameseNet};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use train::optim::{Optimizer, OptimizerConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub batch: usize,
    pub train_pairs_per_s: f64,
    pub embed_images_per_s: f64,
    pub train_step_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub embed_ms: f64,
    /// Peak resident memory of the process (MiB), where the OS reports it.
    pub peak_mib: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident set size of this process in MiB (Linux: VmHWM).
pub fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A benchmark architecture: the two of the PyTorch script (`koch-105`, `conv4-28`), or any
/// name `Arch::preset` knows, then optionally `+blur` (or `+blur5`, the wide filter) for
/// anti-aliased pooling on every pooling block (the shipped network is
/// `conv4-40x64_96_128_256-bn+blur`), then optionally `+seR` for squeeze-and-excitation gates
/// of reduction R on every block (`conv4-40x64_96_128_256-bn+blur+se16`).
pub fn arch(name: &str) -> Result<Arch> {
    let unknown = |why: String| {
        anyhow::anyhow!(
            "unknown benchmark model `{name}` (koch-105, conv4-28, or an architecture name such as conv4-40x64_96_128_256-bn, optionally with +blur or +blur5, then +seR such as +se16): {why}"
        )
    };
    let (rest, se) = match name.rsplit_once("+se") {
        Some((rest, r)) => {
            let r: usize = r
                .parse()
                .map_err(|_| unknown(format!("`+se{r}` needs a whole reduction, such as +se16")))?;
            (rest, r)
        }
        None => (name, 0),
    };
    let (base, blur) = if let Some(base) = rest.strip_suffix("+blur5") {
        (base, Some(BlurFilter::Bin5))
    } else if let Some(base) = rest.strip_suffix("+blur") {
        (base, Some(BlurFilter::Tri3))
    } else {
        (rest, None)
    };
    let mut arch = match base {
        "koch-105" => Arch::koch(),
        "conv4-28" => Arch::conv4(28, 64),
        _ => Arch::preset(base).map_err(|e| unknown(e.to_string()))?,
    };
    if let Some(filter) = blur {
        arch = arch.with_blur_pools(filter);
    }
    for block in &mut arch.blocks {
        block.se_reduction = se;
    }
    arch.validate()?;
    Ok(arch)
}

/// Measures one (model, batch) in this process.
pub fn measure(name: &str, batch: usize, warmup: usize, reps: usize) -> Result<Row> {
    let arch = arch(name)?;
    let dev = Device::Cpu;
    let net = SiameseNet::new(&arch, Init::Default, 0, &dev)?;
    let mut opt = Optimizer::new(
        OptimizerConfig::default(),
        net.vars().to_vec(),
        net.parameter_layers(),
    )?;
    let side = arch.input_side;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut rand_images = |n: usize| -> Result<Tensor> {
        let v: Vec<f32> = (0..n * side * side).map(|_| rng.random::<f32>()).collect();
        Ok(Tensor::from_vec(v, (n, 1, side, side), &dev)?)
    };
    let x1 = rand_images(batch)?;
    let x2 = rand_images(batch)?;
    let y: Vec<f32> = (0..batch).map(|i| (i % 2) as f32).collect();
    let y = Tensor::from_vec(y, batch, &dev)?;
    let (mut fwd, mut bwd, mut upd, mut total) = (vec![], vec![], vec![], vec![]);
    for i in 0..warmup + reps {
        let t0 = Instant::now();
        let loss = bce_with_logits(&net.forward_pairs(&x1, &x2)?, &y)?;
        let _ = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads, 1.0, 0.0)?;
        let t3 = Instant::now();
        drop(grads);
        if i >= warmup {
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
            upd.push((t3 - t2).as_secs_f64());
            total.push((t3 - t0).as_secs_f64());
        }
    }
    let xi = Tensor::cat(&[&x1, &x2], 0)?;
    let mut embed = vec![];
    for i in 0..warmup + reps {
        let t0 = Instant::now();
        let e = net.embed_inference(&xi)?;
        let _ = e.sum_all()?.to_scalar::<f32>()?;
        if i >= warmup {
            embed.push(t0.elapsed().as_secs_f64());
        }
    }
    let step = median(total);
    let emb = median(embed);
    Ok(Row {
        model: name.into(),
        batch,
        train_pairs_per_s: batch as f64 / step,
        embed_images_per_s: 2.0 * batch as f64 / emb,
        train_step_ms: step * 1e3,
        forward_ms: median(fwd) * 1e3,
        backward_ms: median(bwd) * 1e3,
        optimizer_ms: median(upd) * 1e3,
        embed_ms: emb * 1e3,
        peak_mib: peak_mib(),
    })
}

/// Runs each configuration in a child process (`xtask bench-one`) and collects the rows.
pub fn run_all(
    models: &[String],
    batches: &[usize],
    warmup: usize,
    reps: usize,
) -> Result<Vec<Row>> {
    let exe = std::env::current_exe().context("cannot find the xtask executable")?;
    let mut rows = Vec::new();
    for m in models {
        for &b in batches {
            eprintln!("measuring {m} at batch {b} ...");
            let out = std::process::Command::new(&exe)
                .args([
                    "bench-one",
                    m,
                    &b.to_string(),
                    "--warmup",
                    &warmup.to_string(),
                    "--reps",
                    &reps.to_string(),
                ])
                .output()
                .context("cannot run the benchmark child process")?;
            if !out.status.success() {
                anyhow::bail!(
                    "benchmark {m} b={b} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let line = String::from_utf8_lossy(&out.stdout);
            rows.push(serde_json::from_str(line.trim()).context("bad benchmark output")?);
        }
    }
    Ok(rows)
}

pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| model | batch (pairs) | train pairs/s | embed images/s | step ms (fwd / bwd / opt) | embed ms (2B imgs) | peak MiB |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} ({:.1} / {:.1} / {:.1}) | {:.1} | {} |\n",
            r.model,
            r.batch,
            r.train_pairs_per_s,
            r.embed_images_per_s,
            r.train_step_ms,
            r.forward_ms,
            r.backward_ms,
            r.optimizer_ms,
            r.embed_ms,
            r.peak_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_names_build_their_architectures() {
        assert_eq!(arch("koch-105").unwrap().input_side, 105);
        assert_eq!(arch("conv4-28").unwrap().input_side, 28);
        let plain = arch("conv4-40x64_96_128_256-bn").unwrap();
        assert_eq!(plain.input_side, 40);
        assert!(plain.blocks.iter().all(|b| b.pool && !b.pool_blur));
        let blur = arch("conv4-40x64_96_128_256-bn+blur").unwrap();
        assert_eq!(blur.blocks.len(), 4);
        assert!(blur.blocks.iter().all(|b| b.pool && b.pool_blur));
        // The name the docs give for the shipped network builds the shipped preset's blocks.
        let shipped = train::presets::preset(train::presets::SHIPPED)
            .unwrap()
            .arch;
        assert_eq!(blur.blocks, shipped.blocks);
        assert_eq!(blur.input_side, shipped.input_side);
        assert!(
            blur.blocks
                .iter()
                .all(|b| b.blur_filter == BlurFilter::Tri3)
        );
        let wide = arch("conv4-40x64_96_128_256-bn+blur5").unwrap();
        assert!(
            wide.blocks
                .iter()
                .all(|b| b.pool_blur && b.blur_filter == BlurFilter::Bin5)
        );
        // Blurring changes the pooling only: the same widths, so the same parameters.
        let widths = |a: &Arch| a.blocks.iter().map(|b| b.channels).collect::<Vec<_>>();
        assert_eq!(widths(&blur), widths(&plain));
        assert_eq!(widths(&wide), widths(&plain));
        // Gates add weights on top of the blur: R = 16 on 64/96/128/256 channels.
        let gated = arch("conv4-40x64_96_128_256-bn+blur+se16").unwrap();
        assert!(
            gated
                .blocks
                .iter()
                .all(|b| b.pool_blur && b.se_reduction == 16)
        );
        assert_eq!(
            gated.parameter_count().unwrap(),
            plain.parameter_count().unwrap() + 12_482
        );
        let plain_gates = arch("conv4-40x64_96_128_256-bn+se8").unwrap();
        assert!(
            plain_gates
                .blocks
                .iter()
                .all(|b| !b.pool_blur && b.se_reduction == 8)
        );
    }

    #[test]
    fn unknown_and_unpoolable_names_say_why() {
        let e = arch("resnet-50").unwrap_err().to_string();
        assert!(e.contains("unknown benchmark model `resnet-50`"), "{e}");
        // The fifth block convolves a 2x2 map (40 -> 20 -> 10 -> 5 -> 2): too small to blur.
        let e = arch("conv5-40-bn+blur").unwrap_err().to_string();
        assert!(e.contains("a map of at least 3x3 (this one is 2x2)"), "{e}");
        let e = arch("conv4-40-bn+sefour").unwrap_err().to_string();
        assert!(e.contains("`+sefour` needs a whole reduction"), "{e}");
        let e = arch("conv4-40x8-bn+se16").unwrap_err().to_string();
        assert!(e.contains("no gate units for 8 channels"), "{e}");
    }
}
