//! Baselines that need no training: Lake et al.'s modified Hausdorff distance, and nearest
//! neighbour on raw pixels.

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
