//! Anti-aliased max-pool (Zhang 2019, "Making convolutional networks shift-invariant again")
//! as one CPU op: a dense 2x2 max (stride 1), then a binomial blur (`[1, 2, 1] / 4` or
//! `[1, 4, 6, 4, 1] / 16` per axis) sampled at stride 2 with reflect padding. A plain stride-2
//! max-pool aliases: moving a drawing by one pixel changes which cells win its windows; taking
//! the max densely and subsampling through a low-pass filter keeps the max's selectivity without
//! that. An `S x S` map pools to `floor(S / 2)`, as the floor max-pool does, for either filter.
//!
//! Nothing is saved between passes: backward recomputes the dense max's winners from the input,
//! which costs less than keeping a byte per cell of every unpooled map.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{first_max, host_slice, storage_slice};
use crate::arch::BlurFilter;

/// Side of the pooled map for an `side x side` input.
pub fn pooled_side(side: usize) -> usize {
    side / 2
}

/// The dense max map's index (`m` cells) that position `p` of its reflect-padded copy (`pad`
/// cells each side) reads: `-1 -> 1`, `-2 -> 2`, `m -> m - 2`, `m + 1 -> m - 3`.
fn reflect(p: usize, m: usize, pad: usize) -> usize {
    if p < pad {
        pad - p
    } else if p >= m + pad {
        2 * (m - 1) + pad - p
    } else {
        p - pad
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

/// `taps . values`, summed left to right from the first product, as the plain version in the
/// tests sums.
#[inline(always)]
fn dot<const K: usize>(taps: &[f32; K], value: impl Fn(usize) -> f32) -> f32 {
    let mut acc = taps[0] * value(0);
    for (d, &t) in taps.iter().enumerate().skip(1) {
        acc += t * value(d);
    }
    acc
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
    /// Sizes the buffers for an `side x side` input and a `k`-tap filter, and fills the index
    /// table. The buffers keep stale values: forward overwrites every cell, backward zeroes its
    /// accumulators itself.
    fn prepare(&mut self, side: usize, k: usize) {
        let (m, o, pad) = (side - 1, pooled_side(side), k / 2);
        self.dense.resize(m * m, 0.0);
        self.rows.resize(m * o, 0.0);
        if self.index.len() != m + 2 * pad {
            self.index = (0..m + 2 * pad).map(|p| reflect(p, m, pad)).collect();
        }
    }
}

/// One plane: `input` is `side x side`, `out` is `o x o` with `o = side / 2`.
fn forward_plane<const K: usize>(
    taps: &[f32; K],
    input: &[f32],
    side: usize,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let (m, o) = (side - 1, pooled_side(side));
    scratch.prepare(side, K);
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
    // Blur along rows first (every dense row, `o` columns), then along columns.
    for (dense_row, row) in dense.chunks_exact(m).zip(rows.chunks_exact_mut(o)) {
        for (px, r) in row.iter_mut().enumerate() {
            let c = &index[2 * px..2 * px + K];
            *r = dot(taps, |d| dense_row[c[d]]);
        }
    }
    for (py, out_row) in out.chunks_exact_mut(o).enumerate() {
        let r = &index[2 * py..2 * py + K];
        let source: [&[f32]; K] = std::array::from_fn(|d| &rows[r[d] * o..(r[d] + 1) * o]);
        for (px, v) in out_row.iter_mut().enumerate() {
            *v = dot(taps, |d| source[d][px]);
        }
    }
}

/// One plane's input gradient `d_input` (`side x side`, overwritten) from the pooled map's
/// gradient `grad` (`o x o`).
fn backward_plane<const K: usize>(
    taps: &[f32; K],
    input: &[f32],
    side: usize,
    grad: &[f32],
    d_input: &mut [f32],
    scratch: &mut Scratch,
) {
    let (m, o) = (side - 1, pooled_side(side));
    scratch.prepare(side, K);
    let Scratch {
        dense: d_dense,
        rows: d_rows,
        index,
    } = scratch;
    d_dense.fill(0.0);
    d_rows.fill(0.0);
    for (py, g_row) in grad.chunks_exact(o).enumerate() {
        for (d, &t) in taps.iter().enumerate() {
            let r = index[2 * py + d];
            for (acc, &g) in d_rows[r * o..(r + 1) * o].iter_mut().zip(g_row) {
                *acc += t * g;
            }
        }
    }
    for (d_row, row) in d_dense.chunks_exact_mut(m).zip(d_rows.chunks_exact(o)) {
        for (px, &g) in row.iter().enumerate() {
            for (d, &t) in taps.iter().enumerate() {
                d_row[index[2 * px + d]] += t * g;
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

/// The op on `[N, C, S, S]` maps with one filter.
pub struct BlurMaxPoolOp(pub BlurFilter);

fn plane_dims(layout: &Layout, filter: BlurFilter) -> candle_core::Result<(usize, usize, usize)> {
    let dims = layout.dims();
    let min = filter.min_side();
    if dims.len() != 4 || dims[2] != dims[3] || dims[2] < min {
        candle_core::bail!(
            "blur pool: expected square [N, C, S, S] maps with S >= {min}, got {dims:?}"
        );
    }
    Ok((dims[0] * dims[1], dims[2], pooled_side(dims[2])))
}

/// All planes of one pass, forward: `out` holds `o x o` per plane. Generic over the filter's
/// length so that each kernel's tap loops unroll.
fn forward_all<const K: usize>(taps: &[f32; K], input: &[f32], side: usize, out: &mut [f32]) {
    let o = pooled_side(side);
    out.par_chunks_mut(o * o)
        .zip(input.par_chunks(side * side))
        .for_each_init(Scratch::default, |scratch, (out, input)| {
            forward_plane(taps, input, side, out, scratch)
        });
}

/// All planes of one pass, backward: `d_input` holds `side x side` per plane.
fn backward_all<const K: usize>(
    taps: &[f32; K],
    input: &[f32],
    side: usize,
    grad: &[f32],
    d_input: &mut [f32],
) {
    let o = pooled_side(side);
    d_input
        .par_chunks_mut(side * side)
        .zip(input.par_chunks(side * side))
        .zip(grad.par_chunks(o * o))
        .for_each_init(Scratch::default, |scratch, ((d, input), g)| {
            backward_plane(taps, input, side, g, d, scratch)
        });
}

const OP: &str = "blur pool";

impl CustomOp1 for BlurMaxPoolOp {
    fn name(&self) -> &'static str {
        "blur-max-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (planes, side, o) = plane_dims(l, self.0)?;
        let input = host_slice(OP, s, l)?;
        let mut out = vec![0f32; planes * o * o];
        match self.0 {
            BlurFilter::Tri3 => forward_all(&BlurFilter::TRI3_TAPS, input, side, &mut out),
            BlurFilter::Bin5 => forward_all(&BlurFilter::BIN5_TAPS, input, side, &mut out),
        }
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
        let (planes, side, _) = plane_dims(a_layout, self.0)?;
        let mut d_input = vec![0f32; planes * side * side];
        match self.0 {
            BlurFilter::Tri3 => {
                backward_all(&BlurFilter::TRI3_TAPS, input, side, grad, &mut d_input)
            }
            BlurFilter::Bin5 => {
                backward_all(&BlurFilter::BIN5_TAPS, input, side, grad, &mut d_input)
            }
        }
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

    const TRI3: [f32; 3] = BlurFilter::TRI3_TAPS;
    const BIN5: [f32; 5] = BlurFilter::BIN5_TAPS;

    #[test]
    fn a_three_by_three_map_pools_to_its_hand_computed_value() {
        // Dense max [[4, 5], [7, 8]] from the windows' winners at input cells 4, 5, 7, 8. The
        // reflect-padded 4x4 copy's top-left 3x3 holds each dense cell under filter weights
        // summing to 4/16 (the centre 4; an edge pair 2 + 2; the four corners 1 each), so the
        // output is their mean, 24 / 4.
        let input: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut out = [0f32; 1];
        forward_plane(&TRI3, &input, 3, &mut out, &mut Scratch::default());
        assert_eq!(out[0], 6.0);
        // A gradient of 16 reaches each winner as 4.
        let mut d = [0f32; 9];
        backward_plane(&TRI3, &input, 3, &[16.0], &mut d, &mut Scratch::default());
        assert_eq!(d, [0.0, 0.0, 0.0, 0.0, 4.0, 4.0, 0.0, 4.0, 4.0]);
        assert_eq!(d.iter().sum::<f32>(), 16.0);
    }

    #[test]
    fn a_four_by_four_map_pools_through_the_wide_filter_to_its_hand_computed_values() {
        // Input cell (i, j) = 4i + j: every window's maximum is its bottom-right cell, so the
        // dense 3x3 max holds 4i + j + 5 at (i, j). Along one axis, padding [a, b, c] by two
        // reflected cells gives [c, b, a, b, c, b, a]: output 0 reads [c, b, a, b, c] with
        // weights [1, 4, 6, 4, 1] / 16, i.e. a 6/16, b 8/16, c 2/16; output 1 reads
        // [a, b, c, b, a]: a 2/16, b 8/16, c 6/16. Per axis that is a mean index of
        // 0.5 + 2 * 2/16 = 0.75 and 1.25, so outputs are 4 * {0.75, 1.25} + {0.75, 1.25} + 5.
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = [0f32; 4];
        forward_plane(&BIN5, &input, 4, &mut out, &mut Scratch::default());
        assert_eq!(out, [8.75, 9.25, 10.75, 11.25]);
        // A unit gradient on output 0 reaches the winner of dense cell (i, j) with weight
        // w_i * w_j, w = [6, 8, 2] / 16; the winners are cells 5, 6, 7, 9, ..., 15.
        let mut d = [0f32; 16];
        backward_plane(
            &BIN5,
            &input,
            4,
            &[256.0, 0.0, 0.0, 0.0],
            &mut d,
            &mut Scratch::default(),
        );
        let w = [6.0, 8.0, 2.0];
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(d[4 * (i + 1) + j + 1], w[i] * w[j], "dense cell ({i}, {j})");
            }
        }
        assert_eq!(d.iter().sum::<f32>(), 256.0);
    }

    #[test]
    fn reflection_mirrors_about_the_edge_cells() {
        let m = 4;
        let by_one: Vec<usize> = (0..m + 2).map(|p| reflect(p, m, 1)).collect();
        assert_eq!(by_one, [1, 0, 1, 2, 3, 2]);
        let by_two: Vec<usize> = (0..m + 4).map(|p| reflect(p, m, 2)).collect();
        assert_eq!(by_two, [2, 1, 0, 1, 2, 3, 2, 1]);
    }

    /// The op written plainly, cell by cell through `winner` and `reflect`, as it first was:
    /// the reference the table-driven kernels must equal bit for bit.
    fn plain_forward(taps: &[f32], input: &[f32], side: usize) -> Vec<f32> {
        let (m, o, pad) = (side - 1, pooled_side(side), taps.len() / 2);
        let dense: Vec<f32> = (0..m * m)
            .map(|k| input[winner(input, side, k / m, k % m)])
            .collect();
        let rows: Vec<f32> = (0..m * o)
            .map(|k| {
                let (i, px) = (k / o, k % o);
                (0..taps.len())
                    .map(|d| taps[d] * dense[i * m + reflect(2 * px + d, m, pad)])
                    .sum()
            })
            .collect();
        (0..o * o)
            .map(|k| {
                let (py, px) = (k / o, k % o);
                (0..taps.len())
                    .map(|d| taps[d] * rows[reflect(2 * py + d, m, pad) * o + px])
                    .sum()
            })
            .collect()
    }

    fn plain_backward(taps: &[f32], input: &[f32], side: usize, grad: &[f32]) -> Vec<f32> {
        let (m, o, pad) = (side - 1, pooled_side(side), taps.len() / 2);
        let mut d_rows = vec![0f32; m * o];
        for py in 0..o {
            for px in 0..o {
                for (d, &t) in taps.iter().enumerate() {
                    d_rows[reflect(2 * py + d, m, pad) * o + px] += t * grad[py * o + px];
                }
            }
        }
        let mut d_dense = vec![0f32; m * m];
        for i in 0..m {
            for px in 0..o {
                for (d, &t) in taps.iter().enumerate() {
                    d_dense[i * m + reflect(2 * px + d, m, pad)] += t * d_rows[i * o + px];
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

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    /// Both passes of one filter against the plain version, over sides that grow and shrink on
    /// one scratch, as a rayon worker reuses it.
    fn equals_the_plain_op<const K: usize>(taps: &[f32; K], sides: &[usize]) {
        let mut scratch = Scratch::default();
        for (n, &side) in sides.iter().enumerate() {
            let o = pooled_side(side);
            let input = map(side, n as u32);
            let mut out = vec![f32::NAN; o * o];
            forward_plane(taps, &input, side, &mut out, &mut scratch);
            let plain = plain_forward(taps, &input, side);
            assert_eq!(bits(&out), bits(&plain), "forward, {K} taps, side {side}");
            let grad = map(o, 1000 + n as u32);
            let mut d = vec![f32::NAN; side * side];
            backward_plane(taps, &input, side, &grad, &mut d, &mut scratch);
            let plain = plain_backward(taps, &input, side, &grad);
            assert_eq!(bits(&d), bits(&plain), "backward, {K} taps, side {side}");
        }
    }

    #[test]
    fn the_kernels_equal_the_plain_op_bit_for_bit() {
        equals_the_plain_op(&TRI3, &[3, 4, 5, 6, 7, 10, 11, 20, 40, 9, 3]);
        equals_the_plain_op(&BIN5, &[4, 5, 6, 7, 10, 11, 20, 40, 9, 4]);
    }

    #[test]
    fn pooled_sides_match_the_floor_pool() {
        for (side, o) in [(3, 1), (4, 2), (5, 2), (10, 5), (20, 10), (40, 20)] {
            assert_eq!(pooled_side(side), o);
            let input = vec![1f32; side * side];
            let mut out = vec![0f32; o * o];
            forward_plane(&TRI3, &input, side, &mut out, &mut Scratch::default());
            // The blur's taps sum to one, so a constant map keeps its value.
            assert!(
                out.iter().all(|&v| (v - 1.0).abs() < 1e-6),
                "{side}: {out:?}"
            );
            if side >= BlurFilter::Bin5.min_side() {
                forward_plane(&BIN5, &input, side, &mut out, &mut Scratch::default());
                assert!(
                    out.iter().all(|&v| (v - 1.0).abs() < 1e-6),
                    "{side}: {out:?}"
                );
            }
        }
    }
}
