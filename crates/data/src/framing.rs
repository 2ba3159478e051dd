//! How a drawing is placed in the network's input frame.
//!
//! Drawers wrote each character at their own size and place on the 105 px canvas, so the same
//! character varies in scale from drawer to drawer by more than the affine augmentation's
//! +-20%. Framing on the ink's bounding box removes that variation before the network sees the
//! image, identically for training, evaluation and user images (the choice is saved with the
//! architecture).

use serde::{Deserialize, Serialize};

use crate::NATIVE_SIDE;
use crate::resample::area_resample;
use crate::stroke::{redraw, skeleton};

/// Pixels above this ink value count when finding the ink's extent.
const INK_THRESHOLD: f32 = 0.5;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Framing {
    /// The whole 105 px canvas, as drawn.
    #[default]
    Canvas,
    /// A square around the ink's bounding box, centred on it: the box's longer side fills
    /// `fill` of the frame's side, and the square is at least `min_side` native pixels (so a
    /// lone dot is not blown up to fill the frame). With `stroke`, the drawing is first
    /// thinned to its skeleton and redrawn with a round pen that comes out `stroke` pixels
    /// wide in the framed image, whatever the drawing's size (`crate::stroke`).
    InkBox {
        fill: f32,
        min_side: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stroke: Option<f32>,
        /// With `spread`, the square's side is `spread` standard deviations of the ink (the
        /// larger of its spreads across and down) and `fill` only caps how much of the frame
        /// the box may fill: moment-based size normalisation, which a stray dot or a long
        /// tail moves less than it moves the bounding box.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spread: Option<f32>,
    },
}

/// Ink standard deviations per frame side of `ink-box-moments` framing: the median ratio of
/// the ink box's longer side to the ink's larger standard deviation over `images_background`
/// is 3.53, so 3.53 / 0.8 gives the median drawing the same size as `ink-box` framing.
pub const DEFAULT_SPREAD: f32 = 4.4;

/// Pen width, in pixels of the framed image, of `ink-box-stroke` framing.
pub const DEFAULT_STROKE: f32 = 2.5;

impl Framing {
    pub fn is_canvas(&self) -> bool {
        *self == Framing::Canvas
    }

    /// The default ink-box framing: the box fills 80% of the frame, the square spans at least
    /// a third of the canvas.
    pub fn ink_box() -> Self {
        Framing::InkBox {
            fill: 0.8,
            min_side: 35,
            stroke: None,
            spread: None,
        }
    }

    /// Moment-based framing: the square is [`DEFAULT_SPREAD`] ink standard deviations wide,
    /// but never narrower than the ink box, so no ink is cut off.
    pub fn ink_box_moments() -> Self {
        Framing::InkBox {
            fill: 1.0,
            min_side: 35,
            stroke: None,
            spread: Some(DEFAULT_SPREAD),
        }
    }

    /// The default ink-box framing with every stroke redrawn [`DEFAULT_STROKE`] pixels wide.
    pub fn ink_box_stroke() -> Self {
        Framing::InkBox {
            fill: 0.8,
            min_side: 35,
            stroke: Some(DEFAULT_STROKE),
            spread: None,
        }
    }

    /// Checks the parameters, so that a hand-edited config cannot divide by zero.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Framing::Canvas => Ok(()),
            Framing::InkBox {
                fill,
                min_side,
                stroke,
                spread,
            } => {
                if !(fill > 0.0 && fill <= 1.0) {
                    return Err(format!("ink-box fill must be in (0, 1], got {fill}"));
                }
                if min_side == 0 {
                    return Err("ink-box min_side must be positive".into());
                }
                if let Some(w) = stroke.filter(|w| !(*w > 0.0 && *w <= 20.0)) {
                    return Err(format!("ink-box stroke must be in (0, 20] pixels, got {w}"));
                }
                if let Some(k) = spread.filter(|k| !(*k > 0.0 && *k <= 100.0)) {
                    return Err(format!("ink-box spread must be in (0, 100], got {k}"));
                }
                Ok(())
            }
        }
    }

    /// The square window `(x0, y0, side)` of the native canvas this framing shows; it may
    /// reach past the canvas, where the image is background.
    pub fn window(&self, native: &[f32]) -> (isize, isize, usize) {
        let canvas = (0, 0, NATIVE_SIDE);
        let Framing::InkBox {
            fill,
            min_side,
            spread,
            ..
        } = *self
        else {
            return canvas;
        };
        let Some((x0, y0, x1, y1)) = ink_extent(native, NATIVE_SIDE) else {
            return canvas;
        };
        let longer = (x1 - x0 + 1).max(y1 - y0 + 1);
        let by_moments =
            spread.map_or(0, |k| (k * ink_spread(native, NATIVE_SIDE)).ceil() as usize);
        let side = ((longer as f32 / fill).ceil() as usize)
            .max(by_moments)
            .max(min_side)
            .max(1);
        // Centre of the box in doubled coordinates keeps the arithmetic integral.
        let (cx2, cy2) = ((x0 + x1 + 1) as isize, (y0 + y1 + 1) as isize);
        let origin = |c2: isize| (c2 - side as isize).div_euclid(2);
        (origin(cx2), origin(cy2), side)
    }

    /// Frames a native `105 x 105` ink image (`[0, 1]`, row-major) and area-resamples it to
    /// `side x side`.
    pub fn apply(&self, native: &[f32], side: usize) -> Vec<f32> {
        assert_eq!(native.len(), NATIVE_SIDE * NATIVE_SIDE, "native image size");
        let mut out = vec![0.0; side * side];
        let (x0, y0, w) = self.window(native);
        let redrawn;
        let native = match *self {
            Framing::InkBox {
                stroke: Some(width),
                ..
            } => {
                // The pen's radius in native pixels: `w` native pixels become `side`.
                let radius = 0.5 * width * w as f32 / side as f32;
                let ink: Vec<bool> = native.iter().map(|&v| v > INK_THRESHOLD).collect();
                redrawn = redraw(&skeleton(&ink, NATIVE_SIDE), NATIVE_SIDE, radius);
                &redrawn[..]
            }
            _ => native,
        };
        if (x0, y0, w) == (0, 0, NATIVE_SIDE) {
            area_resample(native, NATIVE_SIDE, NATIVE_SIDE, &mut out, side, side);
            return out;
        }
        let mut crop = vec![0.0; w * w];
        let n = NATIVE_SIDE as isize;
        for (cy, row) in crop.chunks_mut(w).enumerate() {
            let sy = y0 + cy as isize;
            if !(0..n).contains(&sy) {
                continue;
            }
            for (cx, v) in row.iter_mut().enumerate() {
                let sx = x0 + cx as isize;
                if (0..n).contains(&sx) {
                    *v = native[(sy * n + sx) as usize];
                }
            }
        }
        area_resample(&crop, w, w, &mut out, side, side);
        out
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Framing::Canvas => write!(f, "canvas"),
            Framing::InkBox {
                fill,
                min_side,
                stroke,
                spread,
            } => {
                write!(f, "ink-box (fill {fill}, at least {min_side} px")?;
                if let Some(k) = spread {
                    write!(f, ", {k} ink standard deviations wide")?;
                }
                if let Some(w) = stroke {
                    write!(f, ", strokes redrawn {w} px wide")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "canvas" => Ok(Framing::Canvas),
            "ink-box" => Ok(Framing::ink_box()),
            "ink-box-stroke" => Ok(Framing::ink_box_stroke()),
            "ink-box-moments" => Ok(Framing::ink_box_moments()),
            _ => Err(format!(
                "unknown framing `{s}` (expected canvas, ink-box, ink-box-stroke or ink-box-moments)"
            )),
        }
    }
}

/// Inclusive bounding box `(x0, y0, x1, y1)` of the ink in a square image, if there is any.
pub fn ink_extent(image: &[f32], side: usize) -> Option<(usize, usize, usize, usize)> {
    let mut extent: Option<(usize, usize, usize, usize)> = None;
    for (y, row) in image.chunks(side).enumerate() {
        for (x, _) in row.iter().enumerate().filter(|(_, v)| **v > INK_THRESHOLD) {
            extent = Some(match extent {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    extent
}

/// The larger of the ink's two standard deviations (across and down), in pixels, weighting
/// each pixel by its ink value; 0 for a blank image.
pub fn ink_spread(image: &[f32], side: usize) -> f32 {
    let (mut m, mut sx, mut sy, mut sxx, mut syy) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for (y, row) in image.chunks(side).enumerate() {
        for (x, &v) in row.iter().enumerate().filter(|(_, v)| **v > 0.0) {
            let (v, x, y) = (v as f64, x as f64, y as f64);
            m += v;
            sx += v * x;
            sy += v * y;
            sxx += v * x * x;
            syy += v * y * y;
        }
    }
    if m <= 0.0 {
        return 0.0;
    }
    let (mx, my) = (sx / m, sy / m);
    let var = (sxx / m - mx * mx).max(syy / m - my * my).max(0.0);
    var.sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas_with_rect(x0: usize, y0: usize, w: usize, h: usize) -> Vec<f32> {
        let mut img = vec![0.0; NATIVE_SIDE * NATIVE_SIDE];
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img[y * NATIVE_SIDE + x] = 1.0;
            }
        }
        img
    }

    #[test]
    fn extent_of_a_rectangle_and_of_nothing() {
        let img = canvas_with_rect(10, 20, 30, 5);
        assert_eq!(ink_extent(&img, NATIVE_SIDE), Some((10, 20, 39, 24)));
        assert_eq!(ink_extent(&[0.0; 9], 3), None);
    }

    #[test]
    fn canvas_framing_is_plain_area_resampling() {
        let img = canvas_with_rect(10, 20, 30, 5);
        let mut expected = vec![0.0; 35 * 35];
        area_resample(&img, NATIVE_SIDE, NATIVE_SIDE, &mut expected, 35, 35);
        assert_eq!(Framing::Canvas.apply(&img, 35), expected);
    }

    #[test]
    fn ink_box_window_is_centred_on_the_box_and_scaled_by_fill() {
        // A 40 x 20 box at (10, 30): longer side 40, window 40 / 0.8 = 50, centred on (30, 40).
        let img = canvas_with_rect(10, 30, 40, 20);
        let f = Framing::InkBox {
            fill: 0.8,
            min_side: 35,
            stroke: None,
            spread: None,
        };
        assert_eq!(f.window(&img), (5, 15, 50));
    }

    #[test]
    fn ink_spread_of_a_rectangle_is_its_uniform_standard_deviation() {
        // A uniform run of n pixels has variance (n^2 - 1) / 12; the wider side counts.
        let img = canvas_with_rect(10, 30, 40, 20);
        let want = ((40.0f32 * 40.0 - 1.0) / 12.0).sqrt();
        assert!((ink_spread(&img, NATIVE_SIDE) - want).abs() < 1e-3);
        assert_eq!(ink_spread(&[0.0; 9], 3), 0.0);
    }

    #[test]
    fn moments_window_is_spread_standard_deviations_wide_on_the_box_centre() {
        // The 40 x 20 box again: 4.4 * sqrt(1599 / 12) = 50.8, so 51 px, centred on (30, 40).
        let img = canvas_with_rect(10, 30, 40, 20);
        assert_eq!(Framing::ink_box_moments().window(&img), (4, 14, 51));
    }

    #[test]
    fn moments_window_never_cuts_off_ink() {
        // A 20 x 20 block and a stray dot 80 px away: the spread alone (about 7 px) would
        // give the minimum 35 px window, but the window must hold the whole 81 px box.
        let mut img = canvas_with_rect(10, 10, 20, 20);
        img[10 * NATIVE_SIDE + 90] = 1.0;
        let (_, _, side) = Framing::ink_box_moments().window(&img);
        assert_eq!(side, 81);
        let out = Framing::ink_box_moments().apply(&img, 81);
        assert!(
            (out.iter().sum::<f32>() - 401.0).abs() < 1e-3,
            "all ink kept"
        );
        // The bounding box framing leaves a 0.8 margin around the same box.
        assert_eq!(Framing::ink_box().window(&img).2, 102);
    }

    #[test]
    fn moments_framing_places_two_drawings_of_different_size_alike() {
        let small = canvas_with_ell(5, 5, 40, 4);
        let large = canvas_with_ell(10, 10, 80, 8);
        let f = Framing::InkBox {
            fill: 1.0,
            min_side: 1,
            stroke: None,
            spread: Some(DEFAULT_SPREAD),
        };
        // Windows of 55 and 109 px: the same drawing, up to where its edges fall on the
        // 20 px grid, so the same ink and the same centre of ink.
        let (a, b) = (f.apply(&small, 20), f.apply(&large, 20));
        let (ia, ib) = (a.iter().sum::<f32>(), b.iter().sum::<f32>());
        assert!((ia / ib - 1.0).abs() < 0.05, "ink {ia} vs {ib}");
        let centre = |img: &[f32], total: f32| {
            let pos = |i: usize| ((i % 20) as f32, (i / 20) as f32);
            img.iter().enumerate().fold((0.0, 0.0), |(x, y), (i, v)| {
                (x + v * pos(i).0 / total, y + v * pos(i).1 / total)
            })
        };
        let ((ax, ay), (bx, by)) = (centre(&a, ia), centre(&b, ib));
        assert!(
            (ax - bx).abs() < 0.5 && (ay - by).abs() < 0.5,
            "({ax}, {ay}) vs ({bx}, {by})"
        );
    }

    #[test]
    fn small_ink_gets_the_minimum_window() {
        let img = canvas_with_rect(50, 50, 4, 4);
        let (x0, y0, side) = Framing::ink_box().window(&img);
        assert_eq!(side, 35);
        // Centre (52, 52) stays in the middle of the window.
        assert_eq!((x0, y0), (52 - 17 - 1, 52 - 17 - 1));
    }

    #[test]
    fn ink_box_places_two_drawings_of_different_size_alike() {
        // The same square drawn small in one corner and large in the middle frames identically.
        let small = canvas_with_rect(5, 5, 40, 40);
        let large = canvas_with_rect(20, 20, 80, 80);
        let f = Framing::InkBox {
            fill: 0.8,
            min_side: 1,
            stroke: None,
            spread: None,
        };
        let (a, b) = (f.apply(&small, 20), f.apply(&large, 20));
        // Window 50 (small) and 100 (large): the square covers the middle 16 x 16 pixels.
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() < 1e-5, "pixel {i}: {x} vs {y}");
        }
        assert!((a[10 * 20 + 10] - 1.0).abs() < 1e-6);
        assert!(a[20].abs() < 1e-6, "border is background");
    }

    #[test]
    fn window_past_the_canvas_edge_is_background() {
        // Ink touching the right edge: the window reaches past x = 104.
        let img = canvas_with_rect(95, 40, 10, 30);
        let f = Framing::InkBox {
            fill: 0.5,
            min_side: 1,
            stroke: None,
            spread: None,
        };
        let (x0, _, side) = f.window(&img);
        assert!(x0 + side as isize > NATIVE_SIDE as isize);
        let out = f.apply(&img, 60);
        let ink: f32 = out.iter().sum::<f32>() / (60.0 * 60.0);
        // The 10 x 30 box covers (10 * 30) / 60^2 of the 60 px window.
        assert!((ink - 300.0 / 3600.0).abs() < 1e-4, "{ink}");
    }

    /// An "L" of two bars `thick` pixels thick and `len` long, its corner at `(x0, y0)`.
    fn canvas_with_ell(x0: usize, y0: usize, len: usize, thick: usize) -> Vec<f32> {
        let mut img = canvas_with_rect(x0, y0, thick, len);
        let foot = canvas_with_rect(x0, y0 + len - thick, len, thick);
        img.iter_mut().zip(foot).for_each(|(a, b)| *a = a.max(b));
        img
    }

    #[test]
    fn stroke_framing_draws_small_and_large_drawings_with_one_pen() {
        // The same "L" drawn small and large with the same 3 px pen: framed by its ink box,
        // the small one's strokes come out three times as thick as the large one's; with
        // strokes redrawn, both carry about the same ink.
        let (small, large) = (canvas_with_ell(30, 30, 30, 3), canvas_with_ell(5, 5, 90, 3));
        let ink = |f: Framing, img: &[f32]| f.apply(img, 40).iter().sum::<f32>();
        let plain = ink(Framing::ink_box(), &small) / ink(Framing::ink_box(), &large);
        assert!(plain > 2.5, "plain framing: ink ratio {plain}");
        let f = Framing::ink_box_stroke();
        let (a, b) = (ink(f, &small), ink(f, &large));
        assert!((a / b - 1.0).abs() < 0.15, "redrawn: {a} vs {b}");
        // About two bars of the frame's 0.8 x 40 = 32 px, 2.5 px wide.
        let want = 2.0 * 32.0 * DEFAULT_STROKE;
        assert!((b / want - 1.0).abs() < 0.2, "{b} vs {want}");
        // The shape stays where it was: every redrawn ink pixel is near the plain one's ink.
        let (p, r) = (Framing::ink_box().apply(&large, 40), f.apply(&large, 40));
        let near = |i: usize| {
            let (x, y) = ((i % 40) as isize, (i / 40) as isize);
            (-2..=2).any(|dy| {
                (-2..=2).any(|dx| {
                    let (u, v) = (x + dx, y + dy);
                    (0..40).contains(&u) && (0..40).contains(&v) && p[(v * 40 + u) as usize] > 0.2
                })
            })
        };
        assert!((0..1600).filter(|&i| r[i] > 0.5).all(near));
    }

    #[test]
    fn parses_and_validates() {
        assert_eq!("canvas".parse::<Framing>(), Ok(Framing::Canvas));
        assert_eq!("ink-box".parse::<Framing>(), Ok(Framing::ink_box()));
        assert!("box".parse::<Framing>().unwrap_err().contains("ink-box"));
        let bad = Framing::InkBox {
            fill: 0.0,
            min_side: 3,
            stroke: None,
            spread: None,
        };
        assert!(bad.validate().unwrap_err().contains("fill"));
        assert!(Framing::ink_box().validate().is_ok());
        assert_eq!(
            "ink-box-stroke".parse::<Framing>(),
            Ok(Framing::ink_box_stroke())
        );
        assert!(Framing::ink_box_stroke().validate().is_ok());
        assert_eq!(
            "ink-box-moments".parse::<Framing>(),
            Ok(Framing::ink_box_moments())
        );
        assert!(Framing::ink_box_moments().validate().is_ok());
        let wide = Framing::InkBox {
            fill: 1.0,
            min_side: 35,
            stroke: None,
            spread: Some(-1.0),
        };
        assert!(wide.validate().unwrap_err().contains("spread"));
        assert_eq!(
            Framing::ink_box_moments().to_string(),
            "ink-box (fill 1, at least 35 px, 4.4 ink standard deviations wide)"
        );
        let fat = Framing::InkBox {
            fill: 0.8,
            min_side: 35,
            stroke: Some(0.0),
            spread: None,
        };
        assert!(fat.validate().unwrap_err().contains("stroke"));
        assert_eq!(
            Framing::ink_box_stroke().to_string(),
            "ink-box (fill 0.8, at least 35 px, strokes redrawn 2.5 px wide)"
        );
        assert_eq!(
            Framing::ink_box().to_string(),
            "ink-box (fill 0.8, at least 35 px)"
        );
    }
}
