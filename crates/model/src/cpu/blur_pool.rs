//! Anti-aliased max-pool (Zhang 2019, "Making convolutional networks shift-invariant again")
//! as one CPU op: a dense 2x2 max (stride 1), then a [1, 2, 1] x [1, 2, 1] / 16 blur sampled at
//! stride 2 with reflect padding. A plain stride-2 max-pool aliases: moving a drawing by one
//! pixel changes which cells win its windows; taking the max densely and subsampling through a
//! low-pass filter keeps the max's selectivity without that. An `S x S` map pools to
//! `floor(S / 2)`, as the floor max-pool does, for any `S >= 3`.
//!
//! Nothing is saved between passes: backward recomputes the dense max's winners from the input,
//! which costs less than keeping a byte per cell of every unpooled map.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{first_max, host_slice, storage_slice};

/// The blur's one-dimensional taps; the 2-D filter is their outer product.
const TAPS: [f32; 3] = [0.25, 0.5, 0.25];

/// Side of the pooled map for an `side x side` input.
pub fn pooled_side(side: usize) -> usize {
    side / 2
}

/// The dense max map's index that position `p` of its reflect-padded copy (one cell each side)
/// reads: `-1 -> 1`, `m -> m - 2`.
fn reflect(p: usize, m: usize) -> usize {
    if p == 0 {
        1
    } else if p == m + 1 {
        m - 2
    } else {
        p - 1
    }
}

/// Index in `plane` of the first maximum of the 2x2 window whose top-left cell is `(i, j)`.
fn winner(plane: &[f32], side: usize, i: usize, j: usize) -> usize {
    let at = i * side + j;
    let k = first_max([
        plane[at],
        plane[at + 1],
        plane[at + side],
        plane[at + side + 1],
    ]);
    at + (k / 2) * side + k % 2
}

/// Per-thread buffers for one plane at a time, so that no plane allocates: the dense max map,
/// the row-blurred map, and the padded-position-to-dense-index table (`reflect` for every
/// padded position, so the inner loops index instead of branching).
#[derive(Default)]
struct Scratch {
    dense: Vec<f32>,
    rows: Vec<f32>,
    index: Vec<usize>,
}

impl Scratch {
    /// Sizes the buffers for an `side x side` input and fills the index table. The buffers keep
    /// stale values: forward overwrites every cell, backward zeroes its accumulators itself.
    fn prepare(&mut self, side: usize) {
        let (m, o) = (side - 1, pooled_side(side));
        self.dense.resize(m * m, 0.0);
        self.rows.resize(m * o, 0.0);
        if self.index.len() != m + 2 {
            self.index = (0..m + 2).map(|p| reflect(p, m)).collect();
        }
    }
}

/// One plane: `input` is `side x side`, `out` is `o x o` with `o = side / 2`.
fn forward_plane(input: &[f32], side: usize, out: &mut [f32], scratch: &mut Scratch) {
    let (m, o) = (side - 1, pooled_side(side));
    scratch.prepare(side);
    let Scratch { dense, rows, index } = scratch;
    // The dense max needs values only (ties give the same value whichever cell wins), so it
    // takes the max of two rows, then of neighbouring columns: loops the compiler vectorises.
    for (i, dense_row) in dense.chunks_exact_mut(m).enumerate() {
        let (top, bottom) = (
            &input[i * side..(i + 1) * side],
            &input[(i + 1) * side..(i + 2) * side],
        );
        for j in 0..m {
            dense_row[j] = top[j].max(top[j + 1]).max(bottom[j].max(bottom[j + 1]));
        }
    }
    // Blur along rows first (every dense row, `o` columns), then along columns; each sum adds
    // its three taps left to right, as the plain version in the tests does.
    for (dense_row, row) in dense.chunks_exact(m).zip(rows.chunks_exact_mut(o)) {
        for (px, r) in row.iter_mut().enumerate() {
            let c = &index[2 * px..2 * px + 3];
            *r = TAPS[0] * dense_row[c[0]] + TAPS[1] * dense_row[c[1]] + TAPS[2] * dense_row[c[2]];
        }
    }
    for (py, out_row) in out.chunks_exact_mut(o).enumerate() {
        let r = &index[2 * py..2 * py + 3];
        let (a, b, c) = (
            &rows[r[0] * o..(r[0] + 1) * o],
            &rows[r[1] * o..(r[1] + 1) * o],
            &rows[r[2] * o..(r[2] + 1) * o],
        );
        for px in 0..o {
            out_row[px] = TAPS[0] * a[px] + TAPS[1] * b[px] + TAPS[2] * c[px];
        }
    }
}

/// One plane's input gradient `d_input` (`side x side`, overwritten) from the pooled map's
/// gradient `grad` (`o x o`).
fn backward_plane(
    input: &[f32],
    side: usize,
    grad: &[f32],
    d_input: &mut [f32],
    scratch: &mut Scratch,
) {
    let (m, o) = (side - 1, pooled_side(side));
    scratch.prepare(side);
    let Scratch {
        dense: d_dense,
        rows: d_rows,
        index,
    } = scratch;
    d_dense.fill(0.0);
    d_rows.fill(0.0);
    for (py, g_row) in grad.chunks_exact(o).enumerate() {
        for d in 0..3 {
            let r = index[2 * py + d];
            for (acc, &g) in d_rows[r * o..(r + 1) * o].iter_mut().zip(g_row) {
                *acc += TAPS[d] * g;
            }
        }
    }
    for (d_row, row) in d_dense.chunks_exact_mut(m).zip(d_rows.chunks_exact(o)) {
        for (px, &g) in row.iter().enumerate() {
            for d in 0..3 {
                d_row[index[2 * px + d]] += TAPS[d] * g;
            }
        }
    }
    // Each dense cell's gradient goes to its window's first maximum, as a max-pool routes it.
    d_input.fill(0.0);
    for i in 0..m {
        for j in 0..m {
            d_input[winner(input, side, i, j)] += d_dense[i * m + j];
        }
    }
}

/// The op on `[N, C, S, S]` maps.
pub struct BlurMaxPoolOp;

fn plane_dims(layout: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let dims = layout.dims();
    if dims.len() != 4 || dims[2] != dims[3] || dims[2] < 3 {
        candle_core::bail!(
            "blur pool: expected square [N, C, S, S] maps with S >= 3, got {dims:?}"
        );
    }
    Ok((dims[0] * dims[1], dims[2], pooled_side(dims[2])))
}

const OP: &str = "blur pool";

impl CustomOp1 for BlurMaxPoolOp {
    fn name(&self) -> &'static str {
        "blur-max-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (planes, side, o) = plane_dims(l)?;
        let input = host_slice(OP, s, l)?;
        let mut out = vec![0f32; planes * o * o];
        out.par_chunks_mut(o * o)
            .zip(input.par_chunks(side * side))
            .for_each_init(Scratch::default, |scratch, (out, input)| {
                forward_plane(input, side, out, scratch)
            });
        let dims = l.dims();
        Ok((
            CpuStorage::F32(out),
            Shape::from_dims(&[dims[0], dims[1], o, o]),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (arg, grad) = (arg.contiguous()?, grad.contiguous()?);
        let (a_storage, a_layout) = arg.storage_and_layout();
        let (g_storage, g_layout) = grad.storage_and_layout();
        let input = storage_slice(OP, &a_storage, a_layout)?;
        let grad = storage_slice(OP, &g_storage, g_layout)?;
        let (planes, side, o) = plane_dims(a_layout)?;
        let mut d_input = vec![0f32; planes * side * side];
        d_input
            .par_chunks_mut(side * side)
            .zip(input.par_chunks(side * side))
            .zip(grad.par_chunks(o * o))
            .for_each_init(Scratch::default, |scratch, ((d, input), g)| {
                backward_plane(input, side, g, d, scratch)
            });
        Ok(Some(Tensor::from_vec(
            d_input,
            a_layout.dims(),
            &candle_core::Device::Cpu,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_three_by_three_map_pools_to_its_hand_computed_value() {
        // Dense max [[4, 5], [7, 8]] from the windows' winners at input cells 4, 5, 7, 8. The
        // reflect-padded 4x4 copy's top-left 3x3 holds each dense cell under filter weights
        // summing to 4/16 (the centre 4; an edge pair 2 + 2; the four corners 1 each), so the
        // output is their mean, 24 / 4.
        let input: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut out = [0f32; 1];
        forward_plane(&input, 3, &mut out, &mut Scratch::default());
        assert_eq!(out[0], 6.0);
        // A gradient of 16 reaches each winner as 4.
        let mut d = [0f32; 9];
        backward_plane(&input, 3, &[16.0], &mut d, &mut Scratch::default());
        assert_eq!(d, [0.0, 0.0, 0.0, 0.0, 4.0, 4.0, 0.0, 4.0, 4.0]);
        assert_eq!(d.iter().sum::<f32>(), 16.0);
    }

    /// The op written plainly, cell by cell through `winner` and `reflect`, as it first was:
    /// the reference the table-driven kernels must equal bit for bit.
    fn plain_forward(input: &[f32], side: usize) -> Vec<f32> {
        let (m, o) = (side - 1, pooled_side(side));
        let dense: Vec<f32> = (0..m * m)
            .map(|k| input[winner(input, side, k / m, k % m)])
            .collect();
        let rows: Vec<f32> = (0..m * o)
            .map(|k| {
                let (i, px) = (k / o, k % o);
                (0..3)
                    .map(|d| TAPS[d] * dense[i * m + reflect(2 * px + d, m)])
                    .sum()
            })
            .collect();
        (0..o * o)
            .map(|k| {
                let (py, px) = (k / o, k % o);
                (0..3)
                    .map(|d| TAPS[d] * rows[reflect(2 * py + d, m) * o + px])
                    .sum()
            })
            .collect()
    }

    fn plain_backward(input: &[f32], side: usize, grad: &[f32]) -> Vec<f32> {
        let (m, o) = (side - 1, pooled_side(side));
        let mut d_rows = vec![0f32; m * o];
        for py in 0..o {
            for px in 0..o {
                for d in 0..3 {
                    d_rows[reflect(2 * py + d, m) * o + px] += TAPS[d] * grad[py * o + px];
                }
            }
        }
        let mut d_dense = vec![0f32; m * m];
        for i in 0..m {
            for px in 0..o {
                for d in 0..3 {
                    d_dense[i * m + reflect(2 * px + d, m)] += TAPS[d] * d_rows[i * o + px];
                }
            }
        }
        let mut d_input = vec![0f32; side * side];
        for i in 0..m {
            for j in 0..m {
                d_input[winner(input, side, i, j)] += d_dense[i * m + j];
            }
        }
        d_input
    }

    /// A deterministic map with ties (quantised values, a zeroed quarter as after a ReLU) and
    /// no two planes alike.
    fn map(side: usize, salt: u32) -> Vec<f32> {
        (0..side * side)
            .map(|k| {
                let h = (k as u32).wrapping_mul(2_654_435_761).wrapping_add(salt) >> 20;
                let v = (h % 17) as f32 / 4.0 - 1.0;
                if k % 4 == 0 { v.max(0.0) } else { v }
            })
            .collect()
    }

    #[test]
    fn the_kernels_equal_the_plain_op_bit_for_bit() {
        // One scratch across sides, as a rayon worker reuses it, growing and shrinking.
        let mut scratch = Scratch::default();
        for (n, side) in [3, 4, 5, 6, 7, 10, 11, 20, 40, 9, 3]
            .into_iter()
            .enumerate()
        {
            let o = pooled_side(side);
            let input = map(side, n as u32);
            let mut out = vec![f32::NAN; o * o];
            forward_plane(&input, side, &mut out, &mut scratch);
            let plain = plain_forward(&input, side);
            assert_eq!(
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "forward, side {side}"
            );
            let grad = map(o, 1000 + n as u32);
            let mut d = vec![f32::NAN; side * side];
            backward_plane(&input, side, &grad, &mut d, &mut scratch);
            let plain = plain_backward(&input, side, &grad);
            assert_eq!(
                d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "backward, side {side}"
            );
        }
    }

    #[test]
    fn pooled_sides_match_the_floor_pool() {
        for (side, o) in [(3, 1), (4, 2), (5, 2), (10, 5), (20, 10), (40, 20)] {
            assert_eq!(pooled_side(side), o);
            let input = vec![1f32; side * side];
            let mut out = vec![0f32; o * o];
            forward_plane(&input, side, &mut out, &mut Scratch::default());
            // The blur's taps sum to one, so a constant map keeps its value.
            assert!(
                out.iter().all(|&v| (v - 1.0).abs() < 1e-6),
                "{side}: {out:?}"
            );
        }
    }
}
