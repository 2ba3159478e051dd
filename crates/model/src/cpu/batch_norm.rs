//! Batch normalisation + ReLU + optional 2x2 max-pool as one CPU op, after a conv block that
//! returned its raw map. Training mode normalises with the batch's statistics (and reports
//! them for the running averages); inference uses the running statistics. Only the pooling
//! argmax and the per-channel mean and inverse deviation are kept for backward.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::conv_block::pool_relu;
use super::{host_slice, storage_slice};

pub const EPS: f32 = 1e-5;

/// Batch mean and unbiased variance per channel, for the running averages.
pub type BatchStats = Arc<Mutex<Option<(Vec<f32>, Vec<f32>)>>>;

pub struct BnReluPoolOp {
    pub channels: usize,
    pub side: usize,
    pub pool: bool,
    /// `Some((mean, var))`: inference with these statistics; `None`: training.
    pub running: Option<(Vec<f32>, Vec<f32>)>,
    pub stats: BatchStats,
    saved: Mutex<Saved>,
}

#[derive(Default)]
struct Saved {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    argmax: Vec<u8>,
}

impl BnReluPoolOp {
    pub fn new(
        channels: usize,
        side: usize,
        pool: bool,
        running: Option<(Vec<f32>, Vec<f32>)>,
    ) -> Self {
        BnReluPoolOp {
            channels,
            side,
            pool,
            running,
            stats: Arc::new(Mutex::new(None)),
            saved: Mutex::new(Saved::default()),
        }
    }

    fn out_side(&self) -> usize {
        if self.pool { self.side / 2 } else { self.side }
    }
}

const OP: &str = "batch norm";

impl CustomOp3 for BnReluPoolOp {
    fn name(&self) -> &'static str {
        "batch-norm-relu-pool"
    }

    fn cpu_fwd(
        &self,
        zs: &CpuStorage,
        zl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (z, gamma, beta) = (
            host_slice(OP, zs, zl)?,
            host_slice(OP, gs, gl)?,
            host_slice(OP, bs, bl)?,
        );
        let (c_n, s) = (self.channels, self.side);
        let n = zl.dims()[0];
        let plane = s * s;
        let count = (n * plane) as f64;
        let (mean, inv_std) = match &self.running {
            Some((m, v)) => (
                m.clone(),
                v.iter()
                    .map(|v| 1.0 / (v + EPS).sqrt())
                    .collect::<Vec<f32>>(),
            ),
            None => {
                let moments: Vec<(f64, f64)> = (0..c_n)
                    .into_par_iter()
                    .map(|c| {
                        let (mut sum, mut sq) = (0f64, 0f64);
                        for i in 0..n {
                            let p = &z[(i * c_n + c) * plane..(i * c_n + c + 1) * plane];
                            let (ps, pq) =
                                p.iter().fold((0f32, 0f32), |(a, b), &v| (a + v, b + v * v));
                            sum += ps as f64;
                            sq += pq as f64;
                        }
                        let mean = sum / count;
                        (mean, (sq / count - mean * mean).max(0.0))
                    })
                    .collect();
                let unbiased = count / (count - 1.0).max(1.0);
                *self.stats.lock().expect("stats lock") = Some((
                    moments.iter().map(|m| m.0 as f32).collect(),
                    moments.iter().map(|m| (m.1 * unbiased) as f32).collect(),
                ));
                (
                    moments.iter().map(|m| m.0 as f32).collect(),
                    moments
                        .iter()
                        .map(|m| 1.0 / (m.1 as f32 + EPS).sqrt())
                        .collect(),
                )
            }
        };
        let o = self.out_side();
        let out_len = c_n * o * o;
        let mut out = vec![0f32; n * out_len];
        let mut argmax = vec![0u8; if self.pool { n * out_len } else { 0 }];
        let arg_chunks: Vec<&mut [u8]> = if self.pool {
            argmax.chunks_mut(out_len).collect()
        } else {
            (0..n).map(|_| &mut [][..]).collect()
        };
        out.par_chunks_mut(out_len)
            .zip(arg_chunks.into_par_iter())
            .enumerate()
            .for_each(|(i, (out, arg))| {
                let mut y = vec![0f32; c_n * plane];
                for c in 0..c_n {
                    let (a, b) = (
                        gamma[c] * inv_std[c],
                        beta[c] - gamma[c] * inv_std[c] * mean[c],
                    );
                    let src = &z[(i * c_n + c) * plane..(i * c_n + c + 1) * plane];
                    for (d, &v) in y[c * plane..(c + 1) * plane].iter_mut().zip(src) {
                        *d = a * v + b;
                    }
                }
                if self.pool {
                    pool_relu(&y, plane, 0, c_n, s, out, arg);
                } else {
                    for (d, v) in out.iter_mut().zip(&y) {
                        *d = v.max(0.0);
                    }
                }
            });
        if self.running.is_none() {
            *self.saved.lock().expect("saved lock") = Saved {
                mean,
                inv_std,
                argmax,
            };
        }
        Ok((CpuStorage::F32(out), Shape::from_dims(&[n, c_n, o, o])))
    }

    fn bwd(
        &self,
        z: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.running.is_some() {
            candle_core::bail!("batch norm: backward through an op built for inference");
        }
        let saved = std::mem::take(&mut *self.saved.lock().expect("saved lock"));
        let (z, gamma, res, grad) = (
            z.contiguous()?,
            gamma.contiguous()?,
            res.contiguous()?,
            grad.contiguous()?,
        );
        let (zg, zl) = z.storage_and_layout();
        let (gg, gl) = gamma.storage_and_layout();
        let (rg, rl) = res.storage_and_layout();
        let (dg, dl) = grad.storage_and_layout();
        let (z, gamma) = (storage_slice(OP, &zg, zl)?, storage_slice(OP, &gg, gl)?);
        let (res, grad) = (storage_slice(OP, &rg, rl)?, storage_slice(OP, &dg, dl)?);
        let (c_n, s, o) = (self.channels, self.side, self.out_side());
        let n = zl.dims()[0];
        let (plane, out_plane) = (s * s, o * o);
        let count = (n * plane) as f32;
        let (mean, inv_std, argmax) = (&saved.mean, &saved.inv_std, &saved.argmax);
        // The input cell that pooled output cell `k` of image `i`, channel `c` came from. An
        // unpooled map (no pool, or a blur pool after this op) maps cell k to cell k, and the
        // loops below walk its planes side by side instead.
        let pooled_from = |i: usize, c: usize, k: usize| -> usize {
            let a = argmax[(i * c_n + c) * out_plane + k] as usize;
            let (py, px) = (k / o, k % o);
            (2 * py + a / 2) * s + 2 * px + a % 2
        };
        // Per channel: sum(dy) and sum(dy * xhat).
        let sums: Vec<(f32, f32)> = (0..c_n)
            .into_par_iter()
            .map(|c| {
                let (mut s1, mut s2) = (0f32, 0f32);
                for i in 0..n {
                    let base = (i * c_n + c) * out_plane;
                    if self.pool {
                        for k in 0..out_plane {
                            if res[base + k] > 0.0 {
                                let dy = grad[base + k];
                                let zv = z[(i * c_n + c) * plane + pooled_from(i, c, k)];
                                s1 += dy;
                                s2 += dy * (zv - mean[c]) * inv_std[c];
                            }
                        }
                    } else {
                        let cells = base..base + out_plane;
                        for ((&r, &dy), &zv) in res[cells.clone()]
                            .iter()
                            .zip(&grad[cells.clone()])
                            .zip(&z[cells])
                        {
                            if r > 0.0 {
                                s1 += dy;
                                s2 += dy * (zv - mean[c]) * inv_std[c];
                            }
                        }
                    }
                }
                (s1, s2)
            })
            .collect();
        let mut dz = vec![0f32; n * c_n * plane];
        dz.par_chunks_mut(c_n * plane)
            .enumerate()
            .for_each(|(i, dz)| {
                for c in 0..c_n {
                    let (s1, s2) = sums[c];
                    let scale = gamma[c] * inv_std[c];
                    let d = &mut dz[c * plane..(c + 1) * plane];
                    let src = &z[(i * c_n + c) * plane..(i * c_n + c + 1) * plane];
                    let base = (i * c_n + c) * out_plane;
                    if self.pool {
                        for (d, &v) in d.iter_mut().zip(src) {
                            let xhat = (v - mean[c]) * inv_std[c];
                            *d = -scale * (s1 / count + xhat * s2 / count);
                        }
                        for k in 0..out_plane {
                            if res[base + k] > 0.0 {
                                d[pooled_from(i, c, k)] += scale * grad[base + k];
                            }
                        }
                    } else {
                        let cells = base..base + out_plane;
                        for (((d, &v), &r), &g) in d
                            .iter_mut()
                            .zip(src)
                            .zip(&res[cells.clone()])
                            .zip(&grad[cells])
                        {
                            let xhat = (v - mean[c]) * inv_std[c];
                            *d = -scale * (s1 / count + xhat * s2 / count);
                            if r > 0.0 {
                                *d += scale * g;
                            }
                        }
                    }
                }
            });
        let dev = candle_core::Device::Cpu;
        let dgamma = Tensor::from_vec(sums.iter().map(|s| s.1).collect::<Vec<f32>>(), c_n, &dev)?;
        let dbeta = Tensor::from_vec(sums.iter().map(|s| s.0).collect::<Vec<f32>>(), c_n, &dev)?;
        Ok((
            Some(Tensor::from_vec(dz, (n, c_n, s, s), &dev)?),
            Some(dgamma),
            Some(dbeta),
        ))
    }
}
