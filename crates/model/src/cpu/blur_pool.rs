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

/// One plane: `input` is `side x side`, `out` is `o x o` with `o = side / 2`.
fn forward_plane(input: &[f32], side: usize, out: &mut [f32]) {
    let (m, o) = (side - 1, pooled_side(side));
    let mut dense = vec![0f32; m * m];
    for i in 0..m {
        for j in 0..m {
            dense[i * m + j] = input[winner(input, side, i, j)];
        }
    }
    // Blur along rows first (every dense row, `o` columns), then along columns.
    let mut rows = vec![0f32; m * o];
    for i in 0..m {
        for px in 0..o {
            rows[i * o + px] = (0..3)
                .map(|d| TAPS[d] * dense[i * m + reflect(2 * px + d, m)])
                .sum();
        }
    }
    for py in 0..o {
        for px in 0..o {
            out[py * o + px] = (0..3)
                .map(|d| TAPS[d] * rows[reflect(2 * py + d, m) * o + px])
                .sum();
        }
    }
}

/// One plane's input gradient `d_input` (`side x side`, overwritten) from the pooled map's
/// gradient `grad` (`o x o`).
fn backward_plane(input: &[f32], side: usize, grad: &[f32], d_input: &mut [f32]) {
    let (m, o) = (side - 1, pooled_side(side));
    let mut d_rows = vec![0f32; m * o];
    for py in 0..o {
        for px in 0..o {
            let g = grad[py * o + px];
            for d in 0..3 {
                d_rows[reflect(2 * py + d, m) * o + px] += TAPS[d] * g;
            }
        }
    }
    let mut d_dense = vec![0f32; m * m];
    for i in 0..m {
        for px in 0..o {
            let g = d_rows[i * o + px];
            for d in 0..3 {
                d_dense[i * m + reflect(2 * px + d, m)] += TAPS[d] * g;
            }
        }
    }
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
            .for_each(|(out, input)| forward_plane(input, side, out));
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
            .for_each(|((d, input), g)| backward_plane(input, side, g, d));
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
        forward_plane(&input, 3, &mut out);
        assert_eq!(out[0], 6.0);
        // A gradient of 16 reaches each winner as 4.
        let mut d = [0f32; 9];
        backward_plane(&input, 3, &[16.0], &mut d);
        assert_eq!(d, [0.0, 0.0, 0.0, 0.0, 4.0, 4.0, 0.0, 4.0, 4.0]);
        assert_eq!(d.iter().sum::<f32>(), 16.0);
    }

    #[test]
    fn pooled_sides_match_the_floor_pool() {
        for (side, o) in [(3, 1), (4, 2), (5, 2), (10, 5), (20, 10), (40, 20)] {
            assert_eq!(pooled_side(side), o);
            let input = vec![1f32; side * side];
            let mut out = vec![0f32; o * o];
            forward_plane(&input, side, &mut out);
            // The blur's taps sum to one, so a constant map keeps its value.
            assert!(
                out.iter().all(|&v| (v - 1.0).abs() < 1e-6),
                "{side}: {out:?}"
            );
        }
    }
}
