//! Random affine distortions (Koch et al. 2015, section 3.3) with bilinear resampling, and an
//! optional smooth elastic displacement on top.
//!
//! A transform is rotation * shear * scale about the image centre, then a translation.
//! Translations are in native (105 px) pixels and scale with the image, so the same
//! parameters mean the same distortion at every input size. The elastic part moves each of
//! a coarse grid of control points by a random offset and interpolates between them: a
//! drawer's wobble is smooth over a stroke, unlike per-pixel noise. Cutout (random erasing)
//! can blank a square of the result, so that no single part of a character is relied on.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::NATIVE_SIDE;

/// Ranges to sample affine parameters from; each component is applied with `probability`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AffineConfig {
    /// Rotation in degrees, uniform in `[-rotation_deg, rotation_deg]`.
    pub rotation_deg: f32,
    /// Shear factors (x and y independently), uniform in `[-shear, shear]`.
    pub shear: f32,
    /// Scale factors (x and y independently), uniform in `[scale_min, scale_max]`.
    pub scale_min: f32,
    pub scale_max: f32,
    /// Translation in native pixels (x and y independently), uniform in `[-t, t]`.
    pub translate_px: f32,
    /// Probability that each of the components is applied at all.
    pub probability: f32,
    /// Elastic displacement: each control point moves by up to this many native pixels in x
    /// and y (0: off, and no random numbers are drawn for it).
    #[serde(skip_serializing_if = "is_zero")]
    pub elastic_px: f32,
    /// Stroke-width jitter: every stroke's edge moves out (thicker) or in (thinner) by a
    /// uniform amount in `[-stroke_px, stroke_px]` pixels of the network's input, at most 1
    /// (0: off, and no random numbers are drawn for it). Framing by the ink box makes small
    /// drawings' strokes thicker than large ones'; this teaches the network to look past it.
    #[serde(skip_serializing_if = "is_zero")]
    pub stroke_px: f32,
    /// Cutout: a square this fraction of the input's side, centred anywhere in the image
    /// (so it may hang over an edge), is blanked to background after the warp (0: off, and no
    /// random numbers are drawn for it).
    #[serde(skip_serializing_if = "is_zero")]
    pub erase: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// Control points per side of the elastic displacement grid (corners included).
pub const ELASTIC_GRID: usize = 4;

impl Default for AffineConfig {
    fn default() -> Self {
        Self::koch()
    }
}

impl AffineConfig {
    /// Koch et al.: rotation +-10 deg, shear +-0.3, scale 0.8-1.2, translation +-2 px, each
    /// component with probability 0.5.
    pub fn koch() -> Self {
        AffineConfig {
            rotation_deg: 10.0,
            shear: 0.3,
            scale_min: 0.8,
            scale_max: 1.2,
            translate_px: 2.0,
            probability: 0.5,
            elastic_px: 0.0,
            stroke_px: 0.0,
            erase: 0.0,
        }
    }

    /// The PyTorch reference implementation: a random rotation within +-15 degrees.
    pub fn reference() -> Self {
        AffineConfig {
            rotation_deg: 15.0,
            shear: 0.0,
            scale_min: 1.0,
            scale_max: 1.0,
            translate_px: 0.0,
            probability: 1.0,
            elastic_px: 0.0,
            stroke_px: 0.0,
            erase: 0.0,
        }
    }

    /// Looks a preset up by name (`koch`, `reference`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "koch" => Some(Self::koch()),
            "reference" => Some(Self::reference()),
            _ => None,
        }
    }

    /// Checks that the ranges make sense.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            self.rotation_deg,
            self.shear,
            self.scale_min,
            self.scale_max,
            self.translate_px,
            self.probability,
            self.elastic_px,
            self.stroke_px,
            self.erase,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err("augmentation parameters must be finite".into());
        }
        if self.rotation_deg < 0.0
            || self.shear < 0.0
            || self.translate_px < 0.0
            || self.elastic_px < 0.0
        {
            return Err("rotation, shear, translation and elastic ranges must be >= 0".into());
        }
        if !(self.scale_min > 0.0 && self.scale_min <= self.scale_max) {
            return Err("scale range must satisfy 0 < scale_min <= scale_max".into());
        }
        if !(0.0..=1.0).contains(&self.probability) {
            return Err("augmentation probability must be in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.stroke_px) {
            return Err("stroke-width jitter must be in [0, 1] pixels".into());
        }
        if !(0.0..=1.0).contains(&self.erase) {
            return Err("the cutout square's side must be in [0, 1] of the image's".into());
        }
        Ok(())
    }

    pub fn sample(&self, rng: &mut crate::Rng) -> AffineParams {
        let mut p = AffineParams::identity();
        let prob = self.probability as f64;
        let uniform = |rng: &mut crate::Rng, lo: f32, hi: f32| {
            if hi > lo {
                rng.random_range(lo..=hi)
            } else {
                lo
            }
        };
        if rng.random_bool(prob) {
            p.rotation_deg = uniform(rng, -self.rotation_deg, self.rotation_deg);
        }
        if rng.random_bool(prob) {
            p.shear_x = uniform(rng, -self.shear, self.shear);
            p.shear_y = uniform(rng, -self.shear, self.shear);
        }
        if rng.random_bool(prob) {
            p.scale_x = uniform(rng, self.scale_min, self.scale_max);
            p.scale_y = uniform(rng, self.scale_min, self.scale_max);
        }
        if rng.random_bool(prob) {
            p.translate_x = uniform(rng, -self.translate_px, self.translate_px);
            p.translate_y = uniform(rng, -self.translate_px, self.translate_px);
        }
        // Drawn last and only when enabled, so affine-only recipes keep their random streams.
        if self.elastic_px > 0.0 && rng.random_bool(prob) {
            for d in p.elastic.iter_mut().flatten() {
                *d = uniform(rng, -self.elastic_px, self.elastic_px);
            }
        }
        if self.stroke_px > 0.0 && rng.random_bool(prob) {
            p.stroke = uniform(rng, -self.stroke_px, self.stroke_px);
        }
        if self.erase > 0.0 && rng.random_bool(prob) {
            p.erase = [
                rng.random_range(0.0..1.0),
                rng.random_range(0.0..1.0),
                self.erase,
            ];
        }
        p
    }
}

/// One concrete affine transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    pub rotation_deg: f32,
    pub shear_x: f32,
    pub shear_y: f32,
    pub scale_x: f32,
    pub scale_y: f32,
    /// Native (105 px) pixels; +x is right, +y is down.
    pub translate_x: f32,
    pub translate_y: f32,
    /// Offsets `[dx, dy]` (native pixels) of the `ELASTIC_GRID x ELASTIC_GRID` control points,
    /// row-major over the output image.
    pub elastic: [[f32; 2]; ELASTIC_GRID * ELASTIC_GRID],
    /// Stroke edges move out by this many output pixels (in by its magnitude when negative),
    /// in `[-1, 1]`; applied after the warp.
    pub stroke: f32,
    /// Cutout `[cx, cy, side]` as fractions of the output's side: pixels whose centres lie
    /// inside the square become background, last of all (side 0: none).
    pub erase: [f32; 3],
}

impl AffineParams {
    pub fn identity() -> Self {
        AffineParams {
            rotation_deg: 0.0,
            shear_x: 0.0,
            shear_y: 0.0,
            scale_x: 1.0,
            scale_y: 1.0,
            translate_x: 0.0,
            translate_y: 0.0,
            elastic: [[0.0; 2]; ELASTIC_GRID * ELASTIC_GRID],
            stroke: 0.0,
            erase: [0.0; 3],
        }
    }

    /// The elastic offset (native pixels) at a point given as fractions `(u, v)` of the
    /// output image's width and height: bilinear between the control points.
    fn elastic_at(&self, u: f32, v: f32) -> [f32; 2] {
        let last = (ELASTIC_GRID - 1) as f32;
        let (gx, gy) = ((u * last).clamp(0.0, last), (v * last).clamp(0.0, last));
        let (x0, y0) = (
            (gx.floor() as usize).min(ELASTIC_GRID - 2),
            (gy.floor() as usize).min(ELASTIC_GRID - 2),
        );
        let (fx, fy) = (gx - x0 as f32, gy - y0 as f32);
        let at = |x: usize, y: usize| self.elastic[y * ELASTIC_GRID + x];
        let mut out = [0.0; 2];
        for (k, o) in out.iter_mut().enumerate() {
            *o = (1.0 - fy) * ((1.0 - fx) * at(x0, y0)[k] + fx * at(x0 + 1, y0)[k])
                + fy * ((1.0 - fx) * at(x0, y0 + 1)[k] + fx * at(x0 + 1, y0 + 1)[k]);
        }
        out
    }

    /// The 2x2 linear part, rotation * shear * scale, row-major.
    fn matrix(&self) -> [f32; 4] {
        let (s, c) = self.rotation_deg.to_radians().sin_cos();
        // shear [[1, sx], [sy, 1]] times scale diag(kx, ky)
        let sh = [
            self.scale_x,
            self.shear_x * self.scale_y,
            self.shear_y * self.scale_x,
            self.scale_y,
        ];
        [
            c * sh[0] - s * sh[2],
            c * sh[1] - s * sh[3],
            s * sh[0] + c * sh[2],
            s * sh[1] + c * sh[3],
        ]
    }

    /// Warps a `src_side`-square image of `u8` ink values into `dst` (`dst_side`-square,
    /// `f32` in `[0, 1]`), resampling bilinearly; pixels mapped from outside are background.
    pub fn warp_u8(&self, src: &[u8], src_side: usize, dst: &mut [f32], dst_side: usize) {
        assert_eq!(src.len(), src_side * src_side, "source size");
        assert_eq!(dst.len(), dst_side * dst_side, "destination size");
        let m = self.matrix();
        let det = m[0] * m[3] - m[1] * m[2];
        let inv = if det.abs() > 1e-12 {
            [m[3] / det, -m[1] / det, -m[2] / det, m[0] / det]
        } else {
            [1.0, 0.0, 0.0, 1.0]
        };
        let ratio = src_side as f32 / dst_side as f32;
        let centre = src_side as f32 / 2.0;
        let px = src_side as f32 / NATIVE_SIDE as f32;
        let (tx, ty) = (self.translate_x * px, self.translate_y * px);
        let elastic = self.elastic.iter().flatten().any(|&d| d != 0.0);
        let n = src_side as isize;
        let at = |x: isize, y: isize| -> f32 {
            if x < 0 || y < 0 || x >= n || y >= n {
                0.0
            } else {
                src[(y * n + x) as usize] as f32
            }
        };
        for y in 0..dst_side {
            for x in 0..dst_side {
                let qx = (x as f32 + 0.5) * ratio - centre - tx;
                let qy = (y as f32 + 0.5) * ratio - centre - ty;
                // Source position in pixel-index coordinates (centres at integers).
                let mut sx = inv[0] * qx + inv[1] * qy + centre - 0.5;
                let mut sy = inv[2] * qx + inv[3] * qy + centre - 0.5;
                if elastic {
                    let [dx, dy] = self.elastic_at(
                        (x as f32 + 0.5) / dst_side as f32,
                        (y as f32 + 0.5) / dst_side as f32,
                    );
                    // The ink at the sampled point appears here: moving ink by +d samples -d.
                    sx -= dx * px;
                    sy -= dy * px;
                }
                let x0 = sx.floor();
                let y0 = sy.floor();
                let fx = sx - x0;
                let fy = sy - y0;
                let (x0, y0) = (x0 as isize, y0 as isize);
                let v = (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
                    + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
                dst[y * dst_side + x] = v / 255.0;
            }
        }
        if self.stroke != 0.0 {
            restroke(dst, dst_side, self.stroke.clamp(-1.0, 1.0));
        }
        let [cx, cy, side] = self.erase;
        if side > 0.0 {
            let inside =
                |i: usize, c: f32| ((i as f32 + 0.5) / dst_side as f32 - c).abs() < side / 2.0;
            for (y, row) in dst.chunks_exact_mut(dst_side).enumerate() {
                if inside(y, cy) {
                    for (x, v) in row.iter_mut().enumerate() {
                        if inside(x, cx) {
                            *v = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// `image` (`side`-square, row-major) turned `k` quarter turns counter-clockwise as it is
/// displayed: an exact permutation of its pixels, for scoring or training in paired turns
/// without resampling.
pub fn quarter_turns(image: &[f32], side: usize, k: usize) -> Vec<f32> {
    let mut out = image.to_vec();
    for _ in 0..k % 4 {
        let src = out.clone();
        for y in 0..side {
            for x in 0..side {
                // (x, y) goes to (y, side - 1 - x): the right edge becomes the top.
                out[(side - 1 - x) * side + y] = src[y * side + x];
            }
        }
    }
    out
}

/// Moves every stroke edge of `img` (`side`-square, ink in `[0, 1]`) out by `t` pixels
/// (`0 < t <= 1`: each pixel takes at least `t` times its brightest 4-neighbour) or in by
/// `-t` (`t < 0`: each pixel moves `-t` of the way to its darkest 4-neighbour; outside the
/// image is background).
fn restroke(img: &mut [f32], side: usize, t: f32) {
    let src = img.to_vec();
    let n = side as isize;
    let at = |x: isize, y: isize| {
        if (0..n).contains(&x) && (0..n).contains(&y) {
            src[(y * n + x) as usize]
        } else {
            0.0
        }
    };
    for y in 0..n {
        for x in 0..n {
            let around = [at(x - 1, y), at(x + 1, y), at(x, y - 1), at(x, y + 1)];
            let v = at(x, y);
            img[(y * n + x) as usize] = if t > 0.0 {
                v.max(t * around.iter().copied().fold(0.0, f32::max))
            } else {
                let darkest = around.iter().copied().fold(1.0, f32::min);
                v + t * (v - darkest.min(v))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image_with(side: usize, on: &[(usize, usize)]) -> Vec<u8> {
        let mut img = vec![0u8; side * side];
        for &(x, y) in on {
            img[y * side + x] = 255;
        }
        img
    }

    #[test]
    fn quarter_turns_rotate_counter_clockwise_and_four_are_none() {
        // [a b; c d] turned once counter-clockwise is [b d; a c].
        let img = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quarter_turns(&img, 2, 1), vec![2.0, 4.0, 1.0, 3.0]);
        assert_eq!(quarter_turns(&img, 2, 2), vec![4.0, 3.0, 2.0, 1.0]);
        assert_eq!(quarter_turns(&img, 2, 3), vec![3.0, 1.0, 4.0, 2.0]);
        let odd: Vec<f32> = (0..9).map(|v| v as f32).collect();
        assert_eq!(quarter_turns(&odd, 3, 4), odd);
        assert_eq!(quarter_turns(&quarter_turns(&odd, 3, 1), 3, 3), odd);
        // The middle row of a 3x3 image becomes its middle column, read bottom to top.
        let t = quarter_turns(&odd, 3, 1);
        assert_eq!([t[7], t[4], t[1]], [3.0, 4.0, 5.0]);
    }

    fn lit(dst: &[f32], side: usize) -> Vec<(usize, usize)> {
        (0..side * side)
            .filter(|&i| dst[i] > 0.999)
            .map(|i| (i % side, i / side))
            .collect()
    }

    /// One draw from `extra` and one from Koch's config, both with every component on and
    /// from the same seed: an optional component drawn last leaves the rest equal.
    fn sample_with_and_without(extra: AffineConfig) -> (AffineParams, AffineParams) {
        let every = |c: AffineConfig| AffineConfig {
            probability: 1.0,
            ..c
        };
        let (mut r1, mut r2) = (crate::Rng::seed_from_u64(3), crate::Rng::seed_from_u64(3));
        (
            every(extra).sample(&mut r1),
            every(AffineConfig::koch()).sample(&mut r2),
        )
    }

    #[test]
    fn identity_returns_the_image_unchanged() {
        let side = 28;
        let src: Vec<u8> = (0..side * side).map(|i| ((i * 37) % 256) as u8).collect();
        let mut dst = vec![0.0; side * side];
        AffineParams::identity().warp_u8(&src, side, &mut dst, side);
        for (s, d) in src.iter().zip(&dst) {
            assert_eq!(*s as f32 / 255.0, *d);
        }
    }

    #[test]
    fn rotation_by_90_degrees_moves_a_known_pixel() {
        let side = 9; // centre of pixel (4, 4) is the image centre
        let src = image_with(side, &[(7, 4)]);
        let mut dst = vec![0.0; side * side];
        let p = AffineParams {
            rotation_deg: 90.0,
            ..AffineParams::identity()
        };
        p.warp_u8(&src, side, &mut dst, side);
        // (+3, 0) from the centre goes to (0, +3) in y-down image coordinates.
        assert_eq!(lit(&dst, side), vec![(4, 7)]);
    }

    #[test]
    fn translation_moves_pixels_by_whole_native_pixels() {
        let side = NATIVE_SIDE;
        let src = image_with(side, &[(10, 20), (50, 60)]);
        let mut dst = vec![0.0; side * side];
        let p = AffineParams {
            translate_x: 2.0,
            translate_y: -1.0,
            ..AffineParams::identity()
        };
        p.warp_u8(&src, side, &mut dst, side);
        assert_eq!(lit(&dst, side), vec![(12, 19), (52, 59)]);
        assert!((dst.iter().sum::<f32>() - 2.0).abs() < 1e-5);
    }

    #[test]
    fn scale_two_doubles_offsets_from_centre() {
        let side = 9;
        let src = image_with(side, &[(5, 4)]); // offset (+1, 0)
        let mut dst = vec![0.0; side * side];
        let p = AffineParams {
            scale_x: 2.0,
            scale_y: 2.0,
            ..AffineParams::identity()
        };
        p.warp_u8(&src, side, &mut dst, side);
        // The source pixel now covers offsets around +2: pixel (6, 4) is fully inside it.
        assert!(dst[4 * side + 6] > 0.999);
        assert!(dst[4 * side + 4] < 0.5);
    }

    #[test]
    fn sampled_parameters_stay_in_range_and_components_are_optional() {
        let cfg = AffineConfig::koch();
        let mut rng = crate::Rng::seed_from_u64(7);
        let mut identity_rotations = 0;
        for _ in 0..2000 {
            let p = cfg.sample(&mut rng);
            assert!(p.rotation_deg.abs() <= 10.0);
            assert!(p.shear_x.abs() <= 0.3 && p.shear_y.abs() <= 0.3);
            assert!((0.8..=1.2).contains(&p.scale_x) && (0.8..=1.2).contains(&p.scale_y));
            assert!(p.translate_x.abs() <= 2.0 && p.translate_y.abs() <= 2.0);
            if p.rotation_deg == 0.0 {
                identity_rotations += 1;
            }
        }
        // Rotation is applied with probability 0.5.
        assert!(
            (850..1150).contains(&identity_rotations),
            "{identity_rotations}"
        );
    }

    #[test]
    fn reference_preset_only_rotates() {
        let cfg = AffineConfig::reference();
        let mut rng = crate::Rng::seed_from_u64(1);
        for _ in 0..200 {
            let p = cfg.sample(&mut rng);
            assert!(p.rotation_deg.abs() <= 15.0);
            assert_eq!((p.scale_x, p.shear_x, p.translate_x), (1.0, 0.0, 0.0));
        }
    }

    #[test]
    fn a_uniform_elastic_field_is_a_translation() {
        let side = NATIVE_SIDE;
        let src = image_with(side, &[(10, 20), (50, 60), (90, 30)]);
        let (mut moved, mut translated) = (vec![0.0; side * side], vec![0.0; side * side]);
        AffineParams {
            elastic: [[3.0, -1.0]; ELASTIC_GRID * ELASTIC_GRID],
            ..AffineParams::identity()
        }
        .warp_u8(&src, side, &mut moved, side);
        AffineParams {
            translate_x: 3.0,
            translate_y: -1.0,
            ..AffineParams::identity()
        }
        .warp_u8(&src, side, &mut translated, side);
        assert_eq!(lit(&moved, side), vec![(13, 19), (93, 29), (53, 59)]);
        for (m, t) in moved.iter().zip(&translated) {
            assert!((m - t).abs() < 1e-5);
        }
    }

    #[test]
    fn the_elastic_field_interpolates_its_control_points() {
        let mut p = AffineParams::identity();
        for (i, d) in p.elastic.iter_mut().enumerate() {
            *d = [i as f32, -(i as f32)];
        }
        let last = ELASTIC_GRID - 1;
        assert_eq!(p.elastic_at(0.0, 0.0), [0.0, 0.0]);
        let corner = (ELASTIC_GRID * ELASTIC_GRID - 1) as f32;
        assert_eq!(p.elastic_at(1.0, 1.0), [corner, -corner]);
        // Halfway between points 0, 1, G and G+1: their mean.
        let h = 0.5 / last as f32;
        let mean = (1 + ELASTIC_GRID + ELASTIC_GRID + 1) as f32 / 4.0;
        let [dx, dy] = p.elastic_at(h, h);
        assert!(
            (dx - mean).abs() < 1e-5 && (dy + mean).abs() < 1e-5,
            "{dx} {dy}"
        );
    }

    #[test]
    fn elastic_offsets_are_drawn_after_the_affine_part_and_only_when_enabled() {
        let plain = AffineConfig::koch();
        let elastic = AffineConfig {
            elastic_px: 2.0,
            ..AffineConfig::koch()
        };
        let (mut r1, mut r2) = (crate::Rng::seed_from_u64(3), crate::Rng::seed_from_u64(3));
        let mut deformed = 0;
        for _ in 0..200 {
            let a = plain.sample(&mut r1);
            let b = elastic.sample(&mut r2);
            assert_eq!(a.elastic, AffineParams::identity().elastic);
            assert_eq!(
                (a.rotation_deg, a.shear_x, a.scale_y, a.translate_x),
                (b.rotation_deg, b.shear_x, b.scale_y, b.translate_x)
            );
            assert!(b.elastic.iter().flatten().all(|d| d.abs() <= 2.0));
            if b.elastic.iter().flatten().any(|&d| d != 0.0) {
                deformed += 1;
            }
            // Keep the streams aligned: the elastic config drew extra numbers.
            r1 = r2.clone();
        }
        assert!((70..130).contains(&deformed), "{deformed}");
        // Affine-only configs serialise as before.
        let toml = toml::to_string(&plain).unwrap();
        assert!(!toml.contains("elastic"), "{toml}");
    }

    #[test]
    fn stroke_jitter_moves_stroke_edges_by_the_drawn_amount() {
        // A vertical bar 3 px wide: its ink per row is 3; out by 0.5 px a side makes it 4, in
        // by 0.5 makes it 2 (the middle column keeps full ink either way).
        let side = 12;
        let on: Vec<(usize, usize)> = (2..10).flat_map(|y| (4..7).map(move |x| (x, y))).collect();
        let src = image_with(side, &on);
        let row = |t: f32| {
            let mut dst = vec![0.0; side * side];
            AffineParams {
                stroke: t,
                ..AffineParams::identity()
            }
            .warp_u8(&src, side, &mut dst, side);
            dst[6 * side..7 * side].to_vec()
        };
        let thick = row(0.5);
        assert!((thick.iter().sum::<f32>() - 4.0).abs() < 1e-5, "{thick:?}");
        assert_eq!((thick[3], thick[5], thick[7]), (0.5, 1.0, 0.5));
        let thin = row(-0.5);
        assert!((thin.iter().sum::<f32>() - 2.0).abs() < 1e-5, "{thin:?}");
        assert_eq!((thin[4], thin[5], thin[6]), (0.5, 1.0, 0.5));
        assert_eq!(row(0.0).iter().sum::<f32>(), 3.0);
        // Drawn last and only when enabled: other recipes keep their random streams.
        let (a, b) = sample_with_and_without(AffineConfig {
            stroke_px: 0.7,
            ..AffineConfig::koch()
        });
        assert_eq!(AffineParams { stroke: 0.0, ..a }, b);
        assert!(a.stroke != 0.0 && a.stroke.abs() <= 0.7);
    }

    #[test]
    fn cutout_blanks_the_drawn_square_and_nothing_else() {
        // All ink, 10x10: a square of side 0.3 centred at (0.25, 0.55) covers the pixel
        // centres 0.1 < (i + 0.5) / 10 < 0.4 in x (i = 1, 2, 3) and 0.4 < ... < 0.7 in y
        // (i = 4, 5, 6): nine pixels.
        let side = 10;
        let src = vec![255u8; side * side];
        let mut dst = vec![0.0; side * side];
        AffineParams {
            erase: [0.25, 0.55, 0.3],
            ..AffineParams::identity()
        }
        .warp_u8(&src, side, &mut dst, side);
        let blank: Vec<(usize, usize)> = (0..side * side)
            .filter(|&i| dst[i] == 0.0)
            .map(|i| (i % side, i / side))
            .collect();
        let square: Vec<(usize, usize)> =
            (4..7).flat_map(|y| (1..4).map(move |x| (x, y))).collect();
        assert_eq!(blank, square);
        assert_eq!(dst.iter().filter(|&&v| v == 1.0).count(), side * side - 9);
        // Hanging over the corner (centres 0.05 and 0.15 lie within 0.2 of 0), only the 2x2
        // part inside the image is blanked.
        AffineParams {
            erase: [0.0, 0.0, 0.4],
            ..AffineParams::identity()
        }
        .warp_u8(&src, side, &mut dst, side);
        assert_eq!(dst.iter().filter(|&&v| v == 0.0).count(), 4);
        // Drawn last and only when enabled: other recipes keep their random streams.
        let (a, b) = sample_with_and_without(AffineConfig {
            erase: 0.3,
            ..AffineConfig::koch()
        });
        assert_eq!(
            AffineParams {
                erase: [0.0; 3],
                ..a
            },
            b
        );
        assert!(a.erase[2] == 0.3 && (0.0..1.0).contains(&a.erase[0]));
        assert!(
            !toml::to_string(&AffineConfig::koch())
                .unwrap()
                .contains("erase")
        );
    }

    #[test]
    fn invalid_ranges_are_rejected() {
        let bad = AffineConfig {
            scale_min: 1.5,
            scale_max: 1.0,
            ..AffineConfig::koch()
        };
        assert!(bad.validate().is_err());
        let bad = AffineConfig {
            elastic_px: -1.0,
            ..AffineConfig::koch()
        };
        assert!(bad.validate().unwrap_err().contains("elastic"));
        let bad = AffineConfig {
            stroke_px: 1.5,
            ..AffineConfig::koch()
        };
        assert!(bad.validate().unwrap_err().contains("stroke"));
        let bad = AffineConfig {
            erase: 1.5,
            ..AffineConfig::koch()
        };
        assert!(bad.validate().unwrap_err().contains("cutout"));
        assert!(AffineConfig::koch().validate().is_ok());
    }
}
