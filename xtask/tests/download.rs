//! `cargo xtask download` on generated zips: mirrors, checksums, unsafe entries, damaged data,
//! and an HTTP server on loopback for resume and retry.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use data::SplitKind;
use data::synthetic::{SyntheticSpec, write_split};
use sha2::{Digest, Sha256};
use xtask::checksum::Expected;
use xtask::download::{self, Options, Outcome, Source};
use xtask::extract::Expect;

/// Zips every file under `root/<split dir>` with paths relative to `root`.
fn zip_tree(root: &Path, split_dir: &str, out: &Path, extra: &[(&str, &[u8])]) {
    let mut w = zip::ZipWriter::new(fs::File::create(out).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut stack = vec![root.join(split_dir)];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(p)
            }
        }
    }
    files.sort();
    for f in files {
        let name = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        w.start_file(name, opts).unwrap();
        w.write_all(&fs::read(&f).unwrap()).unwrap();
    }
    for (name, bytes) in extra {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

fn sha256(path: &Path) -> String {
    Sha256::digest(fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A mirror folder with a background zip of a small synthetic split and its SHA256SUMS.
fn mirror(extra: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_split(&tree, "images_background", SyntheticSpec::new(2, 3, 4)).unwrap();
    let mirror = tmp.path().join("mirror");
    fs::create_dir(&mirror).unwrap();
    let zip = mirror.join("images_background.zip");
    zip_tree(&tree, "images_background", &zip, extra);
    fs::write(
        mirror.join("SHA256SUMS"),
        format!("{}  images_background.zip\n", sha256(&zip)),
    )
    .unwrap();
    (tmp, mirror)
}

fn options(source: Source, dest: &Path) -> Options {
    Options {
        source,
        dest: dest.to_path_buf(),
        force: false,
        expect: Expect::WellFormed,
        splits: vec![SplitKind::Background],
        attempts: 3,
    }
}

fn leftovers(dest: &Path) -> Vec<String> {
    fs::read_dir(dest)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn mirror_install_then_second_run_is_a_no_op() {
    let (tmp, mirror) = mirror(&[]);
    let dest = tmp.path().join("data");
    let opts = options(Source::Mirror(mirror.clone()), &dest);
    let s = download::run(&opts).unwrap();
    assert_eq!(s[0].outcome, Outcome::Installed);
    assert_eq!((s[0].alphabets, s[0].characters, s[0].drawings), (2, 6, 24));
    assert!(
        s[0].to_string()
            .contains("2 alphabets, 6 characters, 24 drawings")
    );
    assert_eq!(
        leftovers(&dest),
        vec!["images_background"],
        "no temp folders left"
    );
    let again = download::run(&opts).unwrap();
    assert_eq!(again[0].outcome, Outcome::AlreadyComplete);

    // A drawing that no longer decodes is named on a re-run, not left for training to find.
    let junk = dest.join("images_background/Synthetic_02/character01/0004_02.png");
    let original = fs::read(&junk).unwrap();
    fs::write(&junk, b"not a png").unwrap();
    let corrupt = format!("{:#}", download::run(&opts).unwrap_err());
    assert!(
        corrupt.contains("Synthetic_02/character01/0004_02.png")
            && corrupt.contains("cannot decode")
            && corrupt.contains("--force"),
        "{corrupt}"
    );
    fs::write(&junk, original).unwrap();
    assert_eq!(
        download::run(&opts).unwrap()[0].outcome,
        Outcome::AlreadyComplete
    );

    // Official counts are checked on re-runs too, naming what is wrong.
    let strict = Options {
        expect: Expect::Official,
        ..opts.clone()
    };
    let msg = format!("{:#}", download::run(&strict).unwrap_err());
    assert!(
        msg.contains("2 alphabets, expected 30") && msg.contains("--force"),
        "{msg}"
    );

    // A damaged tree is reported with the offending path; --force repairs it.
    fs::remove_file(dest.join("images_background/Synthetic_01/character02/0002_03.png")).unwrap();
    let strict_damaged = format!("{:#}", download::run(&strict).unwrap_err());
    assert!(
        strict_damaged.contains("Synthetic_01/character02"),
        "{strict_damaged}"
    );
    let forced = Options {
        force: true,
        ..opts
    };
    assert_eq!(
        download::run(&forced).unwrap()[0].outcome,
        Outcome::Installed
    );
    assert!(
        dest.join("images_background/Synthetic_01/character02/0002_03.png")
            .is_file()
    );
}

#[test]
fn mirror_checksum_mismatch_shows_both_sums_and_writes_nothing() {
    let (tmp, mirror) = mirror(&[]);
    fs::write(
        mirror.join("SHA256SUMS"),
        format!("{}  images_background.zip\n", "0".repeat(64)),
    )
    .unwrap();
    let dest = tmp.path().join("data");
    let msg = format!(
        "{:#}",
        download::run(&options(Source::Mirror(mirror.clone()), &dest)).unwrap_err()
    );
    assert!(msg.contains("checksum mismatch"), "{msg}");
    assert!(msg.contains(&"0".repeat(64)));
    assert!(msg.contains(&sha256(&mirror.join("images_background.zip"))));
    assert!(!dest.join("images_background").exists());
}

#[test]
fn mirror_without_sums_must_match_the_official_md5() {
    let (tmp, mirror) = mirror(&[]);
    fs::remove_file(mirror.join("SHA256SUMS")).unwrap();
    let msg = format!(
        "{:#}",
        download::run(&options(Source::Mirror(mirror), &tmp.path().join("d"))).unwrap_err()
    );
    assert!(
        msg.contains("md5 checksum mismatch") && msg.contains("68d2efa1b9178cc56df9314c21c6e718"),
        "{msg}"
    );
}

#[test]
fn zip_slip_entries_are_refused() {
    for evil in [
        "../evil.png",
        "/tmp/evil.png",
        "images_background/../../evil.png",
    ] {
        let (tmp, mirror) = mirror(&[(evil, b"x")]);
        let dest = tmp.path().join("data");
        let msg = format!(
            "{:#}",
            download::run(&options(Source::Mirror(mirror), &dest)).unwrap_err()
        );
        assert!(msg.contains("would leave the destination"), "{evil}: {msg}");
        assert!(!tmp.path().join("evil.png").exists());
        assert_eq!(
            leftovers(&dest),
            Vec::<String>::new(),
            "{evil}: nothing half-written"
        );
    }
}

#[test]
fn symlink_entries_are_refused() {
    let (tmp, mirror) = mirror(&[]);
    let zip = mirror.join("images_background.zip");
    let mut w = zip::ZipWriter::new_append(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&zip)
            .unwrap(),
    )
    .unwrap();
    w.add_symlink(
        "images_background/link",
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    w.finish().unwrap();
    fs::write(
        mirror.join("SHA256SUMS"),
        format!("{}  images_background.zip\n", sha256(&zip)),
    )
    .unwrap();
    let dest = tmp.path().join("data");
    let msg = format!(
        "{:#}",
        download::run(&options(Source::Mirror(mirror), &dest)).unwrap_err()
    );
    assert!(msg.contains("symbolic links are not allowed"), "{msg}");
    assert!(!dest.join("images_background").exists());
}

#[test]
fn corrupt_png_in_zip_is_named() {
    let (tmp, mirror) = mirror(&[(
        "images_background/Synthetic_01/character01/0001_09.png",
        b"garbage",
    )]);
    let dest = tmp.path().join("data");
    let msg = format!(
        "{:#}",
        download::run(&options(Source::Mirror(mirror), &dest)).unwrap_err()
    );
    assert!(
        msg.contains("0001_09.png") && msg.contains("cannot decode"),
        "{msg}"
    );
    assert!(!dest.join("images_background").exists());
}

#[test]
fn truncated_zip_is_a_clear_error() {
    let (tmp, mirror) = mirror(&[]);
    let zip = mirror.join("images_background.zip");
    let bytes = fs::read(&zip).unwrap();
    fs::write(&zip, &bytes[..bytes.len() / 2]).unwrap();
    fs::write(
        mirror.join("SHA256SUMS"),
        format!("{}  images_background.zip\n", sha256(&zip)),
    )
    .unwrap();
    let dest = tmp.path().join("data");
    let msg = format!(
        "{:#}",
        download::run(&options(Source::Mirror(mirror), &dest)).unwrap_err()
    );
    assert!(msg.contains("not a readable zip archive"), "{msg}");
    assert!(!dest.join("images_background").exists());
}

#[cfg(unix)]
#[test]
fn unwritable_destination_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, mirror) = mirror(&[]);
    let dest = tmp.path().join("readonly");
    fs::create_dir(&dest).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(dest.join("probe"), b"").is_ok() {
        eprintln!("running as a user who can write anywhere: skipping");
        return;
    }
    let msg = format!(
        "{:#}",
        download::run(&options(Source::Mirror(mirror), &dest)).unwrap_err()
    );
    assert!(msg.contains("cannot write to destination folder"), "{msg}");
}

/// Serves `body` on loopback. Honours `Range: bytes=N-`. The first `drop_first` connections
/// send half the body and hang up, to exercise retry and resume.
fn serve(body: Vec<u8>, drop_first: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
            }
            let text = String::from_utf8_lossy(&req).to_lowercase();
            let start = text
                .lines()
                .find_map(|l| l.strip_prefix("range: bytes="))
                .and_then(|r| r.trim().trim_end_matches('-').parse::<usize>().ok());
            let (status, slice) = match start {
                Some(st) if st < body.len() => ("206 Partial Content", &body[st..]),
                _ => ("200 OK", &body[..]),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                slice.len()
            );
            let _ = s.write_all(head.as_bytes());
            if n < drop_first {
                let _ = s.write_all(&slice[..slice.len() / 2]);
            } else {
                let _ = s.write_all(slice);
            }
        }
    });
    (format!("http://{addr}"), hits)
}

#[test]
fn http_download_resumes_after_a_dropped_connection() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let md5 = format!("{:x}", md5::Md5::digest(&body));
    let (base, hits) = serve(body.clone(), 1);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("file.zip");
    download::fetch(
        &format!("{base}/file.zip"),
        &target,
        &Expected::Md5(md5.clone()),
        3,
    )
    .unwrap();
    assert_eq!(fs::read(&target).unwrap(), body);
    assert!(!tmp.path().join("file.zip.part").exists());
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one dropped, one resumed");
    // Present and valid: no request at all.
    download::fetch(&format!("{base}/file.zip"), &target, &Expected::Md5(md5), 3).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn http_checksum_mismatch_keeps_nothing() {
    let body = vec![7u8; 1000];
    let (base, _) = serve(body, 0);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("file.zip");
    let err = download::fetch(
        &format!("{base}/file.zip"),
        &target,
        &Expected::Md5("0".repeat(32)),
        2,
    );
    let msg = format!("{:#}", err.unwrap_err());
    assert!(
        msg.contains("checksum mismatch") && msg.contains(&"0".repeat(32)),
        "{msg}"
    );
    assert!(!target.exists() && !tmp.path().join("file.zip.part").exists());
}

#[test]
fn no_network_suggests_a_mirror() {
    // Nothing listens on this port: connection refused, like a machine without network.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let err = download::fetch(
        &format!("http://127.0.0.1:{port}/x.zip"),
        &tmp.path().join("x.zip"),
        &Expected::Md5("0".repeat(32)),
        2,
    );
    let msg = format!("{:#}", err.unwrap_err());
    assert!(
        msg.contains("--from DIR") && msg.contains("No network"),
        "{msg}"
    );
}

#[test]
fn real_mirror_when_available() {
    // CI points OMNIGLOT_MIRROR at ../shared/omniglot; the test installs both official splits.
    let Some(mirror) = std::env::var_os("OMNIGLOT_MIRROR") else {
        eprintln!("OMNIGLOT_MIRROR not set: skipping");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        expect: Expect::Official,
        splits: SplitKind::ALL.to_vec(),
        ..options(Source::Mirror(mirror.into()), tmp.path())
    };
    let s = download::run(&opts).unwrap();
    assert_eq!(
        (s[0].alphabets, s[0].characters, s[0].drawings),
        (30, 964, 19280)
    );
    assert_eq!(
        (s[1].alphabets, s[1].characters, s[1].drawings),
        (20, 659, 13180)
    );
}
