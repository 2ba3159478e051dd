//! One convolution block as a single candle op on the CPU: conv (stride 1) + bias + ReLU +
//! optional 2x2 max-pool. The pre-pool map of a whole batch is never materialised: images are
//! convolved a few at a time (their column matrices side by side, so one GEMM covers several
//! small images) and pooled at once, and only the argmax of each pooling window is kept for the
//! backward pass. Backward recomputes im2col and uses GEMMs for the weight and input gradients,
//! skipping the input gradient when the input is the network's input. Scratch buffers live in
//! thread-locals so that steady-state training does not churn the allocator.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{Mat, matmul};
use super::im2col::{Geometry, col2im_add, im2col};
use super::{first_max, host_slice, storage_slice};

/// Column-matrix width (images side by side) that one GEMM aims for.
const TARGET_COLUMNS: usize = 2048;

/// Shapes of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub in_channels: usize,
    pub out_channels: usize,
    pub side: usize,
    pub kernel: usize,
    pub padding: usize,
    pub pool: bool,
    /// ReLU (and pool) after the convolution; without it the op returns the raw conv + bias
    /// map, for a batch norm to follow.
    pub relu: bool,
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
        if self.pooled() {
            self.conv_side() / 2
        } else {
            self.conv_side()
        }
    }

    fn pooled(&self) -> bool {
        self.pool && self.relu
    }

    fn in_len(&self) -> usize {
        self.in_channels * self.side * self.side
    }

    fn out_len(&self) -> usize {
        self.out_channels * self.out_side() * self.out_side()
    }

    /// Images per GEMM.
    fn group(&self) -> usize {
        (TARGET_COLUMNS / self.im2col().cols()).max(1)
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

thread_local! {
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static MAPS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's two scratch buffers, grown to at least the given lengths.
fn with_scratch<R>(cols: usize, maps: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    COLUMNS.with(|c| {
        MAPS.with(|m| {
            let (mut c, mut m) = (c.borrow_mut(), m.borrow_mut());
            if c.len() < cols {
                c.resize(cols, 0.0);
            }
            if m.len() < maps {
                m.resize(maps, 0.0);
            }
            f(&mut c[..cols], &mut m[..maps])
        })
    })
}

const OP: &str = "conv block";

/// Splits `0..n` into at most `parts` contiguous ranges of near-equal size.
fn ranges(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Splits `data` into consecutive pieces of `lens[i] * unit` elements.
fn split_by<'a, T>(mut data: &'a mut [T], parts: &[Range<usize>], unit: usize) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(parts.len());
    for r in parts {
        let take = if data.is_empty() { 0 } else { r.len() * unit };
        let (a, b) = data.split_at_mut(take);
        out.push(a);
        data = b;
    }
    out
}

/// ReLU + 2x2 pool of one image's map (channel `c` at `z[c * ld + offset..]`, `side` x
/// `side`) into `out`, recording the argmax (0..4 within the window; the first maximum wins,
/// as in PyTorch).
pub(crate) fn pool_relu(
    z: &[f32],
    ld: usize,
    offset: usize,
    channels: usize,
    side: usize,
    out: &mut [f32],
    argmax: &mut [u8],
) {
    let o = side / 2;
    for c in 0..channels {
        let plane = &z[c * ld + offset..c * ld + offset + side * side];
        for py in 0..o {
            let top = &plane[2 * py * side..];
            let bottom = &plane[(2 * py + 1) * side..];
            let at = c * o * o + py * o;
            for px in 0..o {
                let cand = [
                    top[2 * px],
                    top[2 * px + 1],
                    bottom[2 * px],
                    bottom[2 * px + 1],
                ];
                let best = first_max(cand);
                out[at + px] = cand[best].max(0.0);
                argmax[at + px] = best as u8;
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
        let (x, w, b) = (
            host_slice(OP, xs, xl)?,
            host_slice(OP, ws, wl)?,
            host_slice(OP, bs, bl)?,
        );
        let n = xl.dims()[0];
        let ig = g.im2col();
        let (k_rows, p_cols) = (ig.rows(), ig.cols());
        let conv_side = g.conv_side();
        let (in_len, out_len) = (g.in_len(), g.out_len());
        let mut out = vec![0f32; n * out_len];
        let keep_argmax = g.pooled() && self.train;
        let mut argmax = vec![0u8; if keep_argmax { n * out_len } else { 0 }];
        let threads = rayon::current_num_threads();
        let gemm_threads = if n >= threads { 1 } else { threads };
        let chunks = ranges(n, threads);
        let group = g.group();
        let out_parts = split_by(&mut out, &chunks, out_len);
        let arg_parts = split_by(&mut argmax, &chunks, out_len);
        chunks
            .par_iter()
            .zip(out_parts.into_par_iter().zip(arg_parts.into_par_iter()))
            .for_each(|(r, (out, argmax))| {
                let mut scratch_arg = vec![
                    0u8;
                    if g.pooled() && !keep_argmax {
                        out_len
                    } else {
                        0
                    }
                ];
                let per_group = group.min(r.len());
                with_scratch(
                    k_rows * per_group * p_cols,
                    g.out_channels * per_group * p_cols,
                    |col, z| {
                        for start in (0..r.len()).step_by(per_group) {
                            let m = per_group.min(r.len() - start);
                            let ld = m * p_cols;
                            for j in 0..m {
                                let img = r.start + start + j;
                                im2col(
                                    ig,
                                    &x[img * in_len..(img + 1) * in_len],
                                    &mut col[j * p_cols..],
                                    ld,
                                );
                            }
                            let z = &mut z[..g.out_channels * ld];
                            for (c, row) in z.chunks_mut(ld).enumerate() {
                                row.fill(b[c]);
                            }
                            matmul(
                                z,
                                Mat::new(w, g.out_channels, k_rows),
                                Mat::new(&col[..k_rows * ld], k_rows, ld),
                                true,
                                gemm_threads,
                            );
                            for j in 0..m {
                                let local = start + j;
                                let o = &mut out[local * out_len..(local + 1) * out_len];
                                if g.pooled() {
                                    let a = if keep_argmax {
                                        &mut argmax[local * out_len..(local + 1) * out_len]
                                    } else {
                                        &mut scratch_arg[..]
                                    };
                                    pool_relu(z, ld, j * p_cols, g.out_channels, conv_side, o, a);
                                } else {
                                    for c in 0..g.out_channels {
                                        let src =
                                            &z[c * ld + j * p_cols..c * ld + (j + 1) * p_cols];
                                        let dst = &mut o[c * p_cols..(c + 1) * p_cols];
                                        if g.relu {
                                            for (d, v) in dst.iter_mut().zip(src) {
                                                *d = v.max(0.0);
                                            }
                                        } else {
                                            dst.copy_from_slice(src);
                                        }
                                    }
                                }
                            }
                        }
                    },
                );
            });
        if keep_argmax {
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
        let (x, w, res, grad) = (
            x.contiguous()?,
            w.contiguous()?,
            res.contiguous()?,
            grad.contiguous()?,
        );
        let (xg, xl) = x.storage_and_layout();
        let (wg, wl) = w.storage_and_layout();
        let (rg, rl) = res.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let (x, w) = (storage_slice(OP, &xg, xl)?, storage_slice(OP, &wg, wl)?);
        let (res, grad) = (storage_slice(OP, &rg, rl)?, storage_slice(OP, &gg, gl)?);
        let argmax = std::mem::take(&mut *self.argmax.lock().expect("argmax lock"));
        let ig = g.im2col();
        let (k_rows, p_cols) = (ig.rows(), ig.cols());
        let (cs, os) = (g.conv_side(), g.out_side());
        let (in_len, out_len) = (g.in_len(), g.out_len());
        let w_len = g.out_channels * k_rows;
        let threads = rayon::current_num_threads();
        let gemm_threads = if n >= threads { 1 } else { threads };
        let chunks = ranges(n, threads);
        let group = g.group();
        let mut dx = vec![0f32; if self.input_grad { n * in_len } else { 0 }];
        let dx_parts = split_by(&mut dx, &chunks, in_len);
        let partials: Vec<(Vec<f32>, Vec<f32>)> = chunks
            .par_iter()
            .zip(dx_parts.into_par_iter())
            .map(|(r, dx)| {
                let mut dw = vec![0f32; w_len];
                let mut db = vec![0f32; g.out_channels];
                let per_group = group.min(r.len());
                with_scratch(
                    k_rows * per_group * p_cols,
                    g.out_channels * per_group * p_cols,
                    |col, dz| {
                        for start in (0..r.len()).step_by(per_group) {
                            let m = per_group.min(r.len() - start);
                            let ld = m * p_cols;
                            let dz = &mut dz[..g.out_channels * ld];
                            // The gradient at the conv output: through the pool's argmax and the ReLU.
                            for j in 0..m {
                                let img = r.start + start + j;
                                let gout = &grad[img * out_len..(img + 1) * out_len];
                                let out = &res[img * out_len..(img + 1) * out_len];
                                for c in 0..g.out_channels {
                                    let plane =
                                        &mut dz[c * ld + j * p_cols..c * ld + (j + 1) * p_cols];
                                    if g.pooled() {
                                        plane.fill(0.0);
                                        let arg = &argmax[img * out_len..(img + 1) * out_len];
                                        for py in 0..os {
                                            for px in 0..os {
                                                let at = c * os * os + py * os + px;
                                                if out[at] > 0.0 {
                                                    let a = arg[at] as usize;
                                                    plane[(2 * py + a / 2) * cs + 2 * px + a % 2] =
                                                        gout[at];
                                                }
                                            }
                                        }
                                    } else if !g.relu {
                                        plane.copy_from_slice(&gout[c * p_cols..(c + 1) * p_cols]);
                                    } else {
                                        let range = c * p_cols..(c + 1) * p_cols;
                                        for ((d, &gv), &o) in plane
                                            .iter_mut()
                                            .zip(&gout[range.clone()])
                                            .zip(&out[range])
                                        {
                                            *d = if o > 0.0 { gv } else { 0.0 };
                                        }
                                    }
                                }
                            }
                            for (c, row) in dz.chunks(ld).enumerate() {
                                db[c] += row.iter().sum::<f32>();
                            }
                            for j in 0..m {
                                let img = r.start + start + j;
                                im2col(
                                    ig,
                                    &x[img * in_len..(img + 1) * in_len],
                                    &mut col[j * p_cols..],
                                    ld,
                                );
                            }
                            let col = &mut col[..k_rows * ld];
                            // dW += dz (Cout x m*P) @ col^T (m*P x K)
                            matmul(
                                &mut dw,
                                Mat::new(dz, g.out_channels, ld),
                                Mat::new(col, k_rows, ld).t(),
                                true,
                                gemm_threads,
                            );
                            if !dx.is_empty() {
                                // dcol = W^T (K x Cout) @ dz (Cout x m*P), then scattered back per image.
                                matmul(
                                    col,
                                    Mat::new(w, g.out_channels, k_rows).t(),
                                    Mat::new(dz, g.out_channels, ld),
                                    false,
                                    gemm_threads,
                                );
                                for j in 0..m {
                                    let local = start + j;
                                    col2im_add(
                                        ig,
                                        &col[j * p_cols..],
                                        ld,
                                        &mut dx[local * in_len..(local + 1) * in_len],
                                    );
                                }
                            }
                        }
                    },
                );
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
        let dw = Tensor::from_vec(
            dw,
            (g.out_channels, g.in_channels, g.kernel, g.kernel),
            &dev,
        )?;
        let db = Tensor::from_vec(db, g.out_channels, &dev)?;
        let dx = if self.input_grad {
            Some(Tensor::from_vec(
                dx,
                (n, g.in_channels, g.side, g.side),
                &dev,
            )?)
        } else {
            None
        };
        Ok((dx, Some(dw), Some(db)))
    }
}
