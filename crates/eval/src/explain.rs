//! Where a pair's score comes from: occlusion sensitivity (Zeiler & Fergus, 2014). Each
//! square patch of one drawing is blanked in turn, the pair is scored again exactly as
//! `verify` scores it (the same views), and the drop in the logit is spread over the patch's
//! pixels. Ink whose removal lowers the logit is evidence that the two drawings show one
//! character; ink whose removal raises it is evidence against.
//!
//! Chosen over gradient maps because it needs nothing from the network but its scores, so it
//! explains the paired-turn average the user sees rather than one upright view, and its unit
//! is the logit itself.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{EvalError, Result};
use crate::matcher::Matcher;
use crate::plot::{plot_err, render_png};

/// The patch blanked at a time and how far it moves between positions, in input pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occlusion {
    pub patch: usize,
    pub stride: usize,
}

impl Occlusion {
    /// A fifth of the input's side, moved by a twentieth (8 and 2 pixels at 40 px): about a
    /// stroke's width and a short piece of its length, so a map shows parts of strokes.
    pub fn for_side(side: usize) -> Self {
        Occlusion {
            patch: (side / 5).max(1),
            stride: (side / 20).max(1),
        }
    }

    /// The top-left corners along one side: every `stride`, and the last patch flush with the
    /// edge so that no pixel is left out.
    fn corners(&self, side: usize) -> Vec<usize> {
        let last = side.saturating_sub(self.patch);
        let mut out: Vec<usize> = (0..=last).step_by(self.stride.max(1)).collect();
        if out.last() != Some(&last) {
            out.push(last);
        }
        out
    }
}

/// A pair's logit and, for each drawing, the logit it loses when each pixel's neighbourhood
/// is blanked (row-major, the network's input side; 0 where there is no ink to blank).
#[derive(Clone, Debug, PartialEq)]
pub struct PairExplanation {
    pub side: usize,
    pub logit: f32,
    pub heat_a: Vec<f32>,
    pub heat_b: Vec<f32>,
}

impl PairExplanation {
    /// The largest loss or gain on either map (0 when blanking never changed the score).
    pub fn scale(&self) -> f32 {
        self.heat_a
            .iter()
            .chain(&self.heat_b)
            .fold(0.0f32, |m, h| m.max(h.abs()))
    }
}

impl Matcher {
    /// The occlusion maps of the pair `(a, b)` (images as [`Matcher::logits`] takes them).
    pub fn explain_pair(
        &self,
        a: &[f32],
        b: &[f32],
        occlusion: Occlusion,
    ) -> Result<PairExplanation> {
        let side = self.input_side();
        if occlusion.patch == 0 || occlusion.patch > side || occlusion.stride == 0 {
            return Err(EvalError::Invalid(format!(
                "an occlusion patch must be 1-{side} pixels with a stride of at least 1, got \
                 patch {} and stride {}",
                occlusion.patch, occlusion.stride
            )));
        }
        let (_, heat_a) = self.occlusion_map(a, b, occlusion)?;
        // Blanking `b` scores it against `a` as the query, the pair's own order.
        let (logit, heat_b) = self.occlusion_map(b, a, occlusion)?;
        Ok(PairExplanation {
            side,
            logit,
            heat_a,
            heat_b,
        })
    }

    /// Blanks `image` patch by patch and scores each copy against `other`; returns the logit of
    /// `other` against the whole `image` and, for each pixel, the mean logit lost over the
    /// patches covering it that held ink.
    fn occlusion_map(
        &self,
        image: &[f32],
        other: &[f32],
        occlusion: Occlusion,
    ) -> Result<(f32, Vec<f32>)> {
        let side = self.input_side();
        let corners = occlusion.corners(side);
        // The whole image first: one scoring call gives the base logit and every copy's, in
        // the same order (`other` the query), should a head not be symmetric.
        let mut copies = vec![image.to_vec()];
        let mut placed = Vec::new();
        for &y0 in &corners {
            for &x0 in &corners {
                let mut copy = image.to_vec();
                let mut inked = false;
                for y in y0..y0 + occlusion.patch {
                    for value in &mut copy[y * side + x0..y * side + x0 + occlusion.patch] {
                        inked |= *value > 0.0;
                        *value = 0.0;
                    }
                }
                // Blanking paper changes nothing; skipping it saves most of the work.
                if inked {
                    copies.push(copy);
                    placed.push((y0, x0));
                }
            }
        }
        let scores = self.logits(other, &copies)?;
        let logit = scores[0];
        let (mut sum, mut count) = (vec![0.0f32; side * side], vec![0u32; side * side]);
        for (&(y0, x0), score) in placed.iter().zip(&scores[1..]) {
            for y in y0..y0 + occlusion.patch {
                for x in x0..x0 + occlusion.patch {
                    sum[y * side + x] += logit - score;
                    count[y * side + x] += 1;
                }
            }
        }
        let heat = sum
            .iter()
            .zip(&count)
            .zip(image)
            .map(|((s, &n), &v)| {
                if n == 0 || v <= 0.0 {
                    0.0
                } else {
                    s / n as f32
                }
            })
            .collect();
        Ok((logit, heat))
    }
}

const EVIDENCE_FOR: RGBColor = RGBColor(214, 39, 40);
const EVIDENCE_AGAINST: RGBColor = RGBColor(31, 119, 180);

/// A pixel of an explained drawing: paper white, ink grey, tinted toward red where blanking
/// it lowers the logit and toward blue where it raises it, in proportion to `heat / scale`.
pub fn explained_pixel(ink: f32, heat: f32, scale: f32) -> RGBColor {
    let grey = 255.0 * (1.0 - 0.55 * ink.clamp(0.0, 1.0));
    if scale <= 0.0 || heat == 0.0 {
        let g = grey.round() as u8;
        return RGBColor(g, g, g);
    }
    let strength = (heat.abs() / scale).clamp(0.0, 1.0);
    let tint = if heat > 0.0 {
        EVIDENCE_FOR
    } else {
        EVIDENCE_AGAINST
    };
    let mix = |c: u8| (grey + strength * (c as f32 - grey)).round() as u8;
    RGBColor(mix(tint.0), mix(tint.1), mix(tint.2))
}

/// The two drawings as the network sees them, side by side, each tinted by its map, with the
/// score above and a key below (PNG).
pub fn write_explanation(
    path: &Path,
    title: &str,
    a: (&str, &[f32]),
    b: (&str, &[f32]),
    e: &PairExplanation,
) -> Result<()> {
    const TILE: u32 = 280;
    let scale = e.scale();
    let side = e.side;
    let (width, height) = (2 * TILE + 90, TILE + 150);
    render_png(path, (width, height), |root| {
        root.draw(&Text::new(title.to_string(), (15, 12), ("sans-serif", 17)))
            .map_err(plot_err)?;
        for (k, ((name, pixels), heat)) in [(a, &e.heat_a), (b, &e.heat_b)].iter().enumerate() {
            let left = 30 + k as i32 * (TILE as i32 + 30);
            let top = 50;
            let cell = TILE as f32 / side as f32;
            for y in 0..TILE {
                for x in 0..TILE {
                    let (sx, sy) = (
                        ((x as f32 / cell) as usize).min(side - 1),
                        ((y as f32 / cell) as usize).min(side - 1),
                    );
                    let i = sy * side + sx;
                    root.draw_pixel(
                        (left + x as i32, top + y as i32),
                        &explained_pixel(pixels[i], heat[i], scale),
                    )
                    .map_err(plot_err)?;
                }
            }
            root.draw(&Rectangle::new(
                [
                    (left - 1, top - 1),
                    (left + TILE as i32 + 1, top + TILE as i32 + 1),
                ],
                RGBColor(200, 200, 200).stroke_width(1),
            ))
            .map_err(plot_err)?;
            root.draw(&Text::new(
                name.to_string(),
                (left + TILE as i32 / 2, top + TILE as i32 + 8),
                TextStyle::from(("sans-serif", 13).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(plot_err)?;
        }
        let key = [
            "red: blanking this ink lowers the logit (evidence of one character)".to_string(),
            format!(
                "blue: blanking it raises the logit (evidence against); full colour: {scale:.2}"
            ),
        ];
        for (k, line) in key.into_iter().enumerate() {
            root.draw(&Text::new(
                line,
                (15, (TILE + 82 + 18 * k as u32) as i32),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(plot_err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_cover_every_pixel_and_end_flush_with_the_edge() {
        let o = Occlusion::for_side(40);
        assert_eq!(
            o,
            Occlusion {
                patch: 8,
                stride: 2
            }
        );
        let corners = o.corners(40);
        assert_eq!(corners.len(), 17);
        assert_eq!((corners[0], corners[16]), (0, 32));
        // 10 px side, patch 4 every 4: 0, 4 and the flush 6.
        let o = Occlusion {
            patch: 4,
            stride: 4,
        };
        assert_eq!(o.corners(10), vec![0, 4, 6]);
        assert_eq!(
            Occlusion::for_side(3),
            Occlusion {
                patch: 1,
                stride: 1
            }
        );
    }

    #[test]
    fn pixels_are_tinted_by_the_sign_and_share_of_their_heat() {
        // Paper stays white and ink grey without heat.
        assert_eq!(explained_pixel(0.0, 0.0, 1.0), RGBColor(255, 255, 255));
        assert_eq!(explained_pixel(1.0, 0.0, 1.0), RGBColor(115, 115, 115));
        // Full heat is the full colour, half heat half way from the grey (114.75 + (214 -
        // 114.75) / 2 = 164.4, and so on).
        assert_eq!(explained_pixel(1.0, 2.0, 2.0), EVIDENCE_FOR);
        assert_eq!(explained_pixel(1.0, -2.0, 2.0), EVIDENCE_AGAINST);
        assert_eq!(explained_pixel(1.0, 1.0, 2.0), RGBColor(164, 77, 77));
        // Nothing changed anywhere: no tint.
        assert_eq!(explained_pixel(1.0, 0.5, 0.0), RGBColor(115, 115, 115));
    }

    #[test]
    fn the_figure_shows_both_drawings_and_the_key() {
        let side = 4;
        let ink = vec![1.0; side * side];
        let e = PairExplanation {
            side,
            logit: 1.0,
            heat_a: vec![0.5; side * side],
            heat_b: vec![-0.5; side * side],
        };
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("e.png");
        write_explanation(&png, "t", ("a", &ink), ("b", &ink), &e).unwrap();
        let img = image::open(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (650, 430));
        // The middle of the left tile is red, of the right one blue.
        assert_eq!(img.get_pixel(30 + 140, 50 + 140).0, [214, 39, 40]);
        assert_eq!(img.get_pixel(340 + 140, 50 + 140).0, [31, 119, 180]);
    }
}
