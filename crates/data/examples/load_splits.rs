//! Loads both Omniglot splits and prints the time taken:
//! `cargo run --release -p data --example load_splits -- data/omniglot 28`
use std::time::Instant;

fn main() -> Result<(), data::DataError> {
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or_else(|| "data/omniglot".into());
    let side: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(105);
    let t = Instant::now();
    let mut n = 0;
    for kind in data::SplitKind::ALL {
        let index = data::SplitIndex::scan_split(&root, kind)?;
        n += data::ImageStore::load(&index, side)?.len();
    }
    println!(
        "loaded {n} images at {side}x{side} in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
