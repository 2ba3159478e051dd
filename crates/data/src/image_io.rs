//! Decoding images into the project's convention: ink intensity in `[0, 1]` (ink = 1,
//! background = 0), square, at a requested side length.

use std::path::Path;

use image::GrayImage;

use crate::NATIVE_SIDE;
use crate::error::{DataError, Result};
use crate::framing::Framing;
use crate::resample::area_resample;
use crate::stroke;

fn decode_luma(bytes: &[u8], path: &Path) -> Result<GrayImage> {
    image::load_from_memory(bytes)
        .map(|img| img.to_luma8())
        .map_err(|e| DataError::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Decodes an Omniglot PNG (105x105, ink black) into 105*105 ink values (0.0 or 1.0).
pub fn decode_omniglot_png(bytes: &[u8], path: &Path) -> Result<Vec<f32>> {
    Ok(decode_omniglot_ink(bytes, path)?
        .into_iter()
        .map(|v| v as f32 / 255.0)
        .collect())
}

/// Decodes an Omniglot PNG into 105*105 bytes of ink (255 = ink, 0 = background).
pub fn decode_omniglot_ink(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let gray = decode_luma(bytes, path)?;
    let side = NATIVE_SIDE as u32;
    if gray.width() != side || gray.height() != side {
        return Err(DataError::WrongSize {
            path: path.to_path_buf(),
            width: gray.width(),
            height: gray.height(),
            expected: side,
        });
    }
    let mut ink = gray.into_raw();
    for v in &mut ink {
        *v = if *v < 128 { 255 } else { 0 };
    }
    Ok(ink)
}

/// Reads and decodes an Omniglot PNG from disk.
pub fn read_omniglot_png(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_omniglot_png(&bytes, path)
}

/// Converts 105x105 ink values to `side x side` by area averaging.
pub fn to_side(native: &[f32], side: usize) -> Vec<f32> {
    let mut out = vec![0.0; side * side];
    area_resample(native, NATIVE_SIDE, NATIVE_SIDE, &mut out, side, side);
    out
}

/// Loads any image a user hands us (any size, PNG or JPEG) and makes it look like an Omniglot
/// drawing on the 105 px canvas, then frames and area-resamples it to `side`:
///
/// - a JPEG's EXIF orientation is applied, so a phone photo stands as it was taken;
/// - transparency is laid over a background that contrasts with the opaque pixels (a web
///   canvas saves black strokes on transparent black, which would otherwise read as a black
///   page);
/// - ink is dark on a light background, or light on a dark one: the image is split at Otsu's
///   threshold and the smaller side is the ink (grey scanned paper stays paper), found at the
///   image's own resolution, before any resizing can wash thin strokes out;
/// - specks, pieces of ink smaller than both a quarter of the pen's width squared and one
///   pixel of the 105 px canvas, are dropped, as a scan's dust would otherwise make the pen
///   look fine and come out as blots ([`stroke::despeckle`]);
/// - the image is padded to a square, so resizing keeps the drawing's proportions;
/// - a pen much thinner or thicker on the canvas than Omniglot's (whose drawings carry
///   strokes 2.5-10 px wide by [`stroke::pen_width`], median 4.4) is redrawn along its
///   skeleton with Omniglot's median pen, as a large scan of a fine pen would otherwise
///   shrink to broken hairlines.
///
/// An image with no ink at all is refused rather than scored.
pub fn load_user_image(path: &Path, side: usize, framing: Framing) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let image = decode_upright(&bytes).map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let gray = flatten_alpha(&image.to_luma_alpha8());
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    // One pixel of the 105 px canvas covers this many of the (padded) file's.
    let cell = (w.max(h) as f32 / NATIVE_SIDE as f32).powi(2);
    let binary = binarize(&gray);
    let Some((ink, pen)) = stroke::despeckle(&binary, w, h, cell) else {
        return Err(DataError::NoInk {
            path: path.to_path_buf(),
        });
    };
    let canvas_pen = pen * NATIVE_SIDE as f32 / w.max(h) as f32;
    tracing::debug!(
        path = %path.display(),
        width = w,
        height = h,
        pen = canvas_pen,
        redrawn = !PEN_RANGE.contains(&canvas_pen),
        specks = binary.iter().zip(&ink).filter(|(a, b)| **a && !**b).count(),
        "read a user drawing (pen in pixels of the 105 px canvas; speck pixels dropped)"
    );
    let native = to_canvas(&ink, w, h, canvas_pen);
    Ok(framing.apply(&native, side))
}

/// Pens outside this range on the 105 px canvas, by [`stroke::pen_width`], are redrawn. It
/// spans Omniglot's drawings, so they load as drawn: all 13,180 of `images_evaluation` (3.17 at
/// the thinnest, 4.43 at the median, 9.30 at the thickest) and all but 8 of the 19,280 of
/// `images_background` (2.45, 4.35, 11.01); `cargo run -p data --example pen_width -- SPLIT 1`.
const PEN_RANGE: std::ops::RangeInclusive<f32> = 2.5..=10.0;

/// The radius of the round pen ([`stroke::redraw`], then thresholded at one half) whose
/// strokes measure Omniglot's median pen: the same drawings, thinned and redrawn, measure
/// 4.42 at the median with 2.25 (3.94 with 2.0).
const REDRAW_RADIUS: f32 = 2.25;

/// Decodes an image the way it is meant to be seen: a phone stores a photo as the sensor read
/// it and records in its EXIF data how to turn it, and a drawing turned a quarter is, to a
/// network trained with rotation classes, another character.
fn decode_upright(bytes: &[u8]) -> image::ImageResult<image::DynamicImage> {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()?
        .into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut image = image::DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Luma with any transparency laid over white, or over black when the opaque pixels are
/// mostly light (light strokes on a transparent page).
fn flatten_alpha(image: &image::GrayAlphaImage) -> GrayImage {
    let transparent = image.pixels().any(|p| p.0[1] < 255);
    let background = if transparent {
        let (sum, count) = image
            .pixels()
            .filter(|p| p.0[1] >= 128)
            .fold((0u64, 0u64), |(s, n), p| (s + p.0[0] as u64, n + 1));
        if count > 0 && sum / count >= 128 {
            0
        } else {
            255
        }
    } else {
        255
    };
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let [l, a] = image.get_pixel(x, y).0;
        let (l, a, bg) = (l as u32, a as u32, background as u32);
        image::Luma([((l * a + bg * (255 - a) + 127) / 255) as u8])
    })
}

/// Ink pixels: the image split into dark and light at Otsu's threshold, and the smaller side
/// taken as ink (dark strokes on a light page, or light on dark), so that a scan's grey paper
/// or a dim photo is not all ink; an image of one shade has none.
fn binarize(gray: &GrayImage) -> Vec<bool> {
    let mut histogram = [0u64; 256];
    for p in gray.pixels() {
        histogram[p.0[0] as usize] += 1;
    }
    let level = otsu_level(&histogram);
    let dark: u64 = histogram[..=level as usize].iter().sum();
    let light = histogram.iter().sum::<u64>() - dark;
    if dark == 0 || light == 0 {
        return vec![false; gray.len()];
    }
    let ink_is_dark = dark <= light;
    gray.pixels()
        .map(|p| (p.0[0] <= level) == ink_is_dark)
        .collect()
}

/// Otsu's threshold: the grey level `t` that maximises the between-class variance of the
/// pixels `<= t` and those above (the first such level, so a two-tone image splits at its
/// darker tone).
fn otsu_level(histogram: &[u64; 256]) -> u8 {
    let total: u64 = histogram.iter().sum();
    let sum_all: f64 = (0..256).map(|i| i as f64 * histogram[i] as f64).sum();
    let (mut below, mut sum_below) = (0u64, 0f64);
    let (mut best, mut best_variance) = (0u8, -1f64);
    for (t, &count) in histogram.iter().enumerate() {
        below += count;
        sum_below += t as f64 * count as f64;
        let above = total - below;
        if below == 0 {
            continue;
        }
        if above == 0 {
            break;
        }
        let mean_below = sum_below / below as f64;
        let mean_above = (sum_all - sum_below) / above as f64;
        let variance = below as f64 * above as f64 * (mean_below - mean_above).powi(2);
        if variance > best_variance {
            (best, best_variance) = (t as u8, variance);
        }
    }
    best
}

/// Binary ink (`w x h`) on the 105 px canvas, where its pen is `pen` pixels wide: padded to a
/// centred square, area-resampled, and either thresholded at one half or, for a pen outside
/// [`PEN_RANGE`], thinned to its skeleton and redrawn with Omniglot's pen.
fn to_canvas(ink: &[bool], w: usize, h: usize, pen: f32) -> Vec<f32> {
    let square = w.max(h);
    let (dx, dy) = ((square - w) / 2, (square - h) / 2);
    let mut padded = vec![0f32; square * square];
    for (y, row) in ink.chunks(w).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            padded[(y + dy) * square + x + dx] = v as u8 as f32;
        }
    }
    let mut canvas = vec![0f32; NATIVE_SIDE * NATIVE_SIDE];
    area_resample(
        &padded,
        square,
        square,
        &mut canvas,
        NATIVE_SIDE,
        NATIVE_SIDE,
    );
    if PEN_RANGE.contains(&pen) {
        return threshold(&canvas);
    }
    // A thin pen keeps every canvas pixel it touches, so its strokes stay joined.
    let cut = if pen < *PEN_RANGE.start() { 0.0 } else { 0.5 };
    let touched: Vec<bool> = canvas.iter().map(|&v| v > cut).collect();
    let skeleton = stroke::skeleton(&touched, NATIVE_SIDE);
    threshold(&stroke::redraw(&skeleton, NATIVE_SIDE, REDRAW_RADIUS))
}

fn threshold(values: &[f32]) -> Vec<f32> {
    values
        .iter()
        .map(|&v| if v >= 0.5 { 1.0 } else { 0.0 })
        .collect()
}

/// Encodes ink values (`side x side`) as an 8-bit grayscale PNG in Omniglot polarity.
pub fn encode_png(ink: &[f32], side: usize) -> Vec<u8> {
    let img = GrayImage::from_fn(side as u32, side as u32, |x, y| {
        let v = ink[y as usize * side + x as usize].clamp(0.0, 1.0);
        image::Luma([((1.0 - v) * 255.0).round() as u8])
    });
    gray_png(&img)
}

fn gray_png(img: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::ink_extent;

    const N: usize = NATIVE_SIDE;

    /// An "H" on a `side` canvas scaled from the 105 px one, strokes `pen` pixels wide: two
    /// uprights and a bar, as ink values.
    fn letter_h(side: usize, pen: usize) -> Vec<f32> {
        let s = |v: usize| v * side / N;
        let mut ink = vec![0.0; side * side];
        let mut rect = |x0: usize, y0: usize, w: usize, h: usize| {
            for y in y0..y0 + h {
                for x in x0..x0 + w {
                    ink[y * side + x] = 1.0;
                }
            }
        };
        rect(s(30), s(20), pen, s(65) - s(20));
        rect(s(70), s(20), pen, s(65) - s(20));
        rect(s(30), s(42), s(70) - s(30) + pen, pen);
        ink
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `ink` (`w x h`, 1 = ink) as an 8-bit RGBA PNG: ink pixels `stroke`, others `paper`.
    fn rgba_png(ink: &[f32], w: usize, h: usize, stroke: [u8; 4], paper: [u8; 4]) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgba(if ink[y as usize * w + x as usize] > 0.5 {
                stroke
            } else {
                paper
            })
        });
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    fn load(path: &Path) -> Vec<f32> {
        load_user_image(path, N, Framing::Canvas).unwrap()
    }

    fn ink_count(ink: &[f32]) -> usize {
        ink.iter().filter(|&&v| v > 0.5).count()
    }

    /// Shared ink over ink in either: 1 for identical drawings.
    fn overlap(a: &[f32], b: &[f32]) -> f32 {
        let both = a
            .iter()
            .zip(b)
            .filter(|(x, y)| **x > 0.5 && **y > 0.5)
            .count();
        let either = a
            .iter()
            .zip(b)
            .filter(|(x, y)| **x > 0.5 || **y > 0.5)
            .count();
        both as f32 / either as f32
    }

    /// Whether every ink pixel of `a` (105 px) has ink of `b` within `reach` pixels.
    fn within(a: &[f32], b: &[f32], reach: usize) -> bool {
        (0..N * N).filter(|&i| a[i] > 0.5).all(|i| {
            let (x, y) = (i % N, i / N);
            (y.saturating_sub(reach)..(y + reach + 1).min(N)).any(|yy| {
                (x.saturating_sub(reach)..(x + reach + 1).min(N)).any(|xx| b[yy * N + xx] > 0.5)
            })
        })
    }

    #[test]
    fn an_omniglot_sized_drawing_with_omniglots_pen_loads_as_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let h = letter_h(N, 4);
        let pen = stroke::pen_width(&h.iter().map(|&v| v > 0.5).collect::<Vec<_>>(), N, N);
        assert!(PEN_RANGE.contains(&pen.unwrap()), "{pen:?}");
        let path = write(dir.path(), "h.png", &encode_png(&h, N));
        assert_eq!(load(&path), h);
        // Framed as the network frames the dataset's drawings.
        assert_eq!(
            load_user_image(&path, 28, Framing::ink_box()).unwrap(),
            Framing::ink_box().apply(&h, 28)
        );
    }

    #[test]
    fn polarity_and_transparency_do_not_change_the_drawing() {
        let dir = tempfile::tempdir().unwrap();
        let h = letter_h(N, 4);
        let (black, white) = ([0, 0, 0, 255], [255, 255, 255, 255]);
        let cases = [
            ("black on white", black, white),
            ("white on black", white, black),
            // What a web canvas saves: black strokes on transparent black.
            ("black on transparent black", black, [0, 0, 0, 0]),
            ("white on transparent white", white, [255, 255, 255, 0]),
            ("white on transparent black", white, [0, 0, 0, 0]),
            ("red on transparent", [200, 0, 0, 255], [0, 0, 0, 0]),
        ];
        for (name, stroke, paper) in cases {
            let path = write(dir.path(), "h.png", &rgba_png(&h, N, N, stroke, paper));
            assert_eq!(load(&path), h, "{name}");
        }
    }

    #[test]
    fn grey_paper_and_grey_ink_split_at_otsus_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let h = letter_h(N, 4);
        // A dim scan: ink at 20-60 on paper at 100-140, both noisy; a fixed threshold at 128
        // would call most of the paper ink. And the same negative: light ink on dark paper.
        let mut noise = 0u32;
        let mut next = || {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (noise >> 16) % 41
        };
        let dim: Vec<u8> = h
            .iter()
            .map(|&v| if v > 0.5 { 20 } else { 100 } + next() as u8)
            .collect();
        for (name, pixels) in [
            ("dim", dim.clone()),
            ("negative", dim.iter().map(|v| 255 - v).collect()),
        ] {
            let img = GrayImage::from_raw(N as u32, N as u32, pixels).unwrap();
            let path = write(dir.path(), "scan.png", &gray_png(&img));
            assert_eq!(load(&path), h, "{name}");
        }
        // The threshold of a two-tone image is its darker tone; of one tone, no split.
        let mut histogram = [0u64; 256];
        (histogram[0], histogram[255]) = (10, 90);
        assert_eq!(otsu_level(&histogram), 0);
        (histogram[40], histogram[0]) = (10, 0);
        assert_eq!(otsu_level(&histogram), 40);
    }

    #[test]
    fn a_wide_image_keeps_the_drawings_proportions() {
        let dir = tempfile::tempdir().unwrap();
        let h = letter_h(N, 4);
        // The drawing in the left half of a page twice as wide as high.
        let (w, ht) = (2 * N, N);
        let mut page = vec![0.0; w * ht];
        for y in 0..N {
            page[y * w..y * w + N].copy_from_slice(&h[y * N..(y + 1) * N]);
        }
        let white = [255, 255, 255, 255];
        let path = write(
            dir.path(),
            "wide.png",
            &rgba_png(&page, w, ht, [0, 0, 0, 255], white),
        );
        let loaded = load(&path);
        let (x0, y0, x1, y1) = ink_extent(&loaded, N).unwrap();
        let (x0h, y0h, x1h, y1h) = ink_extent(&h, N).unwrap();
        let aspect = |x0: usize, y0: usize, x1: usize, y1: usize| {
            (x1 - x0 + 1) as f32 / (y1 - y0 + 1) as f32
        };
        let (got, drawn) = (aspect(x0, y0, x1, y1), aspect(x0h, y0h, x1h, y1h));
        assert!((got - drawn).abs() < 0.1, "aspect {got} against {drawn}");
        // Half the size on the canvas, centred vertically in the padded square.
        let height = (y1 - y0 + 1) as f32 / (y1h - y0h + 1) as f32;
        assert!((height - 0.5).abs() < 0.06, "{height}");
        assert!(y0 > 20 && y1 < 85, "{y0}..{y1}");
    }

    #[test]
    fn a_fine_pen_on_a_large_image_is_redrawn_with_omniglots_pen() {
        let dir = tempfile::tempdir().unwrap();
        let side = 8 * N;
        // A 3 px pen on an 840 px page: 0.375 px once the page is 105 px.
        let fine = letter_h(side, 3);
        let path = write(dir.path(), "fine.png", &encode_png(&fine, side));
        let loaded = load(&path);
        let mask: Vec<bool> = loaded.iter().map(|&v| v > 0.5).collect();
        let pen = stroke::pen_width(&mask, N, N).unwrap();
        assert!((3.8..=5.0).contains(&pen), "pen {pen}");
        // The strokes are where the same letter drawn at 105 px has them, about as much ink.
        let drawn = letter_h(N, 4);
        assert!(within(&loaded, &drawn, 3) && within(&drawn, &loaded, 3));
        let ratio = ink_count(&loaded) as f32 / ink_count(&drawn) as f32;
        assert!((0.7..1.4).contains(&ratio), "{ratio}");
        // Resized and thresholded as drawn, the strokes would all but vanish.
        let mut resized = vec![0.0; N * N];
        area_resample(&fine, side, side, &mut resized, N, N);
        assert!(ink_count(&threshold(&resized)) < ink_count(&drawn) / 4);
        // A thick marker is thinned to the same pen.
        let bold = letter_h(N, 12);
        let path = write(dir.path(), "bold.png", &encode_png(&bold, N));
        let loaded = load(&path);
        let pen = stroke::pen_width(&loaded.iter().map(|&v| v > 0.5).collect::<Vec<_>>(), N, N);
        assert!((3.8..=5.0).contains(&pen.unwrap()), "pen {pen:?}");
        assert!(ink_count(&loaded) < ink_count(&bold) / 2);
    }

    #[test]
    fn a_scans_dust_is_swept_away() {
        let dir = tempfile::tempdir().unwrap();
        let side = 8 * N;
        let clean = letter_h(side, 24);
        let mut dusty = clean.clone();
        // One page pixel in a hundred inked at random, and a few 3 x 3 specks.
        let mut state = 7u64;
        for _ in 0..side * side / 100 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            dusty[(state >> 33) as usize % (side * side)] = 1.0;
        }
        for (x, y) in [(100, 100), (700, 50), (400, 750)] {
            for i in 0..9 {
                dusty[(y + i / 3) * side + x + i % 3] = 1.0;
            }
        }
        let from_clean = load(&write(dir.path(), "clean.png", &encode_png(&clean, side)));
        let from_dusty = load(&write(dir.path(), "dusty.png", &encode_png(&dusty, side)));
        assert_eq!(from_dusty, from_clean);
        // A fine pen is redrawn from every canvas pixel it touches, so there each grain of
        // dust would become a blot unless it is swept away first.
        let fine = letter_h(side, 3);
        let mut dusty = fine.clone();
        for _ in 0..200 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            dusty[(state >> 33) as usize % (side * side)] = 1.0;
        }
        let from_fine = load(&write(dir.path(), "fine.png", &encode_png(&fine, side)));
        let from_dusty = load(&write(dir.path(), "dusty.png", &encode_png(&dusty, side)));
        assert_eq!(from_dusty, from_fine);
    }

    #[test]
    fn jpeg_drawings_load_like_png_ones() {
        let dir = tempfile::tempdir().unwrap();
        let side = 4 * N;
        let h = letter_h(side, 16);
        let gray = GrayImage::from_fn(side as u32, side as u32, |x, y| {
            image::Luma([if h[y as usize * side + x as usize] > 0.5 {
                0
            } else {
                255
            }])
        });
        let mut jpeg = Vec::new();
        gray.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        let from_jpeg = load(&write(dir.path(), "h.jpg", &jpeg));
        let from_png = load(&write(dir.path(), "h.png", &encode_png(&h, side)));
        assert!(overlap(&from_jpeg, &from_png) > 0.95);
    }

    #[test]
    fn a_photos_exif_orientation_is_applied() {
        use image::ImageEncoder;
        let dir = tempfile::tempdir().unwrap();
        let side = 2 * N;
        let h = letter_h(side, 8);
        // An "L": the H's left upright and its bar, so that a quarter turn shows.
        let ell: Vec<f32> = h
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % side > 70 * side / N { 0.0 } else { v })
            .collect();
        let jpeg = |pixels: &[f32], orientation: Option<u16>| {
            let gray: Vec<u8> = pixels
                .iter()
                .map(|&v| if v > 0.5 { 0 } else { 255 })
                .collect();
            let mut out = Vec::new();
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
            if let Some(o) = orientation {
                // A big-endian TIFF header and one IFD entry: Orientation (0x0112), SHORT, 1.
                let mut exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
                exif.extend_from_slice(&o.to_be_bytes());
                exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                encoder.set_exif_metadata(exif).unwrap();
            }
            encoder
                .write_image(
                    &gray,
                    side as u32,
                    side as u32,
                    image::ExtendedColorType::L8,
                )
                .unwrap();
            out
        };
        // Stored turned a quarter clockwise (three counter-clockwise), with orientation 8:
        // "turn 90 degrees counter-clockwise to view".
        let turned = crate::augment::quarter_turns(&ell, side, 3);
        let upright = load(&write(dir.path(), "upright.jpg", &jpeg(&ell, None)));
        let tagged = load(&write(dir.path(), "tagged.jpg", &jpeg(&turned, Some(8))));
        let untagged = load(&write(dir.path(), "untagged.jpg", &jpeg(&turned, None)));
        assert!(
            overlap(&tagged, &upright) > 0.95,
            "{}",
            overlap(&tagged, &upright)
        );
        // Without the tag the same pixels read as the turned letter.
        assert!(
            overlap(&untagged, &upright) < 0.5,
            "{}",
            overlap(&untagged, &upright)
        );
    }

    #[test]
    fn a_page_without_ink_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        for (name, colour) in [("white.png", 255u8), ("black.png", 0), ("grey.png", 128)] {
            let page = GrayImage::from_pixel(40, 30, image::Luma([colour]));
            let path = write(dir.path(), name, &gray_png(&page));
            let err = load_user_image(&path, N, Framing::Canvas).unwrap_err();
            assert!(matches!(err, DataError::NoInk { .. }), "{name}: {err}");
            let message = err.to_string();
            assert!(
                message.contains(name) && message.contains("no ink found"),
                "{message}"
            );
        }
        let transparent = rgba_png(&[0.0; 100], 10, 10, [0; 4], [0, 0, 0, 0]);
        let path = write(dir.path(), "clear.png", &transparent);
        let err = load_user_image(&path, N, Framing::Canvas).unwrap_err();
        assert!(matches!(err, DataError::NoInk { .. }), "{err}");
    }
}
