//! im2col / col2im for stride-1 square convolutions of one image, `[C, H, W]` row-major.
//! Column matrix rows are `(c, ky, kx)`, columns are output positions `(oy, ox)`.

/// Geometry of a stride-1 convolution of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub channels: usize,
    pub side: usize,
    pub kernel: usize,
    pub padding: usize,
}

impl Geometry {
    pub fn out_side(&self) -> usize {
        self.side + 2 * self.padding + 1 - self.kernel
    }

    /// Rows of the column matrix.
    pub fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Columns of the column matrix.
    pub fn cols(&self) -> usize {
        self.out_side() * self.out_side()
    }

    /// The output columns `ox` for which input column `ox + kx - padding` is inside the image.
    fn valid_x(&self, kx: usize) -> (usize, usize) {
        let o = self.out_side();
        let lo = self.padding.saturating_sub(kx).min(o);
        let hi = (self.side + self.padding).saturating_sub(kx).min(o);
        (lo, hi.max(lo))
    }
}

/// Writes the column matrix of `image` into `col` (`rows() x cols()`), row `r` starting at
/// `col[r * ld]` (`ld >= cols()`, so several images can sit side by side).
pub fn im2col(g: Geometry, image: &[f32], col: &mut [f32], ld: usize) {
    let (s, k, p, o) = (g.side, g.kernel, g.padding, g.out_side());
    let cols = o * o;
    for c in 0..g.channels {
        let plane = &image[c * s * s..(c + 1) * s * s];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((c * k + ky) * k + kx) * ld..][..cols];
                let (lo, hi) = g.valid_x(kx);
                for oy in 0..o {
                    let out = &mut row[oy * o..(oy + 1) * o];
                    let iy = oy + ky;
                    if iy < p || iy - p >= s {
                        out.fill(0.0);
                        continue;
                    }
                    if hi == lo {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[(iy - p) * s..(iy - p + 1) * s];
                    out[..lo].fill(0.0);
                    out[lo..hi].copy_from_slice(&src[lo + kx - p..hi + kx - p]);
                    out[hi..].fill(0.0);
                }
            }
        }
    }
}

/// Adds the column matrix `col` (row stride `ld`) back onto `image` (the adjoint of
/// [`im2col`]).
pub fn col2im_add(g: Geometry, col: &[f32], ld: usize, image: &mut [f32]) {
    let (s, k, p, o) = (g.side, g.kernel, g.padding, g.out_side());
    let cols = o * o;
    for c in 0..g.channels {
        let plane = &mut image[c * s * s..(c + 1) * s * s];
        for ky in 0..k {
            for kx in 0..k {
                let row = &col[((c * k + ky) * k + kx) * ld..][..cols];
                let (lo, hi) = g.valid_x(kx);
                for oy in 0..o {
                    let iy = oy + ky;
                    if iy < p || iy - p >= s || hi == lo {
                        continue;
                    }
                    let dst = &mut plane[(iy - p) * s + lo + kx - p..(iy - p) * s + hi + kx - p];
                    for (d, v) in dst.iter_mut().zip(&row[oy * o + lo..oy * o + hi]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(g: Geometry, image: &[f32]) -> Vec<f32> {
        let (s, k, p, o) = (g.side as isize, g.kernel, g.padding as isize, g.out_side());
        let mut col = vec![0.0; g.rows() * g.cols()];
        for c in 0..g.channels {
            for ky in 0..k {
                for kx in 0..k {
                    for oy in 0..o {
                        for ox in 0..o {
                            let iy = oy as isize + ky as isize - p;
                            let ix = ox as isize + kx as isize - p;
                            let v = if iy >= 0 && ix >= 0 && iy < s && ix < s {
                                image[c * (s * s) as usize + (iy * s + ix) as usize]
                            } else {
                                0.0
                            };
                            col[((c * k + ky) * k + kx) * o * o + oy * o + ox] = v;
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_the_definition_and_col2im_is_its_adjoint() {
        for (channels, side, kernel, padding) in
            [(2, 5, 3, 1), (1, 7, 4, 0), (3, 4, 3, 2), (1, 3, 3, 0)]
        {
            let g = Geometry {
                channels,
                side,
                kernel,
                padding,
            };
            let image: Vec<f32> = (0..channels * side * side)
                .map(|i| i as f32 + 1.0)
                .collect();
            let mut col = vec![f32::NAN; g.rows() * g.cols()];
            im2col(g, &image, &mut col, g.cols());
            assert_eq!(col, reference(g, &image), "{g:?}");
            // <im2col(x), y> == <x, col2im(y)>
            let y: Vec<f32> = (0..col.len())
                .map(|i| ((i * 13) % 7) as f32 - 3.0)
                .collect();
            let mut back = vec![0.0; image.len()];
            col2im_add(g, &y, g.cols(), &mut back);
            let lhs: f32 = col.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f32 = image.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{g:?}: {lhs} vs {rhs}"
            );
            // Side by side with a wider stride, the image's block is the same.
            let ld = g.cols() + 5;
            let mut wide = vec![7.0; g.rows() * ld];
            im2col(g, &image, &mut wide, ld);
            for r in 0..g.rows() {
                assert_eq!(
                    &wide[r * ld..r * ld + g.cols()],
                    &col[r * g.cols()..(r + 1) * g.cols()]
                );
                assert!(
                    wide[r * ld + g.cols()..(r + 1) * ld]
                        .iter()
                        .all(|&v| v == 7.0)
                );
            }
        }
    }
}
