use data::{Framing, ImageStore, Protocol, SplitIndex, SplitKind};
use eval::session::{Baseline, Session};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let index =
        SplitIndex::scan_split(std::path::Path::new("data/omniglot"), SplitKind::Background)?;
    let names: Vec<String> = data::split::STRATIFIED_VALIDATION
        .map(String::from)
        .to_vec();
    for framing in [
        Framing::Canvas,
        Framing::ink_box(),
        Framing::InkBox {
            fill: 0.9,
            min_side: 1,
        },
    ] {
        let store = ImageStore::load_framed(&index, 105, framing)?;
        for b in [Baseline::Pixel, Baseline::Mhd] {
            let mut s = Session::from_baseline(b, store.clone(), SplitKind::Background)?;
            s.restrict_to_alphabets(&names)?;
            for p in [Protocol::WithinAlphabet, Protocol::Random] {
                let (r, _) = s.sampled(p, 20, 1000, 99)?;
                println!("{framing:?} {b:?} {p:?}: {:?}", r.overall);
            }
        }
    }
    Ok(())
}
