//! Fine-tuning a trained network on the score it is tested by (a throwaway screen for issue 6;
//! validation split only, see results/validation-screens.md, "Fine-tuning on the paired-turn
//! score").
//!
//! The shipped model is scored in four paired turns (both drawings turned alike, the four
//! logits averaged), but trained on one view at a time, and the screens keep finding that
//! single-view gains vanish in that average. This continues a finished run on the same
//! training alphabets with episodes whose logits are that average (`turns`: every image of
//! the episode in all four turns, 4x the work of an episode), or, as the control, on plain
//! upright episodes (`upright`), at a small learning rate with a cosine decay.
//!
//!     cargo run --release -p train --example turns_finetune -- RUN EPISODES LR turns|upright NAME
//!
//! writes `runs/NAME/last.safetensors` (with RUN's config, so `eval` scores it as it would
//! RUN) for `results/retest.sh NAME`.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use data::augment::quarter_turns;
use data::episodes::EpisodeSampler;
use train::checkpoint::{TrainState, load_checkpoint, save_checkpoint};
use train::episode_loss::EpisodeLoss;
use train::optim::{Optimizer, OptimizerConfig};
use train::schedule::Schedule;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [run, episodes, lr, mode, name] = args.as_slice() else {
        return Err("usage: turns_finetune RUN EPISODES LR turns|upright NAME".into());
    };
    let (episodes, lr): (u64, f64) = (episodes.parse()?, lr.parse()?);
    let turns = match mode.as_str() {
        "turns" => 4,
        "upright" => 1,
        m => return Err(format!("unknown mode {m}").into()),
    };
    let device = Device::Cpu;
    let loaded = load_checkpoint(&Path::new(run).join("last.safetensors"), &device)?;
    let (net, mut config) = (loaded.net, loaded.config);
    let store = train::trainer::load_background(&config)?;
    let partition = config.validation.partition(&store)?;
    let cfg = config.episode_config().ok_or("not an episodic run")?;
    let sampler = EpisodeSampler::new(&store, &partition.train, cfg, 23)?;
    let mut opt = Optimizer::new(
        OptimizerConfig::adamw(lr),
        net.vars().to_vec(),
        net.parameter_layers(),
    )?;
    let schedule = Schedule::Cosine {
        warmup: 20,
        min_factor: 0.02,
    };
    // The run's own label smoothing, so that only the scoring of the logits changes.
    let label_smoothing = match &config.objective {
        train::config::Objective::Episodes {
            label_smoothing, ..
        } => *label_smoothing,
        _ => return Err("not an episodic run".into()),
    };
    let loss_fn = EpisodeLoss {
        pair_weight: 0.0,
        symmetric: false,
        label_smoothing,
    };
    let side = config.arch.input_side;
    let plane = side * side;
    let t0 = Instant::now();
    let mut window = (0f64, 0usize);
    for step in 0..episodes {
        let ep = sampler.episode(step);
        let (ways, n) = (ep.ways, ep.images.len() / plane);
        let mut images = Vec::with_capacity(turns * ep.images.len());
        for k in 0..turns {
            for img in ep.images.chunks(plane) {
                images.extend(quarter_turns(img, side, k));
            }
        }
        let x = Tensor::from_vec(images, (turns * n, 1, side, side), &device)?;
        let e = net.embed(&x)?;
        let mut sum: Option<Tensor> = None;
        for k in 0..turns {
            let v = e.narrow(0, k * n, n)?;
            let l = net.pairwise_logits(&v.narrow(0, ways, n - ways)?, &v.narrow(0, 0, ways)?)?;
            sum = Some(match sum {
                None => l,
                Some(s) => (s + l)?,
            });
        }
        let logits = (sum.ok_or("no turns")? / turns as f64)?;
        let loss = loss_fn.compute(&logits, &ep.labels, &device)?;
        let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let grads = loss.backward()?;
        opt.step(
            &grads,
            schedule.factor(step, episodes, 500),
            step as f64 / 500.0,
        )?;
        window.0 += value as f64;
        window.1 += 1;
        if (step + 1) % 50 == 0 {
            println!(
                "episode {} loss {:.4} {:.2} episodes/s",
                step + 1,
                window.0 / window.1 as f64,
                (step + 1) as f64 / t0.elapsed().as_secs_f64()
            );
            window = (0.0, 0);
        }
    }
    config.name = name.clone();
    let dir = Path::new("runs").join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.toml"), config.to_toml())?;
    let state = TrainState {
        step: episodes,
        ..Default::default()
    };
    save_checkpoint(&dir.join("last.safetensors"), &net, None, &state, &config)?;
    println!("wrote {}", dir.join("last.safetensors").display());
    Ok(())
}
