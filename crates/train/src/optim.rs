//! Optimizers with state that can be saved: AdamW (PyTorch semantics) and SGD with momentum
//! (Koch et al.: per-layer learning rates and L2, momentum ramped over epochs). On the CPU the
//! update is one fused in-place pass over each parameter (candle's AdamW runs ~14 allocating
//! tensor ops per parameter); on other devices it uses tensor ops.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Layout, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// AdamW as in PyTorch (decoupled weight decay).
    Adamw {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    /// SGD with momentum and L2 (Koch et al.). `layer_lr` and `layer_l2` optionally scale the
    /// rate and set the L2 per layer (conv1..convN, fc, head); momentum rises linearly from
    /// `momentum_start` to `momentum` over `momentum_epochs` epochs.
    Sgd {
        lr: f64,
        momentum: f64,
        momentum_start: f64,
        momentum_epochs: f64,
        l2: f64,
        #[serde(default)]
        layer_lr: Vec<f64>,
        #[serde(default)]
        layer_l2: Vec<f64>,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::adamw(6e-4)
    }
}

impl OptimizerConfig {
    /// AdamW with PyTorch's defaults (betas 0.9/0.999, eps 1e-8, weight decay 0.01).
    pub fn adamw(lr: f64) -> Self {
        OptimizerConfig::Adamw {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    pub fn koch_sgd() -> Self {
        OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.9,
            momentum_start: 0.5,
            momentum_epochs: 10.0,
            l2: 2e-4,
            layer_lr: Vec::new(),
            layer_l2: Vec::new(),
        }
    }

    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adamw { lr, .. } | OptimizerConfig::Sgd { lr, .. } => *lr,
        }
    }

    pub fn set_lr(&mut self, value: f64) {
        match self {
            OptimizerConfig::Adamw { lr, .. } | OptimizerConfig::Sgd { lr, .. } => *lr = value,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let lr = self.lr();
        if !positive(lr) {
            return Err(format!("learning rate must be a positive number, got {lr}"));
        }
        match self {
            OptimizerConfig::Adamw {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(beta1) || !(0.0..1.0).contains(beta2) {
                    return Err("AdamW betas must be in [0, 1)".into());
                }
                if !positive(*eps) || !non_negative(*weight_decay) {
                    return Err("AdamW needs eps > 0 and weight decay >= 0".into());
                }
            }
            OptimizerConfig::Sgd {
                momentum,
                momentum_start,
                l2,
                layer_lr,
                layer_l2,
                ..
            } => {
                if !(0.0..1.0).contains(momentum) || !(0.0..1.0).contains(momentum_start) {
                    return Err("SGD momentum must be in [0, 1)".into());
                }
                if !non_negative(*l2) || !layer_l2.iter().all(|v| non_negative(*v)) {
                    return Err("L2 penalties must be >= 0".into());
                }
                if !layer_lr.iter().all(|v| positive(*v)) {
                    return Err("per-layer learning-rate factors must be > 0".into());
                }
            }
        }
        Ok(())
    }
}

/// Finite and > 0 (false for NaN).
pub(crate) fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// Finite and >= 0 (false for NaN).
pub(crate) fn non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Per-parameter moment buffers, on the host for CPU parameters, as tensors elsewhere.
enum Buffers {
    Host(Vec<Vec<f32>>),
    Device(Vec<Tensor>),
}

impl Buffers {
    fn zeros(vars: &[Var]) -> Result<Self> {
        if vars.iter().all(|v| v.device().is_cpu()) {
            Ok(Buffers::Host(
                vars.iter().map(|v| vec![0.0; v.elem_count()]).collect(),
            ))
        } else {
            Ok(Buffers::Device(
                vars.iter()
                    .map(|v| v.zeros_like())
                    .collect::<candle_core::Result<_>>()?,
            ))
        }
    }

    fn to_tensors(&self, vars: &[Var]) -> Result<Vec<Tensor>> {
        match self {
            Buffers::Host(b) => b
                .iter()
                .zip(vars)
                .map(|(v, var)| {
                    Ok(Tensor::from_slice(
                        v,
                        var.dims(),
                        &candle_core::Device::Cpu,
                    )?)
                })
                .collect(),
            Buffers::Device(t) => Ok(t.clone()),
        }
    }

    fn load(&mut self, i: usize, t: &Tensor) -> Result<()> {
        match self {
            Buffers::Host(b) => b[i] = t.flatten_all()?.to_vec1::<f32>()?,
            Buffers::Device(b) => b[i] = t.to_device(b[i].device())?,
        }
        Ok(())
    }
}

pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<Var>,
    /// Layer index of each parameter (for per-layer settings).
    layers: Vec<usize>,
    first: Buffers,
    second: Option<Buffers>,
    steps: u64,
}

/// The scalars of one update of one parameter.
#[derive(Clone, Copy)]
enum Update {
    Adamw {
        lr: f32,
        b1: f32,
        b2: f32,
        eps: f32,
        wd: f32,
        bc1: f32,
        bc2: f32,
    },
    Sgd {
        lr: f32,
        momentum: f32,
        l2: f32,
    },
}

impl Update {
    /// Applies the update to a chunk of parameter `p` with gradient `g` and buffers.
    #[inline]
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        match *self {
            Update::Adamw {
                lr,
                b1,
                b2,
                eps,
                wd,
                bc1,
                bc2,
            } => {
                let decay = 1.0 - lr * wd;
                for i in 0..p.len() {
                    let gi = g[i];
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    let mhat = m[i] / bc1;
                    let vhat = v[i] / bc2;
                    p[i] = p[i] * decay - lr * mhat / (vhat.sqrt() + eps);
                }
            }
            Update::Sgd { lr, momentum, l2 } => {
                for i in 0..p.len() {
                    let gi = g[i] + l2 * p[i];
                    m[i] = momentum * m[i] + gi;
                    p[i] -= lr * m[i];
                }
            }
        }
    }
}

/// The in-place CPU update of one parameter from its gradient.
struct FusedStep<'a> {
    update: Update,
    first: std::cell::RefCell<&'a mut [f32]>,
    second: std::cell::RefCell<&'a mut [f32]>,
}

impl candle_core::InplaceOp2 for FusedStep<'_> {
    fn name(&self) -> &'static str {
        "fused-optimizer-step"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((p0, p1)), Some((g0, g1))) =
            (dst_l.contiguous_offsets(), gl.contiguous_offsets())
        else {
            candle_core::bail!("optimizer: parameters and gradients must be contiguous");
        };
        let CpuStorage::F32(p) = dst else {
            candle_core::bail!("optimizer: parameters must be f32");
        };
        let g = &gs.as_slice::<f32>()?[g0..g1];
        let p = &mut p[p0..p1];
        let mut first = self.first.borrow_mut();
        let mut second = self.second.borrow_mut();
        const CHUNK: usize = 1 << 14;
        let update = self.update;
        if second.is_empty() {
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(first.par_chunks_mut(CHUNK))
                .for_each(|((p, g), m)| update.apply(p, g, m, &mut []));
        } else {
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(
                    first
                        .par_chunks_mut(CHUNK)
                        .zip(second.par_chunks_mut(CHUNK)),
                )
                .for_each(|((p, g), (m, v))| update.apply(p, g, m, v));
        }
        Ok(())
    }
}

impl Optimizer {
    /// `layers[i]` is the layer index of `vars[i]`.
    pub fn new(config: OptimizerConfig, vars: Vec<Var>, layers: Vec<usize>) -> Result<Self> {
        config.validate().map_err(TrainError::Config)?;
        let first = Buffers::zeros(&vars)?;
        let second = match config {
            OptimizerConfig::Adamw { .. } => Some(Buffers::zeros(&vars)?),
            OptimizerConfig::Sgd { .. } => None,
        };
        Ok(Optimizer {
            config,
            vars,
            layers,
            first,
            second,
            steps: 0,
        })
    }

    /// Keeps the buffers as tensors and updates with tensor ops, as on GPUs (for checking the
    /// fused CPU path against it).
    pub fn with_tensor_ops(mut self) -> Result<Self> {
        self.first = Buffers::Device(self.first.to_tensors(&self.vars)?);
        if let Some(s) = &self.second {
            self.second = Some(Buffers::Device(s.to_tensors(&self.vars)?));
        }
        Ok(self)
    }

    /// The parameters it updates, in the order of its saved buffers.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn update_for(&self, i: usize, lr_factor: f64, epoch: f64) -> Update {
        let layer = self.layers[i];
        match &self.config {
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let t = (self.steps + 1) as i32;
                Update::Adamw {
                    lr: (lr * lr_factor) as f32,
                    b1: *beta1 as f32,
                    b2: *beta2 as f32,
                    eps: *eps as f32,
                    wd: *weight_decay as f32,
                    bc1: (1.0 - beta1.powi(t)) as f32,
                    bc2: (1.0 - beta2.powi(t)) as f32,
                }
            }
            OptimizerConfig::Sgd {
                lr,
                momentum,
                momentum_start,
                momentum_epochs,
                l2,
                layer_lr,
                layer_l2,
            } => {
                let ramp = if *momentum_epochs > 0.0 {
                    (epoch / momentum_epochs).min(1.0)
                } else {
                    1.0
                };
                Update::Sgd {
                    lr: (lr * lr_factor * layer_lr.get(layer).copied().unwrap_or(1.0)) as f32,
                    momentum: (momentum_start + (momentum - momentum_start) * ramp) as f32,
                    l2: layer_l2.get(layer).copied().unwrap_or(*l2) as f32,
                }
            }
        }
    }

    /// One update of every parameter that has a gradient. `lr_factor` comes from the
    /// schedule; `epoch` (fractional) drives the momentum ramp.
    pub fn step(&mut self, grads: &GradStore, lr_factor: f64, epoch: f64) -> Result<()> {
        for i in 0..self.vars.len() {
            let Some(g) = grads.get(self.vars[i].as_tensor()) else {
                continue;
            };
            let update = self.update_for(i, lr_factor, epoch);
            let var = self.vars[i].clone();
            match (&mut self.first, &mut self.second) {
                (Buffers::Host(first), second) => {
                    let g = g.contiguous()?;
                    let mut empty: [f32; 0] = [];
                    let second: &mut [f32] = match second {
                        Some(Buffers::Host(s)) => &mut s[i],
                        _ => &mut empty,
                    };
                    let op = FusedStep {
                        update,
                        first: std::cell::RefCell::new(&mut first[i]),
                        second: std::cell::RefCell::new(second),
                    };
                    var.as_tensor().inplace_op2(&g, &op)?;
                }
                (Buffers::Device(first), second) => {
                    // A gradient from `backward` still references the forward pass; moments
                    // built on it would keep every step's graph (and its memory) alive.
                    let g = &g.detach();
                    let p = &var.as_tensor().detach();
                    let new = match update {
                        Update::Adamw {
                            lr,
                            b1,
                            b2,
                            eps,
                            wd,
                            bc1,
                            bc2,
                        } => {
                            let Some(Buffers::Device(second)) = second else {
                                unreachable!("AdamW has second moments")
                            };
                            let m = ((&first[i] * b1 as f64)? + (g * (1.0 - b1) as f64)?)?;
                            let v = ((&second[i] * b2 as f64)? + (g.sqr()? * (1.0 - b2) as f64)?)?;
                            let step =
                                ((&m / bc1 as f64)? / ((&v / bc2 as f64)?.sqrt()? + eps as f64)?)?;
                            let new = ((p * (1.0 - lr * wd) as f64)? - (step * lr as f64)?)?;
                            first[i] = m;
                            second[i] = v;
                            new
                        }
                        Update::Sgd { lr, momentum, l2 } => {
                            let gi = (g + (p * l2 as f64)?)?;
                            let m = ((&first[i] * momentum as f64)? + gi)?;
                            let new = (p - (&m * lr as f64)?)?;
                            first[i] = m;
                            new
                        }
                    };
                    var.set(&new)?;
                }
            }
        }
        self.steps += 1;
        Ok(())
    }

    /// Buffers as named tensors (`opt.m.I`, `opt.v.I`) for a checkpoint.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, t) in self.first.to_tensors(&self.vars)?.into_iter().enumerate() {
            out.push((format!("opt.m.{i}"), t));
        }
        if let Some(second) = &self.second {
            for (i, t) in second.to_tensors(&self.vars)?.into_iter().enumerate() {
                out.push((format!("opt.v.{i}"), t));
            }
        }
        Ok(out)
    }

    /// Restores buffers saved by [`Optimizer::state_tensors`] and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for i in 0..self.vars.len() {
            let want = self.vars[i].dims().to_vec();
            let fetch = |name: String| -> Result<Tensor> {
                let t = tensors.get(&name).ok_or_else(|| {
                    TrainError::Config(format!("checkpoint has no optimizer state `{name}`"))
                })?;
                if t.dims() != want.as_slice() {
                    return Err(TrainError::Config(format!(
                        "optimizer state `{name}` has the wrong shape"
                    )));
                }
                Ok(t.clone())
            };
            let m = fetch(format!("opt.m.{i}"))?;
            self.first.load(i, &m)?;
            if let Some(second) = &mut self.second {
                let v = fetch(format!("opt.v.{i}"))?;
                second.load(i, &v)?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}
