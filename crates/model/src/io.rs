//! Saving and loading networks as safetensors, with the architecture in the metadata so a
//! file is self-describing. Extra tensors (optimizer state) and metadata can ride along: a
//! training checkpoint is also a loadable model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::arch::Arch;
use crate::error::{ModelError, Result};
use crate::net::SiameseNet;

pub const FORMAT: &str = "omniglot-siamese";
pub const FORMAT_VERSION: &str = "1";

/// Everything in a saved file besides the network.
#[derive(Debug, Default)]
pub struct Extras {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then
/// renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves the network (and `extras`) to `path` atomically.
pub fn save(net: &SiameseNet, path: &Path, extras: &Extras) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in net.named_vars().into_iter().chain(net.named_buffers()) {
        tensors.push((name, var.as_tensor().to_device(&Device::Cpu)?.contiguous()?));
    }
    for (name, t) in &extras.tensors {
        tensors.push((name.clone(), t.to_device(&Device::Cpu)?.contiguous()?));
    }
    let mut meta = extras.metadata.clone();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("format_version".into(), FORMAT_VERSION.into());
    meta.insert(
        "arch".into(),
        serde_json::to_string(net.arch()).expect("architectures serialize"),
    );
    let bytes = safetensors::serialize(tensors, Some(meta))
        .map_err(|e| ModelError::file(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &bytes).map_err(|e| ModelError::file(path, format!("cannot write: {e}")))
}

/// Reads a file written by [`save`]: the network on `device`, and the rest.
pub fn load(path: &Path, device: &Device) -> Result<(SiameseNet, Extras)> {
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (train one with `cargo run --release -p cli -- train`)"
        } else {
            ""
        };
        ModelError::file(path, format!("cannot read: {e}{hint}"))
    })?;
    load_bytes(&bytes, path, device)
}

/// The metadata of a file written by [`save`] (the architecture and format keys included),
/// without building the network.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes =
        std::fs::read(path).map_err(|e| ModelError::file(path, format!("cannot read: {e}")))?;
    header_metadata(&bytes, path)
}

fn header_metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        ModelError::file(
            path,
            format!("not a model file: not a valid safetensors file ({e})"),
        )
    })?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// As [`load`], and errors unless the file holds `expected`.
pub fn load_expecting(
    path: &Path,
    expected: &Arch,
    device: &Device,
) -> Result<(SiameseNet, Extras)> {
    let (net, extras) = load(path, device)?;
    if net.arch() != expected {
        return Err(ModelError::file(
            path,
            format!(
                "holds architecture `{}` ({}x{} input), expected `{}` ({}x{} input)",
                net.arch().name,
                net.arch().input_side,
                net.arch().input_side,
                expected.name,
                expected.input_side,
                expected.input_side
            ),
        ));
    }
    Ok((net, extras))
}

pub fn load_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<(SiameseNet, Extras)> {
    let not_ours = |why: String| ModelError::file(path, format!("not a model file: {why}"));
    let mut metadata = header_metadata(bytes, path)?;
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(not_ours(format!(
            "safetensors file without `format = {FORMAT}` metadata"
        )));
    }
    let version = metadata.get("format_version").cloned().unwrap_or_default();
    if version != FORMAT_VERSION {
        return Err(ModelError::file(
            path,
            format!(
                "format version `{version}` is not supported (this build reads {FORMAT_VERSION})"
            ),
        ));
    }
    let arch: Arch = metadata
        .get("arch")
        .ok_or_else(|| not_ours("no architecture in the metadata".into()))
        .and_then(|a| {
            serde_json::from_str(a).map_err(|e| not_ours(format!("bad architecture metadata: {e}")))
        })?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| not_ours(format!("truncated or corrupt safetensors data ({e})")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .map_err(|e| ModelError::file(path, format!("tensor `{name}`: {e}")))?;
        tensors.insert(name, t);
    }
    let net = SiameseNet::from_tensors(&arch, &tensors, device)
        .map_err(|e| ModelError::file(path, e.to_string()))?;
    for name in crate::net::parameter_names(&arch) {
        tensors.remove(&name);
    }
    for (name, _, _) in crate::net::buffer_names(&arch) {
        tensors.remove(&name);
    }
    for key in ["format", "format_version", "arch"] {
        metadata.remove(key);
    }
    Ok((net, Extras { tensors, metadata }))
}
