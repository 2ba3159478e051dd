//! The README's "Use from Rust" code, compiled. `cargo test` builds every example, and
//! `tests/readme.rs` holds the README's `rust` block to the lines between the markers below, so
//! a change of the library API that would leave the README wrong fails the tests instead.
//!
//! Running it needs the drawings it names (`query.png`, `a.png`, `b.png`, `alpha.png`,
//! `beta.png`) in the current folder: `cargo run --release -p cli --example readme_api`.
#![allow(unused_variables)]

// The README's layout, not rustfmt's, is what the test compares.
#[rustfmt::skip]
fn main() -> anyhow::Result<()> {
    // README begins
    let path = std::path::Path::new("models/default.safetensors");
    let turns = train::checkpoint::paired_turns(path)?; // 4 for the shipped model
    let matcher = eval::Matcher::open(path, &model::Device::Cpu)?.with_turns(turns)?;
    let query = matcher.load_image("query.png".as_ref())?; // any size: binarised and framed
    let candidates = vec![matcher.load_image("a.png".as_ref())?, matcher.load_image("b.png".as_ref())?];
    let choice = matcher.classify(&query, &candidates)?; // .index, .tied, .logits
    let p_same = matcher.same_probability(&query, &candidates[0])?;
    let embeddings = matcher.embed(&candidates)?; // upright; head_host()?.logit(a, b) compares two
    let why = matcher.explain_pair(&query, &candidates[0], eval::explain::Occlusion::for_side(matcher.input_side()))?;
    // why.heat_a / why.heat_b: the logit each pixel's ink is worth (what `verify --explain` draws)

    let mut gallery = eval::Gallery::new(); // what `recognize` does: labels with one or more examples
    gallery.add("alpha", matcher.load_image("alpha.png".as_ref())?);
    gallery.add("beta", matcher.load_image("beta.png".as_ref())?);
    let found = matcher.recognize(&gallery, &[query], |_done| {})?; // one Recognition per query
    println!("{} (margin {:?})", gallery.labels()[found[0].best], found[0].margin());
    // README ends
    Ok(())
}
