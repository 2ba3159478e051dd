//! A whole split decoded into memory: one byte of ink intensity per pixel at a chosen side
//! length, plus the alphabet / character / drawer of every image.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::NATIVE_SIDE;
use crate::error::{DataError, Result};
use crate::framing::Framing;
use crate::image_io::decode_omniglot_ink;
use crate::index::SplitIndex;
use crate::resample::Resampler;

/// Index of an image in an [`ImageStore`].
pub type ImageId = u32;

#[derive(Clone, Debug)]
pub struct AlphabetInfo {
    pub name: String,
    /// Global character indices belonging to this alphabet.
    pub characters: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct CharacterInfo {
    /// Folder name, e.g. `character07`.
    pub name: String,
    pub alphabet: u32,
    /// Images of this character, sorted by drawer.
    pub images: Vec<ImageId>,
}

/// Decoded images of one split. Pixels are `u8` ink intensity (255 = ink) so that the 32,460
/// Omniglot images fit in 25 MB at 28x28 (360 MB at the native 105x105).
#[derive(Clone, Debug)]
pub struct ImageStore {
    side: usize,
    framing: Framing,
    pixels: Vec<u8>,
    image_character: Vec<u32>,
    image_drawer: Vec<u8>,
    image_path: Vec<Option<PathBuf>>,
    characters: Vec<CharacterInfo>,
    alphabets: Vec<AlphabetInfo>,
}

fn quantize(v: f32) -> u8 {
    // Not `round()`: that is a libm call, and this runs for every pixel of the dataset.
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

impl ImageStore {
    /// Decodes every drawing of `index` in parallel, area-resampled to `side x side`.
    pub fn load(index: &SplitIndex, side: usize) -> Result<Self> {
        Self::load_framed(index, side, Framing::Canvas)
    }

    /// Decodes every drawing of `index` in parallel, framed and area-resampled to
    /// `side x side`.
    pub fn load_framed(index: &SplitIndex, side: usize, framing: Framing) -> Result<Self> {
        if side == 0 {
            return Err(DataError::Config("image side must be positive".into()));
        }
        framing.validate().map_err(DataError::Config)?;
        let drawings: Vec<_> = index.drawings().collect();
        let n = side * side;
        let resampler = Resampler::new(NATIVE_SIDE, NATIVE_SIDE, side, side);
        let mut pixels = vec![0u8; drawings.len() * n];
        pixels
            .par_chunks_mut(n)
            .zip(drawings.par_iter())
            .try_for_each(|(out, (_, _, d))| -> Result<()> {
                let bytes = std::fs::read(&d.path).map_err(|e| DataError::io(&d.path, e))?;
                let ink = decode_omniglot_ink(&bytes, &d.path)?;
                if side == NATIVE_SIDE && framing.is_canvas() {
                    out.copy_from_slice(&ink);
                } else {
                    let src: Vec<f32> = ink.iter().map(|&v| v as f32 / 255.0).collect();
                    let dst = if framing.is_canvas() {
                        let mut dst = vec![0f32; n];
                        resampler.run(&src, &mut dst);
                        dst
                    } else {
                        framing.apply(&src, side)
                    };
                    for (o, v) in out.iter_mut().zip(dst) {
                        *o = quantize(v);
                    }
                }
                Ok(())
            })?;
        let mut builder = StoreBuilder::new(side);
        builder.store.pixels = pixels;
        builder.store.framing = framing;
        let mut it = drawings.iter();
        for a in &index.alphabets {
            let alphabet = builder.alphabet(&a.name);
            for c in &a.characters {
                let character = builder.character(alphabet, &c.name);
                for _ in &c.drawings {
                    let (_, _, d) = it.next().expect("one decoded image per drawing");
                    builder.push_meta(character, d.drawer, Some(d.path.clone()));
                }
            }
        }
        let store = builder.finish();
        tracing::debug!(
            images = store.len(),
            side,
            root = %index.root.display(),
            "loaded split"
        );
        Ok(store)
    }

    pub fn side(&self) -> usize {
        self.side
    }

    /// How the drawings were placed in the frame when they were loaded.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn len(&self) -> usize {
        self.image_character.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_character.is_empty()
    }

    pub fn alphabets(&self) -> &[AlphabetInfo] {
        &self.alphabets
    }

    pub fn characters(&self) -> &[CharacterInfo] {
        &self.characters
    }

    pub fn character_of(&self, id: ImageId) -> u32 {
        self.image_character[id as usize]
    }

    pub fn alphabet_of(&self, id: ImageId) -> u32 {
        self.characters[self.character_of(id) as usize].alphabet
    }

    pub fn drawer_of(&self, id: ImageId) -> u8 {
        self.image_drawer[id as usize]
    }

    pub fn path_of(&self, id: ImageId) -> Option<&std::path::Path> {
        self.image_path[id as usize].as_deref()
    }

    /// `alphabet/character/drawer` for messages and reports.
    pub fn describe(&self, id: ImageId) -> String {
        let c = &self.characters[self.character_of(id) as usize];
        format!(
            "{}/{}/drawer{:02}",
            self.alphabets[c.alphabet as usize].name,
            c.name,
            self.drawer_of(id)
        )
    }

    /// The image of `character` drawn by `drawer`, if that drawing exists.
    pub fn image_of(&self, character: u32, drawer: u8) -> Option<ImageId> {
        self.characters[character as usize]
            .images
            .iter()
            .copied()
            .find(|&id| self.image_drawer[id as usize] == drawer)
    }

    /// Raw ink bytes of an image (`side * side`, 255 = ink).
    pub fn pixels(&self, id: ImageId) -> &[u8] {
        let n = self.side * self.side;
        &self.pixels[id as usize * n..(id as usize + 1) * n]
    }

    /// Writes an image as `f32` ink values in `[0, 1]` into `out`.
    pub fn write_f32(&self, id: ImageId, out: &mut [f32]) {
        for (o, &p) in out.iter_mut().zip(self.pixels(id)) {
            *o = p as f32 / 255.0;
        }
    }

    pub fn image_f32(&self, id: ImageId) -> Vec<f32> {
        let mut out = vec![0.0; self.side * self.side];
        self.write_f32(id, &mut out);
        out
    }

    /// A batch `[ids.len(), 1, side, side]` of `f32` images.
    pub fn batch_f32(&self, ids: &[ImageId]) -> Vec<f32> {
        let n = self.side * self.side;
        let mut out = vec![0.0; ids.len() * n];
        out.par_chunks_mut(n)
            .zip(ids.par_iter())
            .for_each(|(o, &id)| self.write_f32(id, o));
        out
    }

    /// A copy of this store at another side length (area resampling from this store's pixels).
    pub fn resized(&self, side: usize) -> ImageStore {
        if side == self.side {
            return self.clone();
        }
        let n = side * side;
        let resampler = Resampler::new(self.side, self.side, side, side);
        let mut pixels = vec![0u8; self.len() * n];
        pixels.par_chunks_mut(n).enumerate().for_each(|(id, out)| {
            let src = self.image_f32(id as ImageId);
            let mut dst = vec![0.0; n];
            resampler.run(&src, &mut dst);
            for (o, v) in out.iter_mut().zip(dst) {
                *o = quantize(v);
            }
        });
        ImageStore {
            side,
            pixels,
            ..self.clone()
        }
    }
}

/// Builds a store image by image (used by the loader and by synthetic fixtures).
pub struct StoreBuilder {
    store: ImageStore,
}

impl StoreBuilder {
    /// Images pushed are taken as framed by `framing` (`new` takes them as whole canvases).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.store.framing = framing;
        self
    }

    pub fn new(side: usize) -> Self {
        StoreBuilder {
            store: ImageStore {
                side,
                framing: Framing::Canvas,
                pixels: Vec::new(),
                image_character: Vec::new(),
                image_drawer: Vec::new(),
                image_path: Vec::new(),
                characters: Vec::new(),
                alphabets: Vec::new(),
            },
        }
    }

    pub fn alphabet(&mut self, name: &str) -> u32 {
        self.store.alphabets.push(AlphabetInfo {
            name: name.to_string(),
            characters: Vec::new(),
        });
        (self.store.alphabets.len() - 1) as u32
    }

    pub fn character(&mut self, alphabet: u32, name: &str) -> u32 {
        let id = self.store.characters.len() as u32;
        self.store.characters.push(CharacterInfo {
            name: name.to_string(),
            alphabet,
            images: Vec::new(),
        });
        self.store.alphabets[alphabet as usize].characters.push(id);
        id
    }

    /// Adds an image given as `f32` ink values of `side * side`.
    pub fn push(&mut self, character: u32, drawer: u8, ink: &[f32], path: Option<PathBuf>) {
        self.push_u8(
            character,
            drawer,
            ink.iter().map(|&v| quantize(v)).collect(),
            path,
        );
    }

    fn push_u8(&mut self, character: u32, drawer: u8, pixels: Vec<u8>, path: Option<PathBuf>) {
        assert_eq!(
            pixels.len(),
            self.store.side * self.store.side,
            "image size"
        );
        self.store.pixels.extend_from_slice(&pixels);
        self.push_meta(character, drawer, path);
    }

    /// Records an image whose pixels are already in place.
    fn push_meta(&mut self, character: u32, drawer: u8, path: Option<PathBuf>) {
        let s = &mut self.store;
        let id = s.image_character.len() as ImageId;
        s.image_character.push(character);
        s.image_drawer.push(drawer);
        s.image_path.push(path);
        s.characters[character as usize].images.push(id);
    }

    pub fn finish(mut self) -> ImageStore {
        let drawers = std::mem::take(&mut self.store.image_drawer);
        for c in &mut self.store.characters {
            c.images.sort_by_key(|&id| drawers[id as usize]);
        }
        self.store.image_drawer = drawers;
        self.store
    }
}
