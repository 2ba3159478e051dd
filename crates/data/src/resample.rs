//! Area-averaging resampling: each output pixel is the mean of the source area it covers, so
//! thin strokes survive downsampling (bilinear sampling at 105 -> 28 would drop them).

/// Per output index: (first source index, weights of consecutive source pixels). Weights sum
/// to one.
fn axis_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let lo = o as f64 * scale;
            let hi = (o + 1) as f64 * scale;
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(src);
            let weights: Vec<f32> = (first..last)
                .map(|s| {
                    let overlap = (hi.min(s as f64 + 1.0) - lo.max(s as f64)).max(0.0);
                    (overlap / scale) as f32
                })
                .collect();
            (first, weights)
        })
        .collect()
}

/// Area resampling between two fixed sizes, with the weights worked out once.
pub struct Resampler {
    src: (usize, usize),
    dst: (usize, usize),
    wx: Vec<(usize, Vec<f32>)>,
    wy: Vec<(usize, Vec<f32>)>,
}

impl Resampler {
    pub fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Self {
        Resampler {
            src: (src_w, src_h),
            dst: (dst_w, dst_h),
            wx: axis_weights(src_w, dst_w),
            wy: axis_weights(src_h, dst_h),
        }
    }

    /// Resamples `src` (`src_w x src_h`, row-major) into `dst` (`dst_w x dst_h`).
    pub fn run(&self, src: &[f32], dst: &mut [f32]) {
        let ((src_w, src_h), (dst_w, dst_h)) = (self.src, self.dst);
        assert_eq!(src.len(), src_w * src_h, "source buffer size");
        assert_eq!(dst.len(), dst_w * dst_h, "destination buffer size");
        if self.src == self.dst {
            dst.copy_from_slice(src);
            return;
        }
        // Horizontal pass into an intermediate of dst_w x src_h.
        let mut tmp = vec![0f32; dst_w * src_h];
        for y in 0..src_h {
            let row = &src[y * src_w..(y + 1) * src_w];
            for (x, (first, ws)) in self.wx.iter().enumerate() {
                tmp[y * dst_w + x] = ws.iter().zip(&row[*first..]).map(|(w, v)| w * v).sum();
            }
        }
        for (y, (first, ws)) in self.wy.iter().enumerate() {
            let out = &mut dst[y * dst_w..(y + 1) * dst_w];
            out.fill(0.0);
            for (i, w) in ws.iter().enumerate() {
                let row = &tmp[(first + i) * dst_w..(first + i + 1) * dst_w];
                for (o, v) in out.iter_mut().zip(row) {
                    *o += w * v;
                }
            }
        }
    }
}

/// Resamples a `src_w x src_h` row-major image into `dst` of `dst_w x dst_h`.
pub fn area_resample(
    src: &[f32],
    src_w: usize,
    src_h: usize,
    dst: &mut [f32],
    dst_w: usize,
    dst_h: usize,
) {
    Resampler::new(src_w, src_h, dst_w, dst_h).run(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_copies() {
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 12];
        area_resample(&src, 4, 3, &mut dst, 4, 3);
        assert_eq!(src, dst);
    }

    #[test]
    fn halving_averages_blocks() {
        // 4x2 -> 2x1: each output is the mean of a 2x2 block.
        let src = [1.0, 3.0, 0.0, 0.0, 5.0, 7.0, 0.0, 4.0];
        let mut dst = [0.0; 2];
        area_resample(&src, 4, 2, &mut dst, 2, 1);
        assert_eq!(dst, [4.0, 1.0]);
    }

    #[test]
    fn fractional_scale_preserves_mean() {
        let src: Vec<f32> = (0..105 * 105).map(|i| ((i * 7919) % 13) as f32).collect();
        let mut dst = vec![0.0; 28 * 28];
        area_resample(&src, 105, 105, &mut dst, 28, 28);
        let mean_src = src.iter().sum::<f32>() / src.len() as f32;
        let mean_dst = dst.iter().sum::<f32>() / dst.len() as f32;
        assert!(
            (mean_src - mean_dst).abs() < 1e-3,
            "{mean_src} vs {mean_dst}"
        );
    }

    #[test]
    fn three_to_two_weights() {
        // Source pixels [a, b, c] -> two outputs covering 1.5 pixels each.
        let src = [3.0, 6.0, 9.0];
        let mut dst = [0.0; 2];
        area_resample(&src, 3, 1, &mut dst, 2, 1);
        assert!((dst[0] - (3.0 + 0.5 * 6.0) / 1.5).abs() < 1e-6);
        assert!((dst[1] - (0.5 * 6.0 + 9.0) / 1.5).abs() < 1e-6);
    }
}
