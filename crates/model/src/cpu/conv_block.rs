//! One convolution block as a single candle op on the CPU: conv (stride 1) + bias + ReLU +
//! optional 2x2 max-pool. The pre-pool map of a whole batch is never materialised: each image
//! is convolved and pooled in turn, and only the argmax of each pooling window is kept for the
//! backward pass. Backward recomputes im2col per image and uses GEMMs for the weight and input
//! gradients, skipping the input gradient when the input is the network's input.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::gemm::{Mat, matmul};
use super::im2col::{Geometry, col2im_add, im2col};

/// Shapes of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub in_channels: usize,
    pub out_channels: usize,
    pub side: usize,
    pub kernel: usize,
    pub padding: usize,
    pub pool: bool,
}

impl ConvGeometry {
    fn im2col(&self) -> Geometry {
        Geometry {
            channels: self.in_channels,
            side: self.side,
            kernel: self.kernel,
            padding: self.padding,
        }
    }

    pub fn conv_side(&self) -> usize {
        self.im2col().out_side()
    }

    pub fn out_side(&self) -> usize {
        if self.pool {
            self.conv_side() / 2
        } else {
            self.conv_side()
        }
    }

    fn in_len(&self) -> usize {
        self.in_channels * self.side * self.side
    }

    fn out_len(&self) -> usize {
        self.out_channels * self.out_side() * self.out_side()
    }
}

pub struct ConvBlockOp {
    pub geometry: ConvGeometry,
    /// Whether the backward pass computes the gradient of the input (false for the first
    /// layer, whose input is data).
    pub input_grad: bool,
    /// Whether to remember pooling argmaxes for a backward pass.
    pub train: bool,
    argmax: Mutex<Vec<u8>>,
}

impl ConvBlockOp {
    pub fn new(geometry: ConvGeometry, input_grad: bool, train: bool) -> Self {
        ConvBlockOp {
            geometry,
            input_grad,
            train,
            argmax: Mutex::new(Vec::new()),
        }
    }
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("conv block: tensors must be contiguous"),
    }
}

fn cpu_slice<'a>(s: &'a Storage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => contiguous(c, l),
        _ => candle_core::bail!("conv block: the CPU kernel got a tensor on another device"),
    }
}

/// Splits `0..n` into at most `parts` contiguous ranges of near-equal size.
fn ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Bias + ReLU + pool of one image's conv output `z` (`C x S x S`) into `out`, recording the
/// argmax (0..4, row-major in the window; the first maximum wins as in PyTorch).
fn pool_relu(z: &[f32], channels: usize, side: usize, out: &mut [f32], argmax: &mut [u8]) {
    let o = side / 2;
    for c in 0..channels {
        let plane = &z[c * side * side..(c + 1) * side * side];
        for py in 0..o {
            for px in 0..o {
                let i = (2 * py) * side + 2 * px;
                let cand = [plane[i], plane[i + 1], plane[i + side], plane[i + side + 1]];
                let mut best = 0;
                for (j, &v) in cand.iter().enumerate().skip(1) {
                    if v > cand[best] {
                        best = j;
                    }
                }
                let at = c * o * o + py * o + px;
                out[at] = cand[best].max(0.0);
                argmax[at] = best as u8;
            }
        }
    }
}

impl CustomOp3 for ConvBlockOp {
    fn name(&self) -> &'static str {
        "conv-block"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let (x, w, b) = (contiguous(xs, xl)?, contiguous(ws, wl)?, contiguous(bs, bl)?);
        let n = xl.dims()[0];
        let ig = g.im2col();
        let (k_rows, p_cols) = (ig.rows(), ig.cols());
        let conv_side = g.conv_side();
        let (in_len, out_len) = (g.in_len(), g.out_len());
        let mut out = vec![0f32; n * out_len];
        let mut argmax = vec![0u8; if g.pool && self.train { n * out_len } else { 0 }];
        let threads = rayon::current_num_threads();
        let gemm_threads = if n >= threads { 1 } else { threads };
        let chunks = ranges(n, threads);
        // Each chunk owns a disjoint slice of `out` and `argmax`.
        let mut out_parts: Vec<&mut [f32]> = Vec::new();
        let mut arg_parts: Vec<&mut [u8]> = Vec::new();
        {
            let mut rest_o = out.as_mut_slice();
            let mut rest_a = argmax.as_mut_slice();
            for r in &chunks {
                let (o, ro) = rest_o.split_at_mut(r.len() * out_len);
                out_parts.push(o);
                rest_o = ro;
                let take = if rest_a.is_empty() { 0 } else { r.len() * out_len };
                let (a, ra) = rest_a.split_at_mut(take);
                arg_parts.push(a);
                rest_a = ra;
            }
        }
        chunks
            .par_iter()
            .zip(out_parts.into_par_iter().zip(arg_parts.into_par_iter()))
            .for_each(|(r, (out, argmax))| {
                let mut col = vec![0f32; k_rows * p_cols];
                let mut z = vec![0f32; g.out_channels * p_cols];
                let mut scratch_arg = vec![0u8; if g.pool && argmax.is_empty() { out_len } else { 0 }];
                for (j, img) in r.clone().enumerate() {
                    let input = &x[img * in_len..(img + 1) * in_len];
                    let rhs = if g.kernel == 1 && g.padding == 0 {
                        input
                    } else {
                        im2col(ig, input, &mut col);
                        &col[..]
                    };
                    for (c, row) in z.chunks_mut(p_cols).enumerate() {
                        row.fill(b[c]);
                    }
                    matmul(
                        &mut z,
                        Mat::new(w, g.out_channels, k_rows),
                        Mat::new(rhs, k_rows, p_cols),
                        true,
                        gemm_threads,
                    );
                    let o = &mut out[j * out_len..(j + 1) * out_len];
                    if g.pool {
                        let a = if argmax.is_empty() {
                            &mut scratch_arg[..]
                        } else {
                            &mut argmax[j * out_len..(j + 1) * out_len]
                        };
                        pool_relu(&z, g.out_channels, conv_side, o, a);
                    } else {
                        for (d, v) in o.iter_mut().zip(&z) {
                            *d = v.max(0.0);
                        }
                    }
                }
            });
        if self.train && g.pool {
            *self.argmax.lock().expect("argmax lock") = argmax;
        }
        let o = g.out_side();
        Ok((
            CpuStorage::F32(out),
            Shape::from_dims(&[n, g.out_channels, o, o]),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if !self.train {
            candle_core::bail!("conv block: backward through an op built for inference");
        }
        let g = self.geometry;
        let n = x.dims()[0];
        // Read the operands in place: copying the input of a big layer costs as much as a GEMM.
        let (x, w, res, grad) = (x.contiguous()?, w.contiguous()?, res.contiguous()?, grad.contiguous()?);
        let (xg, xl) = x.storage_and_layout();
        let (wg, wl) = w.storage_and_layout();
        let (rg, rl) = res.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let (x, w) = (cpu_slice(&xg, xl)?, cpu_slice(&wg, wl)?);
        let (res, grad) = (cpu_slice(&rg, rl)?, cpu_slice(&gg, gl)?);
        let argmax = std::mem::take(&mut *self.argmax.lock().expect("argmax lock"));
        let ig = g.im2col();
        let (k_rows, p_cols) = (ig.rows(), ig.cols());
        let (cs, os) = (g.conv_side(), g.out_side());
        let (in_len, out_len) = (g.in_len(), g.out_len());
        let w_len = g.out_channels * k_rows;
        let threads = rayon::current_num_threads();
        let gemm_threads = if n >= threads { 1 } else { threads };
        let chunks = ranges(n, threads);
        let mut dx = vec![0f32; if self.input_grad { n * in_len } else { 0 }];
        let mut dx_parts: Vec<&mut [f32]> = Vec::new();
        {
            let mut rest = dx.as_mut_slice();
            for r in &chunks {
                let take = if rest.is_empty() { 0 } else { r.len() * in_len };
                let (a, b) = rest.split_at_mut(take);
                dx_parts.push(a);
                rest = b;
            }
        }
        let partials: Vec<(Vec<f32>, Vec<f32>)> = chunks
            .par_iter()
            .zip(dx_parts.into_par_iter())
            .map(|(r, dx)| {
                let mut dw = vec![0f32; w_len];
                let mut db = vec![0f32; g.out_channels];
                let mut col = vec![0f32; k_rows * p_cols];
                let mut dz = vec![0f32; g.out_channels * p_cols];
                for (j, img) in r.clone().enumerate() {
                    let gout = &grad[img * out_len..(img + 1) * out_len];
                    let out = &res[img * out_len..(img + 1) * out_len];
                    if g.pool {
                        dz.fill(0.0);
                        let arg = &argmax[img * out_len..(img + 1) * out_len];
                        for c in 0..g.out_channels {
                            for py in 0..os {
                                for px in 0..os {
                                    let at = c * os * os + py * os + px;
                                    if out[at] > 0.0 {
                                        let a = arg[at] as usize;
                                        let (dy, dxp) = (a / 2, a % 2);
                                        dz[c * cs * cs + (2 * py + dy) * cs + 2 * px + dxp] = gout[at];
                                    }
                                }
                            }
                        }
                    } else {
                        for ((d, &gv), &o) in dz.iter_mut().zip(gout).zip(out) {
                            *d = if o > 0.0 { gv } else { 0.0 };
                        }
                    }
                    for (c, row) in dz.chunks(p_cols).enumerate() {
                        db[c] += row.iter().sum::<f32>();
                    }
                    let input = &x[img * in_len..(img + 1) * in_len];
                    let cols = if g.kernel == 1 && g.padding == 0 {
                        input
                    } else {
                        im2col(ig, input, &mut col);
                        &col[..]
                    };
                    // dW += dz (Cout x P) @ col^T (P x K)
                    matmul(
                        &mut dw,
                        Mat::new(&dz, g.out_channels, p_cols),
                        Mat::new(cols, k_rows, p_cols).t(),
                        true,
                        gemm_threads,
                    );
                    if !dx.is_empty() {
                        // dcol = W^T (K x Cout) @ dz (Cout x P), then scatter back.
                        matmul(
                            &mut col,
                            Mat::new(w, g.out_channels, k_rows).t(),
                            Mat::new(&dz, g.out_channels, p_cols),
                            false,
                            gemm_threads,
                        );
                        let d = &mut dx[j * in_len..(j + 1) * in_len];
                        if g.kernel == 1 && g.padding == 0 {
                            for (a, b) in d.iter_mut().zip(&col) {
                                *a += b;
                            }
                        } else {
                            col2im_add(ig, &col, d);
                        }
                    }
                }
                (dw, db)
            })
            .collect();
        let mut dw = vec![0f32; w_len];
        let mut db = vec![0f32; g.out_channels];
        for (pw, pb) in partials {
            dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        let dev = candle_core::Device::Cpu;
        let dw = Tensor::from_vec(dw, (g.out_channels, g.in_channels, g.kernel, g.kernel), &dev)?;
        let db = Tensor::from_vec(db, g.out_channels, &dev)?;
        let dx = if self.input_grad {
            Some(Tensor::from_vec(dx, (n, g.in_channels, g.side, g.side), &dev)?)
        } else {
            None
        };
        Ok((dx, Some(dw), Some(db)))
    }
}
