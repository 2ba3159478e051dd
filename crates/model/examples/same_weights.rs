//! Whether two model files hold the same network, tensor by tensor and bit for bit: the check
//! behind "a rerun of the recipe gives the shipped weights". File hashes cannot say it, since
//! the metadata records the run's name and folder.
//!
//! `cargo run --release -p model --example same_weights -- A.safetensors B.safetensors`
//! prints each tensor that differs with its largest difference, and exits with 1 if any does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use model::Device;

fn main() -> ExitCode {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [a, b] = paths.as_slice() else {
        eprintln!("usage: same_weights A.safetensors B.safetensors");
        return ExitCode::from(2);
    };
    match compare(a, b) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn compare(a: &Path, b: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let (na, _) = model::io::load(a, &Device::Cpu)?;
    let (nb, _) = model::io::load(b, &Device::Cpu)?;
    if na.arch() != nb.arch() {
        println!(
            "architectures differ: {} and {}",
            na.arch().name,
            nb.arch().name
        );
        return Ok(false);
    }
    let tensors = |n: &model::SiameseNet| {
        let mut all = n.named_vars();
        all.extend(n.named_buffers());
        all
    };
    let (ta, tb) = (tensors(&na), tensors(&nb));
    let (mut same, mut values) = (0, 0);
    for ((name, va), (_, vb)) in ta.iter().zip(&tb) {
        let x = va.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let y = vb.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        values += x.len();
        if x.iter()
            .map(|v| v.to_bits())
            .eq(y.iter().map(|v| v.to_bits()))
        {
            same += 1;
        } else {
            let largest = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            println!("{name}: differs, by up to {largest:e}");
        }
    }
    println!(
        "{same} of {} tensors ({values} values) identical bit for bit",
        ta.len()
    );
    Ok(same == ta.len())
}
