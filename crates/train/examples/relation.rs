//! A pixel-level relation network as a second opinion to the Siamese network (a throwaway
//! screen for issue 6; validation split only, see results/validation-screens.md, "An
//! early-fusion relation network").
//!
//! The Siamese network compares two 1,024-d embeddings made apart; this network sees both
//! drawings at once, as the two channels of one 40x40 input (query and candidate, ink-box
//! framed), through a tower of the shipped shape (conv-BN-ReLU-pool 64/96/128/256) and one
//! linear unit: a learned comparison of local detail. It is trained on the Siamese
//! network's training episodes: each of 16 queries against its match and the 7 supports the
//! Siamese network scores highest among the episode's 39 others (its confusions), softmax
//! cross-entropy with label smoothing 0.1 over the 8.
//!
//!     cargo run --release -p train --example relation -- train SIAMESE_RUN STEPS OUT
//!     cargo run --release -p train --example relation -- score OUT TRIALS.csv... --top K
//!
//! `score` writes, for each trials file `NAME.trials.csv`, `OUT/NAME.relation.csv`: per
//! trial the relation logits (4 paired turns, both channel orders) of the Siamese top-K
//! candidates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use data::augment::quarter_turns;
use data::episodes::EpisodeSampler;
use data::store::{ImageId, ImageStore};
use model::layers::{BatchNorm, conv_bn_block};
use rand::{Rng, SeedableRng};
use train::episode_loss::EpisodeLoss;
use train::optim::{Optimizer, OptimizerConfig};
use train::schedule::Schedule;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const WIDTHS: [usize; 4] = [64, 96, 128, 256];
const SIDE: usize = 40;
const QUERIES: usize = 16;
const CANDIDATES: usize = 8;

struct Relation {
    /// Per block: w, b, gamma, beta; then the linear unit's w, b.
    vars: Vec<Var>,
    /// Per block: running mean and variance.
    running: Vec<Var>,
}

impl Relation {
    fn new(seed: u64, device: &Device) -> Res<Self> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = |n: usize, bound: f32| -> Vec<f32> {
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        let (mut vars, mut running) = (Vec::new(), Vec::new());
        let mut cin = 2;
        for &c in &WIDTHS {
            let fan_in = cin * 9;
            let w = uniform(c * fan_in, (6.0 / fan_in as f32).sqrt());
            vars.push(Var::from_vec(w, (c, cin, 3, 3), device)?);
            vars.push(Var::from_vec(vec![0f32; c], c, device)?);
            vars.push(Var::from_vec(vec![1f32; c], c, device)?);
            vars.push(Var::from_vec(vec![0f32; c], c, device)?);
            running.push(Var::from_vec(vec![0f32; c], c, device)?);
            running.push(Var::from_vec(vec![1f32; c], c, device)?);
            cin = c;
        }
        let features = WIDTHS[3] * 2 * 2;
        let w = uniform(features, 1.0 / (features as f32).sqrt());
        vars.push(Var::from_vec(w, (1, features), device)?);
        vars.push(Var::from_vec(vec![0f32], 1, device)?);
        Ok(Relation { vars, running })
    }

    /// Parameter `i`, tracked for a backward pass only in training.
    fn param(&self, i: usize, train: bool) -> Tensor {
        let t = self.vars[i].as_tensor();
        if train { t.clone() } else { t.detach() }
    }

    /// Logits `[N]` of pairs given as `[N, 2, S, S]`.
    fn forward(&self, x: &Tensor, train: bool) -> Res<Tensor> {
        let mut x = x.clone();
        for i in 0..WIDTHS.len() {
            let p = |k: usize| self.param(4 * i + k, train);
            let (w, b, gamma, beta) = (p(0), p(1), p(2), p(3));
            let (rm, rv) = (&self.running[2 * i], &self.running[2 * i + 1]);
            let norm = BatchNorm {
                gamma: &gamma,
                beta: &beta,
                running_mean: rm.as_tensor(),
                running_var: rv.as_tensor(),
                stats_from_first: None,
            };
            let (y, stats) = conv_bn_block(&x, &w, &b, 1, true, i > 0, train, &norm)?;
            if let Some((mean, var)) = stats {
                rm.set(&((rm.as_tensor() * 0.9)? + (mean * 0.1)?)?)?;
                rv.set(&((rv.as_tensor() * 0.9)? + (var * 0.1)?)?)?;
            }
            x = y;
        }
        let n = x.dim(0)?;
        let k = self.vars.len();
        let (w, b) = (self.param(k - 2, train), self.param(k - 1, train));
        Ok(x.flatten_from(1)?
            .matmul(&w.t()?)?
            .broadcast_add(&b)?
            .reshape(n)?)
    }

    fn save(&self, path: &Path) -> Res<()> {
        let mut map = HashMap::new();
        for (i, v) in self.vars.iter().enumerate() {
            map.insert(format!("v{i}"), v.as_tensor().clone());
        }
        for (i, v) in self.running.iter().enumerate() {
            map.insert(format!("r{i}"), v.as_tensor().clone());
        }
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    fn load(path: &Path, device: &Device) -> Res<Self> {
        let map = candle_core::safetensors::load(path, device)?;
        let r = Relation::new(0, device)?;
        for (i, v) in r.vars.iter().enumerate() {
            v.set(&map[&format!("v{i}")])?;
        }
        for (i, v) in r.running.iter().enumerate() {
            v.set(&map[&format!("r{i}")])?;
        }
        Ok(r)
    }
}

fn train_run(siamese_run: &Path, steps: u64, out: &Path) -> Res<()> {
    let device = Device::Cpu;
    let text = std::fs::read_to_string(siamese_run.join("config.toml"))?;
    let config = train::TrainConfig::from_toml(&text)?;
    let store = train::trainer::load_background(&config)?;
    let partition = config.validation.partition(&store)?;
    let episodes = config.episode_config().ok_or("not an episodic run")?;
    let sampler = EpisodeSampler::new(&store, &partition.train, episodes, 17)?;
    let siamese =
        train::checkpoint::load_checkpoint(&siamese_run.join("last.safetensors"), &device)?.net;
    let net = Relation::new(17, &device)?;
    let layers = vec![0; net.vars.len()];
    let mut opt = Optimizer::new(OptimizerConfig::adamw(4e-3), net.vars.clone(), layers)?;
    let schedule = Schedule::Cosine {
        warmup: 100,
        min_factor: 0.02,
    };
    let loss_fn = EpisodeLoss {
        pair_weight: 0.0,
        symmetric: false,
        label_smoothing: 0.1,
    };
    std::fs::create_dir_all(out)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let plane = SIDE * SIDE;
    let t0 = Instant::now();
    let mut window = (0f64, 0usize);
    for step in 0..steps {
        let ep = sampler.episode(step);
        let ways = ep.ways;
        let n_img = ep.images.len() / plane;
        let all = Tensor::from_slice(&ep.images, (n_img, 1, SIDE, SIDE), &device)?;
        let emb = siamese.embed_inference(&all)?;
        let logits = siamese
            .pairwise_logits(
                &emb.narrow(0, ways, n_img - ways)?,
                &emb.narrow(0, 0, ways)?,
            )?
            .to_vec2::<f32>()?;
        let mut pairs = Vec::with_capacity(QUERIES * CANDIDATES * 2 * plane);
        let mut labels = Vec::with_capacity(QUERIES);
        for (q, row) in logits.iter().enumerate().take(QUERIES) {
            let truth = ep.labels[q] as usize;
            let mut others: Vec<usize> = (0..ways).filter(|&j| j != truth).collect();
            others.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let mut cands: Vec<usize> = others[..CANDIDATES - 1].to_vec();
            let at = rng.random_range(0..CANDIDATES);
            cands.insert(at, truth);
            labels.push(at as u32);
            let qimg = &ep.images[(ways + q) * plane..(ways + q + 1) * plane];
            for &c in &cands {
                let cimg = &ep.images[c * plane..(c + 1) * plane];
                if rng.random_bool(0.5) {
                    pairs.extend_from_slice(qimg);
                    pairs.extend_from_slice(cimg);
                } else {
                    pairs.extend_from_slice(cimg);
                    pairs.extend_from_slice(qimg);
                }
            }
        }
        let x = Tensor::from_vec(pairs, (QUERIES * CANDIDATES, 2, SIDE, SIDE), &device)?;
        let logits = net.forward(&x, true)?.reshape((QUERIES, CANDIDATES))?;
        let loss = loss_fn.compute(&logits, &labels, &device)?;
        let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let grads = loss.backward()?;
        opt.step(
            &grads,
            schedule.factor(step, steps, 500),
            step as f64 / 500.0,
        )?;
        window.0 += value as f64;
        window.1 += 1;
        if (step + 1) % 100 == 0 {
            println!(
                "step {} loss {:.4} {:.1} steps/s",
                step + 1,
                window.0 / window.1 as f64,
                (step + 1) as f64 / t0.elapsed().as_secs_f64()
            );
            window = (0.0, 0);
        }
        if (step + 1) % 1000 == 0 || step + 1 == steps {
            net.save(&out.join("relation.safetensors"))?;
        }
    }
    Ok(())
}

/// `Alphabet/characterNN/drawerDD` (a trials file's name of a drawing) to its image.
fn resolve(store: &ImageStore, names: &HashMap<String, u32>, name: &str) -> Res<ImageId> {
    let (head, drawer) = name.rsplit_once("/drawer").ok_or("bad name")?;
    let c = *names.get(head).ok_or_else(|| format!("unknown {head}"))?;
    Ok(store
        .image_of(c, drawer.parse()?)
        .ok_or_else(|| format!("no {name}"))?)
}

fn score(out: &Path, files: &[PathBuf], top: usize) -> Res<()> {
    let device = Device::Cpu;
    let text = std::fs::read_to_string(out.join("config.toml"))?;
    let config = train::TrainConfig::from_toml(&text)?;
    let store = train::trainer::load_background(&config)?;
    let mut names = HashMap::new();
    for (i, c) in store.characters().iter().enumerate() {
        let a = &store.alphabets()[c.alphabet as usize].name;
        names.insert(format!("{a}/{}", c.name), i as u32);
    }
    let net = Relation::load(&out.join("relation.safetensors"), &device)?;
    let plane = SIDE * SIDE;
    for file in files {
        let t0 = Instant::now();
        let mut rows = String::from("trial,candidates,relation\n");
        let mut reader = csv_rows(file)?;
        let header = reader.remove(0);
        let col = |n: &str| header.iter().position(|h| h == n).ok_or(format!("no {n}"));
        let (ti, qi, ci, si) = (
            col("trial")?,
            col("query")?,
            col("candidates")?,
            col("scores")?,
        );
        for r in &reader {
            let q = store.image_f32(resolve(&store, &names, &r[qi])?);
            let q_turns: Vec<Vec<f32>> = (0..4).map(|k| quarter_turns(&q, SIDE, k)).collect();
            let cands: Vec<&str> = r[ci].split(';').collect();
            let scores: Vec<f32> = r[si]
                .split(';')
                .map(|s| s.parse().unwrap_or(f32::MIN))
                .collect();
            let mut order: Vec<usize> = (0..cands.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            order.truncate(top);
            let mut pairs = Vec::new();
            for &j in &order {
                let c = store.image_f32(resolve(&store, &names, cands[j])?);
                for (k, qt) in q_turns.iter().enumerate() {
                    let ct = quarter_turns(&c, SIDE, k);
                    pairs.extend_from_slice(qt);
                    pairs.extend_from_slice(&ct);
                    pairs.extend_from_slice(&ct);
                    pairs.extend_from_slice(qt);
                }
            }
            let n = pairs.len() / (2 * plane);
            let x = Tensor::from_vec(pairs, (n, 2, SIDE, SIDE), &device)?;
            let l = net.forward(&x, false)?.to_vec1::<f32>()?;
            let means: Vec<String> = l
                .chunks(8)
                .map(|c| format!("{:.5}", c.iter().sum::<f32>() / 8.0))
                .collect();
            let idx: Vec<String> = order.iter().map(|j| j.to_string()).collect();
            rows += &format!("{},{},{}\n", r[ti], idx.join(";"), means.join(";"));
        }
        let name = file
            .file_name()
            .ok_or("bad file")?
            .to_string_lossy()
            .replace(".trials.csv", ".relation.csv");
        std::fs::write(out.join(name), rows)?;
        println!("{}: {:.0} s", file.display(), t0.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Rows of a CSV without quoted fields (the trials files have none).
fn csv_rows(path: &Path) -> Res<Vec<Vec<String>>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("train") if args.len() == 4 => {
            let out = PathBuf::from(&args[3]);
            std::fs::create_dir_all(&out)?;
            std::fs::copy(PathBuf::from(&args[1]).join("config.toml"), out.join("config.toml"))?;
            train_run(Path::new(&args[1]), args[2].parse()?, &out)
        }
        Some("score") if args.len() >= 5 => {
            let top: usize = args[args.len() - 1].parse()?;
            let files: Vec<PathBuf> = args[2..args.len() - 2].iter().map(PathBuf::from).collect();
            score(Path::new(&args[1]), &files, top)
        }
        _ => Err("usage: relation train SIAMESE_RUN STEPS OUT | relation score OUT TRIALS.csv... --top K".into()),
    }
}
