//! Decoding images into the project's convention: ink intensity in `[0, 1]` (ink = 1,
//! background = 0), square, at a requested side length.

use std::path::Path;

use image::{GrayImage, imageops::FilterType};

use crate::NATIVE_SIDE;
use crate::error::{DataError, Result};
use crate::framing::Framing;
use crate::resample::area_resample;

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

/// Loads any image a user hands us (any size, any format `image` reads) and makes it look
/// like an Omniglot drawing: grayscale, dark ink on a light background (inverted when the
/// background is dark), resized to 105x105, binarised, then framed and area-resampled to
/// `side`.
pub fn load_user_image(path: &Path, side: usize, framing: Framing) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let gray = decode_luma(&bytes, path)?;
    if gray.width() == 0 || gray.height() == 0 {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: "image is empty".into(),
        });
    }
    let mean = gray.pixels().map(|p| p.0[0] as f64).sum::<f64>()
        / (gray.width() as f64 * gray.height() as f64);
    let dark_background = mean < 128.0;
    let resized = image::imageops::resize(
        &gray,
        NATIVE_SIDE as u32,
        NATIVE_SIDE as u32,
        FilterType::Triangle,
    );
    let native: Vec<f32> = resized
        .pixels()
        .map(|p| {
            let ink = if dark_background {
                p.0[0] >= 128
            } else {
                p.0[0] < 128
            };
            if ink { 1.0 } else { 0.0 }
        })
        .collect();
    Ok(framing.apply(&native, side))
}

/// Encodes ink values (`side x side`) as an 8-bit grayscale PNG in Omniglot polarity.
pub fn encode_png(ink: &[f32], side: usize) -> Vec<u8> {
    let img = GrayImage::from_fn(side as u32, side as u32, |x, y| {
        let v = ink[y as usize * side + x as usize].clamp(0.0, 1.0);
        image::Luma([((1.0 - v) * 255.0).round() as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG into memory cannot fail");
    out
}
