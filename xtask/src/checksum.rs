//! Checksums of downloaded and mirrored zips.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

/// Which digest a file is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    Md5(String),
    Sha256(String),
}

impl Expected {
    pub fn name(&self) -> &'static str {
        match self {
            Expected::Md5(_) => "md5",
            Expected::Sha256(_) => "sha256",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Expected::Md5(h) | Expected::Sha256(h) => h,
        }
    }

    /// Hashes the file with this digest and returns the hex string.
    pub fn digest_file(&self, path: &Path) -> std::io::Result<String> {
        match self {
            Expected::Md5(_) => hash_file::<Md5>(path),
            Expected::Sha256(_) => hash_file::<Sha256>(path),
        }
    }
}

fn hash_file<D: Digest>(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a `SHA256SUMS` file (`<hex>  <name>` per line, `*name` for binary mode) and returns
/// the sum listed for `file_name`.
pub fn sha256_from_sums(sums: &str, file_name: &str) -> Option<String> {
    sums.lines().find_map(|line| {
        let (sum, name) = line.trim().split_once(char::is_whitespace)?;
        let name = name.trim().trim_start_matches('*');
        (name == file_name).then(|| sum.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            Expected::Md5(String::new()).digest_file(&f).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            Expected::Sha256(String::new()).digest_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sums_file_lookup() {
        let sums = "AB12  images_background.zip\ncd34 *images_evaluation.zip\n";
        assert_eq!(
            sha256_from_sums(sums, "images_background.zip").unwrap(),
            "ab12"
        );
        assert_eq!(
            sha256_from_sums(sums, "images_evaluation.zip").unwrap(),
            "cd34"
        );
        assert!(sha256_from_sums(sums, "other.zip").is_none());
    }
}
