//! `--device auto|cpu|cuda[:N]|metal`, with clear errors when support was not compiled in.

use candle_core::Device;

use crate::error::{ModelError, Result};

/// Parses a device name. `auto` picks CUDA, then Metal, when compiled in and available,
/// else the CPU.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim();
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if cfg!(feature = "cuda")
                && let Ok(d) = Device::new_cuda(0)
            {
                return Ok(d);
            }
            if cfg!(feature = "metal")
                && let Ok(d) = Device::new_metal(0)
            {
                return Ok(d);
            }
            Ok(Device::Cpu)
        }
        "metal" => {
            if !cfg!(feature = "metal") {
                return Err(ModelError::Device(
                    "Metal support was not compiled in: rebuild with `--features metal`".into(),
                ));
            }
            Device::new_metal(0)
                .map_err(|e| ModelError::Device(format!("cannot open Metal device: {e}")))
        }
        _ => {
            let Some(rest) = name.strip_prefix("cuda") else {
                return Err(ModelError::Device(format!(
                    "unknown device `{name}` (expected auto, cpu, cuda, cuda:N or metal)"
                )));
            };
            let ordinal = match rest.strip_prefix(':') {
                None if rest.is_empty() => 0,
                Some(n) => n.parse().map_err(|_| {
                    ModelError::Device(format!("bad CUDA device number in `{name}`"))
                })?,
                None => {
                    return Err(ModelError::Device(format!(
                        "unknown device `{name}` (expected auto, cpu, cuda, cuda:N or metal)"
                    )));
                }
            };
            if !cfg!(feature = "cuda") {
                return Err(ModelError::Device(
                    "CUDA support was not compiled in: rebuild with `--features cuda` \
                     (or `--features cudnn`)"
                        .into(),
                ));
            }
            Device::new_cuda(ordinal)
                .map_err(|e| ModelError::Device(format!("cannot open CUDA device {ordinal}: {e}")))
        }
    }
}

/// A short name for logs and reports.
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(
            parse_device("tpu")
                .unwrap_err()
                .to_string()
                .contains("unknown device")
        );
        assert!(parse_device("cuda:x").is_err());
        if !cfg!(feature = "cuda") {
            let msg = parse_device("cuda:1").unwrap_err().to_string();
            assert!(msg.contains("--features cuda"), "{msg}");
        }
        if !cfg!(feature = "metal") {
            assert!(
                parse_device("metal")
                    .unwrap_err()
                    .to_string()
                    .contains("--features metal")
            );
        }
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(parse_device("auto").unwrap().is_cpu());
        }
    }
}
