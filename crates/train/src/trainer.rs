//! The training loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use candle_core::{Device, Tensor};
use data::episodes::{EpisodeBatch, EpisodeSampler};
use data::neighbours::HardNegatives;
use data::trials::{check_ways, sample_trials};
use data::{ImageStore, PairBatch, PairConfig, PairSampler, SplitIndex, SplitKind, Subset, Trial};
use indicatif::{ProgressBar, ProgressStyle};
use model::loss::{bce_with_logits, bce_with_logits_host};
use model::{SiameseNet, parse_device};

use crate::checkpoint::{TrainState, load_checkpoint, save_checkpoint, save_checkpoint_with};
use crate::class_head::{self, ClassHead};
use crate::config::{Objective, TrainConfig};
use crate::dropout;
use crate::ema::WeightAverage;
use crate::episode_loss::EpisodeLoss;
use crate::error::{Result, TrainError};
use crate::metrics::{Metrics, Record};
use crate::optim::Optimizer;
use crate::recon_head::ReconHead;
use crate::sam;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    EarlyStopped,
    /// Ctrl-C or `stop_after`: a checkpoint was written and `--resume` continues.
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub outcome: Outcome,
    pub run_dir: PathBuf,
    pub steps: u64,
    pub best: Option<(u64, f64)>,
    pub seconds: f64,
    /// Training items (pairs or episodes, as `item_name` says) per second.
    pub items_per_s: f64,
    pub item_name: &'static str,
    pub data_wait: f64,
    /// Networks trained and merged (1 unless the config asks for an ensemble).
    pub members: usize,
}

/// Knobs of one invocation (not part of the saved config).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue the run in this folder from its `last.safetensors`.
    pub resume: Option<PathBuf>,
    /// Set (e.g. by Ctrl-C) to stop at the next step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Stop (as if interrupted) once this many steps are done.
    pub stop_after: Option<u64>,
    /// Show a progress bar.
    pub progress: bool,
}

pub struct Trainer;

/// Validation material, fixed for the whole run.
struct Validation {
    subset: Subset,
    trials: Vec<Trial>,
    pairs: PairBatch,
}

/// How validation trials are scored: as `eval` would, in the config's paired turns.
pub(crate) fn validation_scorer(
    net: &Arc<SiameseNet>,
    config: &TrainConfig,
) -> Result<eval::ModelScorer> {
    Ok(eval::ModelScorer::new(net.clone(), 256)?
        .with_turns(config.val.turns)?
        .with_local_match(config.objective.local_match())?)
}

/// Loads the split folder, with the command that fetches it when missing.
pub fn load_background(config: &TrainConfig) -> Result<ImageStore> {
    let index = SplitIndex::scan_split(&config.dataset, SplitKind::Background)?;
    let t = Instant::now();
    let store = ImageStore::load_framed(&index, config.arch.input_side, config.arch.framing)?;
    tracing::info!(
        images = store.len(),
        seconds = t.elapsed().as_secs_f64(),
        "loaded images_background"
    );
    Ok(store)
}

impl Trainer {
    /// Trains per `config`, or resumes the run in `opts.resume` (whose saved config wins).
    pub fn run(config: TrainConfig, opts: &RunOptions) -> Result<Summary> {
        if config.members > 1 && opts.resume.is_none() {
            return crate::ensemble::run(config, opts);
        }
        if let Some(saved) = opts
            .resume
            .as_deref()
            .map(crate::ensemble::saved_config)
            .transpose()?
            .flatten()
        {
            let saved = TrainConfig {
                device: config.device.clone(),
                ..saved
            };
            return crate::ensemble::run(saved, opts);
        }
        let (config, device, resume) = match &opts.resume {
            Some(dir) => {
                let path = dir.join("last.safetensors");
                let probe = load_checkpoint(&path, &Device::Cpu)?;
                let device = parse_device(&config.device)?;
                let mut saved = probe.config;
                saved.device = config.device.clone();
                (saved, device, Some(path))
            }
            None => {
                let device = parse_device(&config.device)?;
                (config, device, None)
            }
        };
        config.validate().map_err(TrainError::Config)?;
        // Fail on a missing dataset before creating anything.
        SplitIndex::scan_split(&config.dataset, SplitKind::Background)?;
        let run_dir = config.run_dir();
        if resume.is_none() && run_dir.join("last.safetensors").exists() {
            return Err(TrainError::Config(format!(
                "{} already holds a run: continue it with `--resume {}` or pick another `--name`",
                run_dir.display(),
                run_dir.display()
            )));
        }
        std::fs::create_dir_all(&run_dir).map_err(|e| {
            TrainError::file(&run_dir, format!("cannot create the run folder: {e}"))
        })?;
        let config_path = run_dir.join("config.toml");
        model::io::write_atomic(&config_path, config.to_toml().as_bytes())
            .map_err(|e| TrainError::file(&config_path, format!("cannot write: {e}")))?;

        let store = load_background(&config)?;
        let partition = config.validation.partition(&store)?;
        tracing::info!(
            train_characters = partition.train.characters.len(),
            val_alphabets = ?partition.val_alphabets,
            "split"
        );
        let validation = match &partition.val {
            Some(val) => {
                check_ways(&store, val, config.val.protocol, config.val.ways)?;
                let trials = sample_trials(
                    &store,
                    val,
                    config.val.protocol,
                    config.val.ways,
                    config.val.trials,
                    config.val.seed,
                )?;
                let cfg = PairConfig {
                    augment: None,
                    ..config.pairs.clone()
                };
                let pairs = PairSampler::new(&store, val, cfg, config.val.seed)?
                    .batch(0, config.val.pairs.max(2));
                Some(Validation {
                    subset: val.clone(),
                    trials,
                    pairs,
                })
            }
            None => None,
        };

        let (net, mut state, extras) = match &resume {
            Some(path) => {
                let loaded = load_checkpoint(path, &device)?;
                (loaded.net, loaded.state, Some(loaded.extras))
            }
            None => (
                SiameseNet::new(&config.arch, config.init, config.seed, &device)?,
                TrainState::default(),
                None,
            ),
        };
        state.start_on(&device);
        let net = Arc::new(net);
        let sampler = match &config.objective {
            Objective::Pairs => Sampler::Pairs(PairSampler::new(
                &store,
                &partition.train,
                config.pairs.clone(),
                config.seed,
            )?),
            Objective::Episodes { per_step, .. } => {
                let cfg = config
                    .episode_config()
                    .expect("an episodes objective has an episode config");
                Sampler::Episodes(
                    EpisodeSampler::new(&store, &partition.train, cfg, config.seed)?,
                    *per_step,
                )
            }
        };
        let class_head = match (&sampler, config.objective.class_weight()) {
            (Sampler::Episodes(s, _), w) if w > 0.0 => {
                let (classes, dim) = (s.class_count(), config.arch.embedding_dim()?);
                Some(match &extras {
                    None => ClassHead::new(classes, dim, config.seed, &device)?,
                    Some(extras) => {
                        let t = extras.tensors.get(class_head::TENSOR_NAME).ok_or_else(|| {
                            TrainError::Config(format!(
                                "the checkpoint has no `{}` to resume the class head from",
                                class_head::TENSOR_NAME
                            ))
                        })?;
                        ClassHead::from_tensor(&t.to_device(&device)?, classes, dim)?
                    }
                })
            }
            _ => None,
        };
        let recon_head = match (&sampler, config.objective.recon_weight()) {
            (Sampler::Episodes(..), w) if w > 0.0 => {
                let dim = config.arch.embedding_dim()?;
                let pixels = config.arch.input_side * config.arch.input_side;
                Some(match &extras {
                    None => {
                        let train = &partition.train;
                        let images = train
                            .characters
                            .iter()
                            .flat_map(|&c| train.images_of(&store, c))
                            .map(|id| store.image_f32(id));
                        let mean = ReconHead::mean_ink(images, pixels);
                        ReconHead::new(dim, &mean, &device)?
                    }
                    Some(extras) => ReconHead::from_extras(&extras.tensors, dim, pixels, &device)?,
                })
            }
            _ => None,
        };
        let hard = match (&sampler, &extras) {
            (Sampler::Episodes(s, _), Some(extras)) if !config.hard_negatives.is_off() => {
                crate::mining::from_checkpoint(&extras.tensors, &config.hard_negatives, s)?
            }
            _ => None,
        };
        let h = &config.hard_negatives;
        if !h.is_off() && hard.is_none() && state.step >= h.every && !h.refresh_at(state.step) {
            return Err(TrainError::Config(format!(
                "the checkpoint at step {} has no hard-negative table to resume with",
                state.step
            )));
        }
        // The auxiliary heads train with the network, after its parameters, so that the
        // optimizer's saved buffers keep their numbering.
        let mut vars = net.vars().to_vec();
        let mut layers = net.parameter_layers();
        if let Some(h) = &class_head {
            vars.push(h.var().clone());
            layers.push(usize::MAX);
        }
        if let Some(h) = &recon_head {
            for v in h.vars() {
                vars.push(v.clone());
                layers.push(usize::MAX);
            }
        }
        let mut optimizer = Optimizer::new(config.optimizer.clone(), vars, layers)?;
        if let Some(extras) = &extras {
            optimizer.load_state(&extras.tensors, state.step)?;
        }
        let ema = if config.ema > 0.0 {
            let mut ema = WeightAverage::new(config.ema, &net)?;
            if let Some(extras) = &extras {
                ema.load_state(&extras.tensors, state.step, &device)?;
            }
            Some(ema)
        } else {
            None
        };
        let mut metrics = Metrics::open(
            &run_dir.join("metrics.jsonl"),
            resume.as_ref().map(|_| state.step),
        )?;
        let mut loop_ = Loop {
            config: &config,
            device: &device,
            net: &net,
            run_dir: &run_dir,
            validation: validation.as_ref(),
            store: &store,
            ema,
            class_head,
            recon_head,
            hard,
        };
        loop_.train(&sampler, &mut optimizer, &mut state, &mut metrics, opts)
    }
}

/// Where training batches come from.
enum Sampler<'a> {
    Pairs(PairSampler<'a>),
    /// Episodes, and how many make one step.
    Episodes(EpisodeSampler<'a>, usize),
}

enum Batch {
    Pairs(PairBatch),
    Episodes(Vec<EpisodeBatch>),
}

impl Sampler<'_> {
    /// The batch of `step`: a pure function of the seed, the step and the hard-negative table.
    fn batch(&self, step: u64, batch: usize, hard: Option<&HardNegatives>) -> Batch {
        match self {
            Sampler::Pairs(s) => Batch::Pairs(s.batch(step, batch)),
            Sampler::Episodes(s, per) => Batch::Episodes(
                (0..*per as u64)
                    .map(|i| s.episode_with(step * *per as u64 + i, hard))
                    .collect(),
            ),
        }
    }
}

/// Items (pairs or episodes) in a batch, for throughput figures.
fn items(batch: &Batch) -> usize {
    match batch {
        Batch::Pairs(b) => b.len(),
        Batch::Episodes(e) => e.len(),
    }
}

struct Loop<'a> {
    config: &'a TrainConfig,
    device: &'a Device,
    net: &'a Arc<SiameseNet>,
    run_dir: &'a Path,
    validation: Option<&'a Validation>,
    store: &'a ImageStore,
    ema: Option<WeightAverage>,
    /// The classifier over every training class (`class_weight > 0`).
    class_head: Option<ClassHead>,
    /// The linear decoder back to the input images (`recon_weight > 0`).
    recon_head: Option<ReconHead>,
    /// The hard-negative table in use (`hard_negatives`, after its first refresh).
    hard: Option<HardNegatives>,
}

impl Loop<'_> {
    /// `last.safetensors` (with the optimizer's and the weight average's state), and the
    /// averaged network as `ema.safetensors`.
    fn checkpoint(&self, optimizer: &Optimizer, state: &TrainState) -> Result<()> {
        let path = self.run_dir.join("last.safetensors");
        let mut tensors = optimizer.state_tensors()?;
        tensors.extend(self.class_head.as_ref().map(ClassHead::state_tensor));
        tensors.extend(self.recon_head.iter().flat_map(ReconHead::state_tensors));
        if let Some(hard) = &self.hard {
            tensors.push(crate::mining::state_tensor(hard)?);
        }
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state_tensors());
            let averaged = ema.network(self.net)?;
            let ema_path = self.run_dir.join("ema.safetensors");
            save_checkpoint(&ema_path, &averaged, None, state, self.config)?;
        }
        save_checkpoint_with(&path, self.net, tensors, state, self.config)?;
        tracing::debug!(step = state.step, path = %path.display(), "checkpoint");
        Ok(())
    }

    /// `best.safetensors`: the weights without optimizer state.
    fn save_best(&self, state: &TrainState) -> Result<()> {
        save_checkpoint(
            &self.run_dir.join("best.safetensors"),
            self.net,
            None,
            state,
            self.config,
        )
    }

    /// Embeddings of `images` with step `step`'s dropout mask (if the config asks for one),
    /// and the feature maps after conv block `maps_after` they came from, if asked for.
    fn embed(
        &self,
        images: &Tensor,
        step: u64,
        maps_after: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (e, maps) = match maps_after {
            Some(block) => {
                let (e, maps) = self.net.embed_with_maps(images, block)?;
                (e, Some(maps))
            }
            None => (self.net.embed(images)?, None),
        };
        let cfg = self.config;
        Ok((
            dropout::apply(e, cfg.dropout, cfg.seed, step, self.device)?,
            maps,
        ))
    }

    /// The gradients of `batch`'s loss at the weights moved by the sharpness-aware radius
    /// along `grads` (the loss's gradients at the weights as they are); the weights and the
    /// batch-norm running statistics are put back afterwards, bit for bit.
    fn sharpness_aware_grads(
        &self,
        vars: &[candle_core::Var],
        grads: candle_core::backprop::GradStore,
        batch: &Batch,
        episode_loss: &EpisodeLoss,
        step: u64,
    ) -> Result<candle_core::backprop::GradStore> {
        let statistics = sam::Saved::of(self.net.buffers())?;
        let weights = sam::ascend(vars, &grads, self.config.sam)?;
        drop(grads);
        let loss = self.loss(batch, episode_loss, step)?;
        let grads = loss.backward()?;
        drop(loss);
        weights.restore()?;
        statistics.restore()?;
        Ok(grads)
    }

    /// The loss of step `step`'s batch, as a tensor to differentiate.
    fn loss(&self, batch: &Batch, episode_loss: &EpisodeLoss, step: u64) -> Result<Tensor> {
        let side = self.config.arch.input_side;
        match batch {
            Batch::Pairs(b) => {
                let n = b.len();
                let left = Tensor::from_slice(&b.left, (n, 1, side, side), self.device)?;
                let right = Tensor::from_slice(&b.right, (n, 1, side, side), self.device)?;
                let labels = Tensor::from_slice(&b.labels, n, self.device)?;
                // Both sides as one batch, as `SiameseNet::forward_pairs` does.
                let (e, _) = self.embed(&Tensor::cat(&[&left, &right], 0)?, step, None)?;
                let logits = self
                    .net
                    .head_logits(&e.narrow(0, 0, n)?, &e.narrow(0, n, n)?)?;
                Ok(bce_with_logits(&logits, &labels)?)
            }
            Batch::Episodes(episodes) => {
                let images: Vec<f32> = episodes
                    .iter()
                    .flat_map(|e| e.images.iter().copied())
                    .collect();
                let total = images.len() / (side * side);
                let x = Tensor::from_vec(images, (total, 1, side, side), self.device)?;
                let local = self.config.objective.local_term();
                let (e, maps) = self.embed(&x, step, local.map(|(block, _)| block))?;
                let whole_classes = match &self.class_head {
                    Some(head) => {
                        let classes: Vec<u32> = episodes
                            .iter()
                            .flat_map(|ep| ep.classes.iter().copied())
                            .collect();
                        let w = self.config.objective.class_weight();
                        Some((head.loss(&e, &classes)? * w)?)
                    }
                    None => None,
                };
                let redrawn = match &self.recon_head {
                    Some(head) => {
                        let w = self.config.objective.recon_weight();
                        Some((head.loss(&e, &x)? * w)?)
                    }
                    None => None,
                };
                let mut offset = 0;
                let mut loss: Option<Tensor> = None;
                for ep in episodes {
                    let (ways, q) = (ep.ways, ep.labels.len());
                    let start = offset;
                    offset += ways + q;
                    let supports = e.narrow(0, start, ways)?;
                    let queries = e.narrow(0, start + ways, q)?;
                    let mut logits = self.net.pairwise_logits(&queries, &supports)?;
                    if let (Some(maps), Some((_, weight))) = (&maps, local) {
                        let s = model::local::pairwise_similarity(
                            &maps.narrow(0, start + ways, q)?,
                            &maps.narrow(0, start, ways)?,
                        )?;
                        logits = (logits + (s * weight)?)?;
                    }
                    let l = episode_loss.compute(&logits, &ep.labels, self.device)?;
                    loss = Some(match loss {
                        Some(acc) => (acc + l)?,
                        None => l,
                    });
                }
                let loss =
                    loss.ok_or_else(|| TrainError::Config("an empty batch of episodes".into()))?;
                let loss = (loss / episodes.len() as f64)?;
                Ok([whole_classes, redrawn]
                    .into_iter()
                    .flatten()
                    .try_fold(loss, |acc, term| acc + term)?)
            }
        }
    }

    fn validate(&self, val: &Validation) -> Result<(f64, eval::Accuracy)> {
        let side = self.config.arch.input_side;
        let n = val.pairs.len();
        let left = self.net.embed_images(&val.pairs.left, 256)?;
        let right = self.net.embed_images(&val.pairs.right, 256)?;
        let head = self.net.head_host()?;
        let d = left.len() / n;
        let logits: Vec<f32> = (0..n)
            .map(|i| head.logit(&left[i * d..(i + 1) * d], &right[i * d..(i + 1) * d]))
            .collect();
        let loss = bce_with_logits_host(&logits, &val.pairs.labels) as f64;
        debug_assert_eq!(val.pairs.side, side);
        let mut scorer = validation_scorer(self.net, self.config)?;
        let results = eval::evaluate(&mut scorer, self.store, &val.trials)?;
        let _ = &val.subset;
        Ok((loss, eval::Accuracy::of(&results)))
    }

    fn train(
        &mut self,
        sampler: &Sampler,
        optimizer: &mut Optimizer,
        state: &mut TrainState,
        metrics: &mut Metrics,
        opts: &RunOptions,
    ) -> Result<Summary> {
        let cfg = self.config;
        let total = cfg.total_steps();
        let per_epoch = cfg.steps_per_epoch();
        let b = cfg.batch;
        let episode_loss = match &cfg.objective {
            Objective::Episodes {
                pair_weight,
                symmetric,
                label_smoothing,
                ..
            } => EpisodeLoss {
                pair_weight: *pair_weight,
                symmetric: *symmetric,
                label_smoothing: *label_smoothing,
            },
            Objective::Pairs => EpisodeLoss {
                pair_weight: 0.0,
                symmetric: false,
                label_smoothing: 0.0,
            },
        };
        let mut items_done = 0usize;
        let start = state.step;
        let started = Instant::now();
        let bar = if opts.progress {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(start);
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut outcome = Outcome::Finished;
        let mut last_val = String::from("val -");
        let (mut window_loss, mut window_steps, mut window_wait, mut window_time) =
            (0.0f64, 0u64, 0.0f64, 0.0f64);
        let mut window_items = 0usize;
        let unit = cfg.objective.item_name();
        let (mut all_wait, mut all_time) = (0.0f64, 0.0f64);
        let mut stale_checkpoint = false;
        // Once, at the first log or after 3 steps and 15 s: how long the rest will take.
        let mut paced = false;

        std::thread::scope(|scope| -> Result<()> {
            // Batches for the coming steps are sampled and augmented while the model trains. At
            // a hard-negative refresh the data thread waits for the table mined from the
            // weights of that step, so the batches do not depend on how far ahead it ran.
            let (tx, rx) = sync_channel::<(u64, Batch)>(2);
            let (table_tx, table_rx) = sync_channel::<HardNegatives>(1);
            let mut hard = self.hard.clone();
            let mining = &cfg.hard_negatives;
            scope.spawn(move || {
                for step in start..total {
                    if mining.refresh_at(step) {
                        match table_rx.recv() {
                            Ok(table) => hard = Some(table),
                            Err(_) => break,
                        }
                    }
                    let batch = sampler.batch(step, b, hard.as_ref());
                    if tx.send((step, batch)).is_err() {
                        break;
                    }
                }
            });
            for step in start..total {
                if opts.stop.load(Ordering::SeqCst) || opts.stop_after.is_some_and(|s| step >= s) {
                    outcome = Outcome::Interrupted;
                    break;
                }
                if cfg.hard_negatives.refresh_at(step)
                    && let Sampler::Episodes(episodes, _) = sampler
                {
                    let table = crate::mining::mine(self.net, episodes, &cfg.hard_negatives)?;
                    self.hard = Some(table.clone());
                    table_tx
                        .send(table)
                        .map_err(|_| TrainError::Config("the data thread stopped".into()))?;
                }
                let t0 = Instant::now();
                let (got, batch) = rx
                    .recv()
                    .map_err(|_| TrainError::Config("the data thread stopped".into()))?;
                debug_assert_eq!(got, step);
                let waited = t0.elapsed().as_secs_f64();
                let n_items = items(&batch);
                let loss = self.loss(&batch, &episode_loss, step)?;
                let value = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
                if !value.is_finite() {
                    let last = self.run_dir.join("last.safetensors");
                    return Err(TrainError::Diverged {
                        step,
                        value,
                        checkpoint: if last.exists() {
                            last.display().to_string()
                        } else {
                            "none (no step completed a checkpoint)".into()
                        },
                    });
                }
                let grads = loss.backward()?;
                drop(loss);
                let grads = if cfg.sam > 0.0 {
                    self.sharpness_aware_grads(
                        optimizer.vars(),
                        grads,
                        &batch,
                        &episode_loss,
                        step,
                    )?
                } else {
                    grads
                };
                drop(batch);
                let factor = cfg.schedule.factor(step, total, per_epoch);
                let epoch = step as f64 / per_epoch as f64;
                optimizer.step(&grads, factor, epoch)?;
                drop(grads);
                if let Some(ema) = &mut self.ema {
                    ema.update(self.net)?;
                }
                state.step = step + 1;
                stale_checkpoint = true;
                let dt = t0.elapsed().as_secs_f64();
                window_loss += value as f64;
                window_steps += 1;
                window_items += n_items;
                items_done += n_items;
                window_wait += waited;
                window_time += dt;
                all_wait += waited;
                all_time += dt;
                bar.inc(1);

                let at_log = state.step.is_multiple_of(cfg.log_every) || state.step == total;
                let steps_here = state.step - start;
                if !paced && state.step < total && (at_log || (steps_here >= 3 && all_time >= 15.0))
                {
                    paced = true;
                    tracing::info!(
                        "{:.1} {unit}/s: the {} steps left take about {} at this pace, validations not counted",
                        items_done as f64 / all_time.max(1e-9),
                        total - state.step,
                        crate::pace::remaining(all_time / steps_here as f64, total - state.step)
                    );
                }
                if at_log {
                    let pairs_per_s = window_items as f64 / window_time.max(1e-9);
                    let rec = Record::Train {
                        step: state.step,
                        epoch: state.step as f64 / per_epoch as f64,
                        loss: window_loss / window_steps as f64,
                        lr: cfg.optimizer.lr() * factor,
                        pairs_per_s,
                        data_wait: window_wait / window_time.max(1e-9),
                    };
                    bar.set_message(format!(
                        "epoch {:.2}/{} loss {:.4} {last_val} {:.1} {unit}/s",
                        state.step as f64 / per_epoch as f64,
                        cfg.epochs,
                        window_loss / window_steps as f64,
                        pairs_per_s
                    ));
                    tracing::debug!(?rec, "train");
                    metrics.push(rec)?;
                    (
                        window_loss,
                        window_steps,
                        window_wait,
                        window_time,
                        window_items,
                    ) = (0.0, 0, 0.0, 0.0, 0);
                }

                let validate_now = match cfg.val.every {
                    0 => state.step.is_multiple_of(per_epoch),
                    every => state.step.is_multiple_of(every),
                } || state.step == total;
                if validate_now && let Some(val) = self.validation {
                    let (vloss, acc) = self.validate(val)?;
                    last_val = format!("val {:.1}%", 100.0 * acc.accuracy);
                    tracing::info!(
                        step = state.step,
                        val_loss = vloss,
                        val_accuracy = %acc.display(),
                        turns = cfg.val.turns,
                        "validation"
                    );
                    metrics.push(Record::Val {
                        step: state.step,
                        epoch: state.step as f64 / per_epoch as f64,
                        loss: vloss,
                        accuracy: acc.accuracy,
                        ci_low: acc.ci_low,
                        ci_high: acc.ci_high,
                        trials: acc.total,
                        turns: cfg.val.turns,
                    })?;
                    if state.best_accuracy.is_none_or(|b| acc.accuracy > b) {
                        state.best_accuracy = Some(acc.accuracy);
                        state.best_step = Some(state.step);
                        state.stale_validations = 0;
                        self.save_best(state)?;
                    } else {
                        state.stale_validations += 1;
                    }
                    metrics.plot(&self.run_dir.join("curves.png"))?;
                    if cfg.patience > 0 && state.stale_validations >= cfg.patience {
                        tracing::info!(
                            step = state.step,
                            "early stopping: no better validation accuracy in {} validations",
                            cfg.patience
                        );
                        outcome = Outcome::EarlyStopped;
                        self.checkpoint(optimizer, state)?;
                        stale_checkpoint = false;
                        break;
                    }
                }
                if state.step.is_multiple_of(cfg.checkpoint_every) {
                    self.checkpoint(optimizer, state)?;
                    stale_checkpoint = false;
                }
            }
            drop(rx);
            drop(table_tx);
            Ok(())
        })?;
        bar.finish_and_clear();
        if stale_checkpoint || !self.run_dir.join("last.safetensors").exists() {
            self.checkpoint(optimizer, state)?;
        }
        if self.validation.is_none() && outcome != Outcome::Interrupted {
            // Without a validation split the final weights are the ones to use.
            self.save_best(state)?;
        }
        metrics.plot(&self.run_dir.join("curves.png"))?;
        Ok(Summary {
            outcome,
            run_dir: self.run_dir.to_path_buf(),
            steps: state.step,
            best: metrics.best_val(),
            seconds: started.elapsed().as_secs_f64(),
            items_per_s: items_done as f64 / all_time.max(1e-9),
            item_name: unit,
            data_wait: all_wait / all_time.max(1e-9),
            members: 1,
        })
    }
}
