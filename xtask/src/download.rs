//! `cargo xtask download`: fetch (or take from a local mirror), verify, extract and validate
//! the two Omniglot splits.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use data::SplitKind;
use indicatif::{ProgressBar, ProgressStyle};

use crate::checksum::{Expected, sha256_from_sums};
use crate::extract::{Expect, install_split, split_problems};

/// Where the official zips live.
pub const OFFICIAL_URL_BASE: &str = "https://github.com/brendenlake/omniglot/raw/master/python";

/// File name and official md5 of a split's zip.
pub fn official(kind: SplitKind) -> (&'static str, &'static str) {
    match kind {
        SplitKind::Background => ("images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
        SplitKind::Evaluation => ("images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
    }
}

#[derive(Clone, Debug)]
pub enum Source {
    /// Download over HTTP(S) from `<base>/<file>.zip`.
    Http { base: String },
    /// A folder holding the zips (and optionally a `SHA256SUMS` file).
    Mirror(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Options {
    pub source: Source,
    pub dest: PathBuf,
    pub force: bool,
    pub expect: Expect,
    pub splits: Vec<SplitKind>,
    /// Attempts per download before giving up on transient errors.
    pub attempts: u32,
}

/// What happened to one split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    AlreadyComplete,
    Installed,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub kind: SplitKind,
    pub dir: PathBuf,
    pub alphabets: usize,
    pub characters: usize,
    pub drawings: usize,
    pub outcome: Outcome,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.outcome {
            Outcome::AlreadyComplete => "already complete",
            Outcome::Installed => "installed and verified",
        };
        write!(
            f,
            "{}: {} alphabets, {} characters, {} drawings, {what} ({})",
            self.kind.dir_name(),
            self.alphabets,
            self.characters,
            self.drawings,
            self.dir.display()
        )
    }
}

pub fn run(opts: &Options) -> Result<Vec<Summary>> {
    let mut out = Vec::new();
    for &kind in &opts.splits {
        out.push(install(opts, kind)?);
    }
    Ok(out)
}

fn summarize(dir: &Path, kind: SplitKind, outcome: Outcome) -> Result<Summary> {
    let index = data::SplitIndex::scan(dir)?;
    Ok(Summary {
        kind,
        dir: dir.to_path_buf(),
        alphabets: index.alphabets.len(),
        characters: index.num_characters(),
        drawings: index.num_drawings(),
        outcome,
    })
}

fn install(opts: &Options, kind: SplitKind) -> Result<Summary> {
    let split_dir = opts.dest.join(kind.dir_name());
    if split_dir.exists() && !opts.force {
        // The same check as after an extraction, every file decoded: a truncated or
        // overwritten drawing is named here rather than when a training run reaches it.
        // Decoding both official splits takes 0.4-1.6 s on 2 cores.
        let problems = split_problems(&split_dir, kind, opts.expect);
        if problems.is_empty() {
            return summarize(&split_dir, kind, Outcome::AlreadyComplete);
        }
        bail!(
            "{} exists but is damaged:\n  {}\nrun `cargo xtask download --force` to reinstall it",
            split_dir.display(),
            problems.join("\n  ")
        );
    }
    let (file_name, md5) = official(kind);
    let zip = match &opts.source {
        Source::Mirror(dir) => {
            let zip = dir.join(file_name);
            if !zip.is_file() {
                bail!("the mirror folder {} has no {file_name}", dir.display());
            }
            let expected = mirror_checksum(dir, file_name, md5)?;
            verify(&zip, &expected)?;
            zip
        }
        Source::Http { base } => {
            let zips = opts.dest.join("zips");
            fs::create_dir_all(&zips)
                .with_context(|| format!("cannot create {}", zips.display()))?;
            let zip = zips.join(file_name);
            let url = format!("{}/{file_name}", base.trim_end_matches('/'));
            fetch(&url, &zip, &Expected::Md5(md5.into()), opts.attempts)?;
            zip
        }
    };
    tracing::info!(zip = %zip.display(), "extracting");
    let dir = install_split(&zip, kind, &opts.dest, opts.expect)?;
    summarize(&dir, kind, Outcome::Installed)
}

/// A mirror's `SHA256SUMS` wins; without one the zip must be the official file (md5).
fn mirror_checksum(dir: &Path, file_name: &str, md5: &str) -> Result<Expected> {
    let sums = dir.join("SHA256SUMS");
    if !sums.is_file() {
        return Ok(Expected::Md5(md5.into()));
    }
    let text =
        fs::read_to_string(&sums).with_context(|| format!("cannot read {}", sums.display()))?;
    match sha256_from_sums(&text, file_name) {
        Some(sum) => Ok(Expected::Sha256(sum)),
        None => bail!("{} does not list {file_name}", sums.display()),
    }
}

fn verify(path: &Path, expected: &Expected) -> Result<()> {
    let actual = expected
        .digest_file(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if actual != expected.hex() {
        bail!(
            "{}: {} checksum mismatch: expected {}, got {actual}",
            path.display(),
            expected.name(),
            expected.hex()
        );
    }
    Ok(())
}

/// Downloads `url` to `target` through `target.part`, resuming a partial file when the
/// server supports ranges, retrying transient failures, and renaming only once the
/// checksum matches.
pub fn fetch(url: &str, target: &Path, expected: &Expected, attempts: u32) -> Result<()> {
    if target.is_file() && verify(target, expected).is_ok() {
        tracing::info!(file = %target.display(), "already downloaded");
        return Ok(());
    }
    let part = PathBuf::from(format!("{}.part", target.display()));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut last_err = None;
    let mut restarted = false;
    for attempt in 1..=attempts.max(1) {
        match download_once(&agent, url, &part) {
            Ok(()) => match verify(&part, expected) {
                Ok(()) => {
                    fs::rename(&part, target)
                        .with_context(|| format!("cannot rename to {}", target.display()))?;
                    return Ok(());
                }
                Err(e) => {
                    let _ = fs::remove_file(&part);
                    if restarted {
                        return Err(e);
                    }
                    // A resumed file may have been spliced from a changed upstream: once more
                    // from scratch.
                    tracing::warn!("{e:#}; restarting the download from scratch");
                    restarted = true;
                }
            },
            Err(DownloadError::Fatal(e)) => return Err(e),
            Err(DownloadError::Transient(e)) => {
                tracing::warn!(attempt, "download failed: {e:#}");
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5))));
            }
        }
    }
    let e = last_err.unwrap_or_else(|| anyhow::anyhow!("download failed"));
    Err(e.context(format!(
        "cannot download {url}. No network? Copy the zips from a machine that has one and run \
         `cargo xtask download --from DIR` (or set OMNIGLOT_MIRROR=DIR)"
    )))
}

enum DownloadError {
    Transient(anyhow::Error),
    Fatal(anyhow::Error),
}

fn download_once(agent: &ureq::Agent, url: &str, part: &Path) -> Result<(), DownloadError> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let resp = req
        .call()
        .map_err(|e| DownloadError::Transient(anyhow::Error::new(e)))?;
    let status = resp.status().as_u16();
    let (append, offset) = match status {
        206 => (true, have),
        200 => (false, 0),
        // The partial file is already complete (or larger than the resource).
        416 => return Ok(()),
        s if s >= 500 || s == 429 => {
            return Err(DownloadError::Transient(anyhow::anyhow!(
                "server answered HTTP {s}"
            )));
        }
        s => {
            return Err(DownloadError::Fatal(anyhow::anyhow!(
                "{url}: server answered HTTP {s}"
            )));
        }
    };
    let body = resp.into_body();
    let total = body.content_length().map(|n| n + offset);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(|e| {
            DownloadError::Fatal(anyhow::anyhow!("cannot write {}: {e}", part.display()))
        })?;
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    bar.set_position(offset);
    let mut reader = body.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| DownloadError::Transient(anyhow::Error::new(e)))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(|e| {
            DownloadError::Fatal(anyhow::anyhow!("cannot write {}: {e}", part.display()))
        })?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    file.sync_all().map_err(|e| {
        DownloadError::Fatal(anyhow::anyhow!("cannot write {}: {e}", part.display()))
    })?;
    if let Some(t) = total {
        let got = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if got < t {
            return Err(DownloadError::Transient(anyhow::anyhow!(
                "connection closed after {got} of {t} bytes"
            )));
        }
    }
    Ok(())
}

/// Convenience for checks that do not install anything.
pub fn problems(dest: &Path, kind: SplitKind, expect: Expect) -> Vec<String> {
    split_problems(&dest.join(kind.dir_name()), kind, expect)
}
