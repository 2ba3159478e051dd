//! Baselines that need no training: Lake et al.'s modified Hausdorff distance, Keysers et
//! al.'s image distortion model, and nearest neighbour on raw pixels.

use std::collections::HashMap;

use data::{ImageId, ImageStore};
use rayon::prelude::*;

use crate::error::Result;
use crate::scorer::Scorer;

/// Ink pixels (value > 0.5) as points, centred on their centre of mass.
pub fn ink_points(ink: &[f32], side: usize) -> Vec<(f32, f32)> {
    let pts: Vec<(f32, f32)> = (0..side * side)
        .filter(|&i| ink[i] > 0.5)
        .map(|i| ((i % side) as f32, (i / side) as f32))
        .collect();
    if pts.is_empty() {
        return pts;
    }
    let n = pts.len() as f32;
    let cx = pts.iter().map(|p| p.0).sum::<f32>() / n;
    let cy = pts.iter().map(|p| p.1).sum::<f32>() / n;
    pts.into_iter().map(|(x, y)| (x - cx, y - cy)).collect()
}

fn mean_nearest(a: &[(f32, f32)], b: &[(f32, f32)]) -> f32 {
    let total: f32 = a
        .iter()
        .map(|p| {
            b.iter()
                .map(|q| (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2))
                .fold(f32::INFINITY, f32::min)
                .sqrt()
        })
        .sum();
    total / a.len() as f32
}

/// Modified Hausdorff distance (Dubuisson & Jain 1994): the larger of the two mean
/// nearest-neighbour distances. Infinite if either set is empty.
pub fn modified_hausdorff(a: &[(f32, f32)], b: &[(f32, f32)]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return f32::INFINITY;
    }
    mean_nearest(a, b).max(mean_nearest(b, a))
}

/// Lake's baseline: similarity is minus the modified Hausdorff distance between centred ink
/// point sets. Run it on a store at the native 105x105.
#[derive(Default)]
pub struct MhdScorer {
    points: HashMap<ImageId, Vec<(f32, f32)>>,
}

impl Scorer for MhdScorer {
    fn name(&self) -> String {
        "modified Hausdorff".into()
    }

    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()> {
        let side = store.side();
        let fresh: Vec<(ImageId, Vec<(f32, f32)>)> = ids
            .par_iter()
            .filter(|id| !self.points.contains_key(id))
            .map(|&id| (id, ink_points(&store.image_f32(id), side)))
            .collect();
        self.points.extend(fresh);
        Ok(())
    }

    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        -modified_hausdorff(&self.points[&a], &self.points[&b])
    }
}

/// Settings of the image distortion model: the side drawings are area-averaged to, and how
/// far (in pixels at that side) a pixel may move to find its match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdmConfig {
    pub side: usize,
    pub warp: usize,
}

impl Default for IdmConfig {
    fn default() -> Self {
        IdmConfig { side: 32, warp: 4 }
    }
}

/// Values per pixel of an IDM feature: both Sobel gradients over a 3x3 neighbourhood.
const IDM_CONTEXT: usize = 18;

/// Each pixel's local context: the horizontal and vertical Sobel gradients of the 3x3
/// neighbourhood around it (zero outside the image), `IDM_CONTEXT` values per pixel, row by
/// row. Gradients rather than ink values, as Keysers et al. found, so that matching rewards
/// strokes running the same way, not just ink in the same place.
pub fn idm_features(ink: &[f32], side: usize) -> Vec<f32> {
    let at = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x >= side as isize || y >= side as isize {
            0.0
        } else {
            ink[y as usize * side + x as usize]
        }
    };
    let mut gx = vec![0.0f32; side * side];
    let mut gy = vec![0.0f32; side * side];
    for y in 0..side as isize {
        for x in 0..side as isize {
            let i = y as usize * side + x as usize;
            gx[i] = (at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2.0 * at(x - 1, y) + at(x - 1, y + 1));
            gy[i] = (at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2.0 * at(x, y - 1) + at(x + 1, y - 1));
        }
    }
    let mut out = vec![0.0f32; side * side * IDM_CONTEXT];
    for y in 0..side as isize {
        for x in 0..side as isize {
            let cell = &mut out[(y as usize * side + x as usize) * IDM_CONTEXT..][..IDM_CONTEXT];
            let mut k = 0;
            for v in -1..=1isize {
                for u in -1..=1isize {
                    let (px, py) = (x + u, y + v);
                    if px >= 0 && py >= 0 && px < side as isize && py < side as isize {
                        let j = py as usize * side + px as usize;
                        cell[k] = gx[j];
                        cell[k + 1] = gy[j];
                    }
                    k += 2;
                }
            }
        }
    }
    out
}

/// The image distortion model's distance from `a` to `b` (features from [`idm_features`] at
/// `side`): for each pixel of `a`, the smallest squared difference between its context and
/// `b`'s at any position at most `warp` pixels away in each direction, summed. Not symmetric:
/// a stroke of `b` that `a` lacks costs nothing here.
pub fn idm_distance(a: &[f32], b: &[f32], side: usize, warp: usize) -> f32 {
    let mut total = 0.0f32;
    for y in 0..side {
        for x in 0..side {
            let fa = &a[(y * side + x) * IDM_CONTEXT..][..IDM_CONTEXT];
            let mut best = f32::INFINITY;
            for by in y.saturating_sub(warp)..(y + warp + 1).min(side) {
                for bx in x.saturating_sub(warp)..(x + warp + 1).min(side) {
                    let fb = &b[(by * side + bx) * IDM_CONTEXT..][..IDM_CONTEXT];
                    let d: f32 = fa.iter().zip(fb).map(|(p, q)| (p - q) * (p - q)).sum();
                    best = best.min(d);
                }
            }
            total += best;
        }
    }
    total
}

/// Keysers et al.'s image distortion model (PAMI 2007): similarity is minus the sum of the
/// IDM distances both ways, so that a stroke either drawing lacks costs its length, while a
/// stroke drawn a little elsewhere or bent costs little. Drawings are framed as the session
/// frames them, then area-averaged to the configured side.
pub struct IdmScorer {
    config: IdmConfig,
    features: HashMap<ImageId, Vec<f32>>,
}

impl IdmScorer {
    pub fn new(config: IdmConfig) -> Self {
        IdmScorer {
            config,
            features: HashMap::new(),
        }
    }
}

impl Scorer for IdmScorer {
    fn name(&self) -> String {
        format!(
            "image distortion model ({} px, warp {})",
            self.config.side, self.config.warp
        )
    }

    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()> {
        let (from, to) = (store.side(), self.config.side);
        let fresh: Vec<(ImageId, Vec<f32>)> = ids
            .par_iter()
            .filter(|id| !self.features.contains_key(id))
            .map(|&id| {
                let mut small = vec![0.0; to * to];
                data::resample::area_resample(&store.image_f32(id), from, from, &mut small, to, to);
                (id, idm_features(&small, to))
            })
            .collect();
        self.features.extend(fresh);
        Ok(())
    }

    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        let (fa, fb) = (&self.features[&a], &self.features[&b]);
        let IdmConfig { side, warp } = self.config;
        -(idm_distance(fa, fb, side, warp) + idm_distance(fb, fa, side, warp))
    }
}

/// Nearest neighbour on pixels: similarity is minus the squared Euclidean distance.
#[derive(Default)]
pub struct PixelScorer {
    images: HashMap<ImageId, Vec<f32>>,
}

impl Scorer for PixelScorer {
    fn name(&self) -> String {
        "pixel nearest neighbour".into()
    }

    fn prepare(&mut self, store: &ImageStore, ids: &[ImageId]) -> Result<()> {
        for &id in ids {
            self.images.entry(id).or_insert_with(|| store.image_f32(id));
        }
        Ok(())
    }

    fn similarity(&self, a: ImageId, b: ImageId) -> f32 {
        -self.images[&a]
            .iter()
            .zip(&self.images[&b])
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mhd_of_hand_made_sets() {
        let a = [(0.0, 0.0), (1.0, 0.0)];
        let b = [(0.0, 0.0), (1.0, 0.0), (4.0, 0.0)];
        // a -> b: 0, 0 (mean 0); b -> a: 0, 0, 3 (mean 1) => 1
        assert!((modified_hausdorff(&a, &b) - 1.0).abs() < 1e-6);
        assert_eq!(modified_hausdorff(&a, &a), 0.0);
        // Symmetric.
        assert_eq!(modified_hausdorff(&a, &b), modified_hausdorff(&b, &a));
        // Shifted by 5 across the segment: every nearest neighbour is 5 away.
        let c: Vec<(f32, f32)> = a.iter().map(|p| (p.0, p.1 + 5.0)).collect();
        assert!((modified_hausdorff(&a, &c) - 5.0).abs() < 1e-6);
        assert!(modified_hausdorff(&a, &[]).is_infinite());
    }

    /// An `side x side` image with ink 1 at the given pixels.
    fn dots(side: usize, ink: &[(usize, usize)]) -> Vec<f32> {
        let mut img = vec![0.0; side * side];
        for &(x, y) in ink {
            img[y * side + x] = 1.0;
        }
        img
    }

    #[test]
    fn idm_features_of_one_dot_by_hand() {
        let side = 11;
        let f = idm_features(&dots(side, &[(5, 5)]), side);
        let at = |x: usize, y: usize| &f[(y * side + x) * IDM_CONTEXT..][..IDM_CONTEXT];
        // Sobel at the dot's right neighbour: the dot is in its left column, weight 2.
        // Pixel (6, 5) is the centre (k = 8, 9) of its own context, and the right neighbour
        // (k = 10, 11) of (5, 5)'s.
        assert_eq!(&at(6, 5)[8..10], &[-2.0, 0.0]);
        assert_eq!(&at(5, 5)[10..12], &[-2.0, 0.0]);
        // Below-right of the dot: the dot is top-left, weight 1 in both gradients.
        assert_eq!(&at(6, 6)[8..10], &[-1.0, -1.0]);
        // The gradients' energy is 2 * (4 + 1 + 1) in each direction; each gradient value sits
        // in the context of 9 pixels, none of them near the border.
        let energy: f32 = f.iter().map(|v| v * v).sum();
        assert_eq!(energy, 9.0 * 24.0);
        // Far from the dot nothing is seen.
        assert!(at(0, 0).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn idm_forgives_small_moves_but_not_missing_strokes() {
        let side = 16;
        let stroke: Vec<(usize, usize)> = (4..12).map(|y| (7, y)).collect();
        let moved: Vec<(usize, usize)> = stroke.iter().map(|&(x, y)| (x + 2, y + 1)).collect();
        let (a, b) = (
            idm_features(&dots(side, &stroke), side),
            idm_features(&dots(side, &moved), side),
        );
        assert_eq!(idm_distance(&a, &a, side, 2), 0.0);
        // Moved by (2, 1): within a warp of 2 every pixel finds itself, both ways.
        assert_eq!(idm_distance(&a, &b, side, 2), 0.0);
        assert_eq!(idm_distance(&b, &a, side, 2), 0.0);
        // A warp of 1 cannot reach the stroke two columns over.
        assert!(idm_distance(&a, &b, side, 1) > 0.0);
        // Against a blank page, every feature of `a` is unmatched: the whole energy, while
        // the blank page finds blank places near every pixel of `a` (a warp of 3 reaches past
        // the 5-pixel band the stroke's contexts cover).
        let blank = idm_features(&vec![0.0; side * side], side);
        let energy: f32 = a.iter().map(|v| v * v).sum();
        assert_eq!(idm_distance(&a, &blank, side, 3), energy);
        assert_eq!(idm_distance(&blank, &a, side, 3), 0.0);
    }

    #[test]
    fn idm_charges_a_missing_stroke_to_the_drawing_that_has_it() {
        let side = 16;
        let bar: Vec<(usize, usize)> = (3..13).map(|i| (i, 8)).collect();
        let cross: Vec<(usize, usize)> =
            bar.iter().copied().chain((3..13).map(|i| (8, i))).collect();
        let (c, b) = (
            idm_features(&dots(side, &cross), side),
            idm_features(&dots(side, &bar), side),
        );
        // From the cross, the vertical stroke finds nothing like it in the bar; from the bar,
        // only the crossing looks different.
        let (from_cross, from_bar) = (idm_distance(&c, &b, side, 2), idm_distance(&b, &c, side, 2));
        assert!(from_bar > 0.0, "{from_bar}");
        assert!(from_cross > 3.0 * from_bar, "{from_cross} vs {from_bar}");
    }

    #[test]
    fn centring_makes_mhd_translation_invariant() {
        let side = 10;
        let mut img = vec![0.0; side * side];
        for (x, y) in [(2, 2), (3, 2), (2, 5)] {
            img[y * side + x] = 1.0;
        }
        let mut moved = vec![0.0; side * side];
        for (x, y) in [(6, 4), (7, 4), (6, 7)] {
            moved[y * side + x] = 1.0;
        }
        let (a, b) = (ink_points(&img, side), ink_points(&moved, side));
        assert_eq!(a.len(), 3);
        assert!(modified_hausdorff(&a, &b) < 1e-6);
        let cx: f32 = a.iter().map(|p| p.0).sum();
        assert!(cx.abs() < 1e-5);
    }
}
