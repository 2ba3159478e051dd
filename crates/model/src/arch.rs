//! Architectures as data: saved with the weights so that loading never needs the user to
//! repeat them.

use data::Framing;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// What the embedding passes through before the head compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    None,
    Sigmoid,
    Relu,
    /// `sign(x) (sqrt(|x| + e) - sqrt(e))` with `e` = [`SIGNED_SQRT_EPS`]: the power
    /// normalisation of fine-grained recognition (bilinear pooling, Fisher vectors). It
    /// compresses the large activations that characters of one alphabet share, so that the
    /// distance weighs the small ones that tell them apart more; `e` keeps the slope at 0
    /// finite (`1 / (2 sqrt(e))`).
    #[serde(rename = "signed-sqrt")]
    SignedSqrt,
}

/// The offset of [`Activation::SignedSqrt`]: a slope of 5 at 0, and within 10% of `sqrt` from
/// an activation of 1 up.
pub const SIGNED_SQRT_EPS: f64 = 0.01;

impl std::str::FromStr for Activation {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        from_name(
            s,
            "embedding activation",
            "none, sigmoid, relu or signed-sqrt",
        )
    }
}

/// A unit variant from the name it has in configuration files, so flags and files agree.
fn from_name<T: serde::de::DeserializeOwned>(s: &str, what: &str, expected: &str) -> Result<T> {
    use serde::de::value::{Error, StrDeserializer};
    T::deserialize(StrDeserializer::<Error>::new(s))
        .map_err(|_| ModelError::Arch(format!("unknown {what} `{s}` (expected {expected})")))
}

/// One block: conv (stride 1), bias, optional batch normalisation, ReLU, then an optional 2x2
/// max-pool (floor unless `pool_ceil`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub channels: usize,
    pub kernel: usize,
    pub padding: usize,
    pub pool: bool,
    #[serde(default)]
    pub batch_norm: bool,
    /// Pool an odd-sided map to `ceil(side / 2)`: the last row and column become windows of
    /// their own instead of being dropped (a floor pool of a 5x5 map sees 16 of its 25 cells).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pool_ceil: bool,
    /// Anti-aliased pooling (Zhang 2019): a dense 2x2 max, then a binomial blur
    /// (`blur_filter`, by default [1, 2, 1] x [1, 2, 1] / 16) sampled at stride 2, to the floor
    /// pool's side. A strided max aliases: a stroke moved by a pixel can change which cells
    /// win; the blur keeps the max's selectivity without that. Needs `pool`, excludes
    /// `pool_ceil`, and a map of at least 3x3 (4x4 for the wide filter).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pool_blur: bool,
    /// The blur a `pool_blur` block low-passes with; only written when not the default.
    #[serde(default, skip_serializing_if = "BlurFilter::is_default")]
    pub blur_filter: BlurFilter,
    /// Squeeze-and-excitation channel gates (Hu et al. 2018) on the block's output, with a
    /// bottleneck of `channels / se_reduction` (0: none). Each channel is scaled by a gate
    /// computed from every channel's mean over the map, so a drawing can turn up the part
    /// detectors its other parts make likely; a conv alone sees only a 3x3 neighbourhood.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub se_reduction: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The binomial low-pass filter of an anti-aliased pool (Zhang 2019 calls them Tri-3 and
/// Bin-5): a wider filter removes more of what a stride-2 subsample would alias, at the cost of
/// blurring the map more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlurFilter {
    /// `[1, 2, 1] / 4` per axis.
    #[default]
    #[serde(rename = "tri-3")]
    Tri3,
    /// `[1, 4, 6, 4, 1] / 16` per axis.
    #[serde(rename = "bin-5")]
    Bin5,
}

impl BlurFilter {
    pub const TRI3_TAPS: [f32; 3] = [0.25, 0.5, 0.25];
    pub const BIN5_TAPS: [f32; 5] = [0.0625, 0.25, 0.375, 0.25, 0.0625];

    /// The one-dimensional taps; the 2-D filter is their outer product.
    pub fn taps(self) -> &'static [f32] {
        match self {
            BlurFilter::Tri3 => &Self::TRI3_TAPS,
            BlurFilter::Bin5 => &Self::BIN5_TAPS,
        }
    }

    /// Smallest convolution output the pool accepts: the dense max map (one cell narrower)
    /// must be wide enough to reflect-pad by half the filter.
    pub fn min_side(self) -> usize {
        self.taps().len() / 2 + 2
    }

    fn is_default(&self) -> bool {
        *self == BlurFilter::Tri3
    }
}

impl std::str::FromStr for BlurFilter {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        from_name(s, "blur filter", "tri-3 or bin-5")
    }
}

impl ConvSpec {
    /// Width of the squeeze-and-excitation bottleneck (0 when the block has no gates).
    pub fn se_hidden(&self) -> usize {
        match self.se_reduction {
            0 => 0,
            r => self.channels / r,
        }
    }

    /// Side of the block's output for a convolution output of `conv_side`.
    pub fn pooled_side(&self, conv_side: usize) -> usize {
        match (self.pool, self.pool_ceil) {
            (false, _) => conv_side,
            (true, false) => conv_side / 2,
            (true, true) => conv_side.div_ceil(2),
        }
    }
}

/// How the head compares two embeddings, dimension by dimension, before its weighted sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// `|a - b|` (Koch et al.).
    #[default]
    L1,
    /// `(a - b)^2`: with the head's weights, a learned diagonal Mahalanobis distance, the
    /// squared Euclidean distance prototypical networks use.
    SquaredL2,
}

impl Distance {
    /// One dimension's term for the difference `d = a - b`.
    pub fn of(self, d: f32) -> f32 {
        match self {
            Distance::L1 => d.abs(),
            Distance::SquaredL2 => d * d,
        }
    }

    fn is_l1(&self) -> bool {
        *self == Distance::L1
    }
}

impl std::str::FromStr for Distance {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        from_name(s, "head distance", "l1 or squared-l2")
    }
}

/// What the head computes from the per-dimension comparison of two embeddings. The default is
/// Koch's: one weighted sum of `dist(a_i - b_i)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadSpec {
    /// Width of a ReLU layer between the comparison and the logit (0: none). A weighted sum
    /// treats every dimension's evidence as independent; a hidden layer can weigh
    /// combinations of them.
    pub hidden: usize,
    /// Also compare by the product `a_i * b_i`. The distance is 0 both when two drawings share
    /// a feature and when neither has it; the product tells the two apart, and a rare part
    /// present in both drawings is stronger evidence of one character than its joint absence.
    pub products: bool,
}

impl HeadSpec {
    /// Koch's head: a weighted sum of the distances alone.
    pub fn is_linear(&self) -> bool {
        *self == HeadSpec::default()
    }

    /// Values the head reads per pair, for embeddings of `dim` values.
    pub fn inputs(&self, dim: usize) -> usize {
        if self.products { 2 * dim } else { dim }
    }

    /// Trainable values of the head for embeddings of `dim` values.
    pub fn parameter_count(&self, dim: usize) -> usize {
        let inputs = self.inputs(dim);
        match self.hidden {
            0 => inputs + 1,
            h => inputs * h + h + h + 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    pub name: String,
    /// Side of the square single-channel input.
    pub input_side: usize,
    pub blocks: Vec<ConvSpec>,
    /// Size of the dense embedding layer after the flattened features; 0 means the flattened
    /// features are the embedding.
    pub embedding: usize,
    pub embedding_activation: Activation,
    /// Independent copies of the tower (blocks and embedding layer), their embeddings
    /// concatenated: how an ensemble of separately trained networks is shipped as one network
    /// (see `ensemble::merge`). 1 for a plain network.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub towers: usize,
    /// What the head weighs per dimension of the two embeddings.
    #[serde(default, skip_serializing_if = "Distance::is_l1")]
    pub distance: Distance,
    /// What the head computes from that comparison.
    #[serde(default, skip_serializing_if = "HeadSpec::is_linear")]
    pub head: HeadSpec,
    /// How a drawing is placed in the input frame; every caller that loads images for this
    /// network must use it (training, evaluation, `classify`).
    #[serde(default, skip_serializing_if = "Framing::is_canvas")]
    pub framing: Framing,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// Shape of one block's input and output, worked out from the architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    pub in_channels: usize,
    pub in_side: usize,
    /// Side after the convolution, before pooling.
    pub conv_side: usize,
    pub out_side: usize,
}

impl Arch {
    /// Koch et al.'s network as the PyTorch reference builds it: 1x105x105 -> conv 64@10,
    /// pool -> conv 128@7, pool -> conv 128@4, pool -> conv 256@4 (256x6x6) -> 4096, sigmoid.
    pub fn koch() -> Arch {
        let c = |channels, kernel, pool| ConvSpec {
            channels,
            kernel,
            padding: 0,
            pool,
            batch_norm: false,
            pool_ceil: false,
            pool_blur: false,
            blur_filter: BlurFilter::Tri3,
            se_reduction: 0,
        };
        Arch {
            name: "koch".into(),
            input_side: 105,
            blocks: vec![
                c(64, 10, true),
                c(128, 7, true),
                c(128, 4, true),
                c(256, 4, false),
            ],
            embedding: 4096,
            embedding_activation: Activation::Sigmoid,
            towers: 1,
            distance: Distance::L1,
            head: HeadSpec::default(),
            framing: Framing::Canvas,
        }
    }

    /// A compact network that trains in minutes on a CPU: four blocks of 3x3 conv (padding
    /// 1), ReLU and 2x2 max-pool, `channels` wide, on `side x side` input; the flattened
    /// features are the embedding.
    pub fn conv4(side: usize, channels: usize) -> Arch {
        Arch {
            name: format!("conv4-{side}"),
            input_side: side,
            blocks: vec![
                ConvSpec {
                    channels,
                    kernel: 3,
                    padding: 1,
                    pool: true,
                    batch_norm: false,
                    pool_ceil: false,
                    pool_blur: false,
                    blur_filter: BlurFilter::Tri3,
                    se_reduction: 0,
                };
                4
            ],
            embedding: 0,
            embedding_activation: Activation::None,
            towers: 1,
            distance: Distance::L1,
            head: HeadSpec::default(),
            framing: Framing::Canvas,
        }
    }

    /// `blocks` blocks of 3x3 conv (padding 1), [batch norm,] ReLU and 2x2 max-pool,
    /// `channels` wide.
    pub fn convnet(blocks: usize, side: usize, channels: usize, batch_norm: bool) -> Arch {
        Arch::convnet_widths(side, &vec![channels; blocks], batch_norm)
    }

    /// One block of 3x3 conv (padding 1), [batch norm,] ReLU and 2x2 max-pool per entry of
    /// `widths`, each that many channels wide. Named `convB-S[xC][-bn]`, with C either one
    /// width or every block's width joined by `_` (`conv4-56x64_96_128_256-bn`).
    pub fn convnet_widths(side: usize, widths: &[usize], batch_norm: bool) -> Arch {
        let width = match widths {
            [64, rest @ ..] if rest.iter().all(|&w| w == 64) => String::new(),
            [first, rest @ ..] if rest.iter().all(|w| w == first) => format!("x{first}"),
            _ => {
                let all: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
                format!("x{}", all.join("_"))
            }
        };
        let bn = if batch_norm { "-bn" } else { "" };
        Arch {
            name: format!("conv{}-{side}{width}{bn}", widths.len()),
            input_side: side,
            blocks: widths
                .iter()
                .map(|&channels| ConvSpec {
                    channels,
                    kernel: 3,
                    padding: 1,
                    pool: true,
                    batch_norm,
                    pool_ceil: false,
                    pool_blur: false,
                    blur_filter: BlurFilter::Tri3,
                    se_reduction: 0,
                })
                .collect(),
            embedding: 0,
            embedding_activation: Activation::None,
            towers: 1,
            distance: Distance::L1,
            head: HeadSpec::default(),
            framing: Framing::Canvas,
        }
    }

    /// Looks up a named architecture: `koch`, `conv4` (28x28, 64 channels), or
    /// `convB-S[xC][-bn]`: B blocks on SxS input, C channels (default 64), with batch
    /// normalisation when `-bn` ends the name, e.g. `conv4-56x96-bn`.
    pub fn preset(name: &str) -> Result<Arch> {
        match name {
            "koch" | "reference" => Ok(Arch::koch()),
            "conv4" => Ok(Arch::conv4(28, 64)),
            _ => {
                let (base, bn) = match name.strip_suffix("-bn") {
                    Some(b) => (b, true),
                    None => (name, false),
                };
                let parsed = base.strip_prefix("conv").and_then(|rest| {
                    let (blocks, rest) = rest.split_once('-')?;
                    let blocks: usize = blocks.parse().ok()?;
                    let (side, widths) = match rest.split_once('x') {
                        Some((s, c)) => {
                            let widths = c
                                .split('_')
                                .map(|w| w.parse().ok())
                                .collect::<Option<Vec<usize>>>()?;
                            match widths.len() {
                                1 => (s, vec![widths[0]; blocks]),
                                n if n == blocks => (s, widths),
                                _ => return None,
                            }
                        }
                        None => (rest, vec![64; blocks]),
                    };
                    Some((side.parse().ok()?, widths))
                });
                match parsed {
                    Some((side, widths)) if !widths.is_empty() => {
                        let arch = Arch::convnet_widths(side, &widths, bn);
                        arch.validate()?;
                        Ok(arch)
                    }
                    _ => Err(ModelError::Arch(format!(
                        "unknown architecture `{name}` (expected koch, conv4, or convB-S[xC][-bn] such as conv4-56x96 or conv4-56x64_96_128_256-bn)"
                    ))),
                }
            }
        }
    }

    /// This architecture with anti-aliased pooling (`pool_blur`, low-passing with `filter`) in
    /// every pooling block: the same weights, the same map sizes.
    pub fn with_blur_pools(mut self, filter: BlurFilter) -> Arch {
        for b in self.blocks.iter_mut().filter(|b| b.pool) {
            b.pool_blur = true;
            b.blur_filter = filter;
        }
        self
    }

    /// Per-block shapes; errors if a feature map shrinks to nothing.
    pub fn block_shapes(&self) -> Result<Vec<BlockShape>> {
        let mut channels = 1;
        let mut side = self.input_side;
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            if b.channels == 0 || b.kernel == 0 {
                return Err(ModelError::Arch(format!(
                    "block {i}: zero channels or kernel"
                )));
            }
            let padded = side + 2 * b.padding;
            if padded < b.kernel {
                return Err(ModelError::Arch(format!(
                    "block {i}: a {}x{} kernel does not fit a {side}x{side} input",
                    b.kernel, b.kernel
                )));
            }
            let conv_side = padded - b.kernel + 1;
            let min = b.blur_filter.min_side();
            if b.pool_blur && (!b.pool || b.pool_ceil || conv_side < min) {
                return Err(ModelError::Arch(format!(
                    "block {i}: a blur pool needs `pool`, no `pool_ceil` and a map of at least {min}x{min} (this one is {conv_side}x{conv_side})"
                )));
            }
            if !b.pool_blur && !b.blur_filter.is_default() {
                return Err(ModelError::Arch(format!(
                    "block {i}: `blur_filter` is set but `pool_blur` is off"
                )));
            }
            if b.se_reduction > 0 && b.se_hidden() == 0 {
                return Err(ModelError::Arch(format!(
                    "block {i}: `se_reduction` {} leaves no gate units for {} channels",
                    b.se_reduction, b.channels
                )));
            }
            let out_side = b.pooled_side(conv_side);
            if out_side == 0 {
                return Err(ModelError::Arch(format!(
                    "block {i}: pooling a {conv_side}x{conv_side} map leaves nothing"
                )));
            }
            out.push(BlockShape {
                in_channels: channels,
                in_side: side,
                conv_side,
                out_side,
            });
            channels = b.channels;
            side = out_side;
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<()> {
        if self.input_side == 0 || self.blocks.is_empty() || self.towers == 0 {
            return Err(ModelError::Arch(
                "needs an input side, at least one block and at least one tower".into(),
            ));
        }
        self.framing.validate().map_err(ModelError::Arch)?;
        self.block_shapes().map(|_| ())
    }

    /// Length of the flattened output of one tower's last block.
    pub fn features(&self) -> Result<usize> {
        let shapes = self.block_shapes()?;
        let last = shapes.last().expect("validated non-empty");
        let channels = self.blocks.last().expect("non-empty").channels;
        Ok(channels * last.out_side * last.out_side)
    }

    /// Length of one tower's embedding.
    pub fn tower_dim(&self) -> Result<usize> {
        if self.embedding > 0 {
            Ok(self.embedding)
        } else {
            self.features()
        }
    }

    /// Length of the embedding the head compares (all towers).
    pub fn embedding_dim(&self) -> Result<usize> {
        Ok(self.towers * self.tower_dim()?)
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> Result<usize> {
        let shapes = self.block_shapes()?;
        let conv: usize = self
            .blocks
            .iter()
            .zip(&shapes)
            .map(|(b, s)| {
                let bn = if b.batch_norm { 2 * b.channels } else { 0 };
                let h = b.se_hidden();
                let se = if h > 0 {
                    2 * h * b.channels + h + b.channels
                } else {
                    0
                };
                b.channels * s.in_channels * b.kernel * b.kernel + b.channels + bn + se
            })
            .sum();
        let features = self.features()?;
        let dense = if self.embedding > 0 {
            features * self.embedding + self.embedding
        } else {
            0
        };
        Ok(self.towers * (conv + dense) + self.head.parameter_count(self.embedding_dim()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn koch_shapes_and_parameter_count() {
        let a = Arch::koch();
        let s = a.block_shapes().unwrap();
        assert_eq!(
            s.iter()
                .map(|b| (b.conv_side, b.out_side))
                .collect::<Vec<_>>(),
            vec![(96, 48), (42, 21), (18, 9), (6, 6)]
        );
        assert_eq!(a.features().unwrap(), 256 * 6 * 6);
        assert_eq!(a.embedding_dim().unwrap(), 4096);
        // conv: 6464 + 401536 + 262272 + 524544; fc: 9216*4096+4096; head: 4097
        assert_eq!(a.parameter_count().unwrap(), 38_951_745);
    }

    #[test]
    fn conv4_28_shapes() {
        let a = Arch::conv4(28, 64);
        let sides: Vec<usize> = a
            .block_shapes()
            .unwrap()
            .iter()
            .map(|b| b.out_side)
            .collect();
        assert_eq!(sides, vec![14, 7, 3, 1]);
        assert_eq!(a.embedding_dim().unwrap(), 64);
        assert_eq!(
            a.parameter_count().unwrap(),
            (64 * 9 + 64) + 3 * (64 * 64 * 9 + 64) + 65
        );
    }

    #[test]
    fn impossible_architectures_are_rejected() {
        assert!(Arch::conv4(8, 4).validate().is_err()); // 8 -> 4 -> 2 -> 1 -> 0
        assert!(Arch::preset("conv4-8").is_err());
        assert!(Arch::preset("resnet").is_err());
        assert_eq!(Arch::preset("conv4-56").unwrap().input_side, 56);
        let a = Arch::preset("conv5-56x96").unwrap();
        assert_eq!(
            (a.blocks.len(), a.input_side, a.blocks[0].channels),
            (5, 56, 96)
        );
        assert_eq!(a.name, "conv5-56x96");
        assert_eq!(Arch::preset("conv4-28").unwrap(), Arch::conv4(28, 64));
        assert!(Arch::preset("conv0-28").is_err());
        assert!(Arch::preset("conv4-28xq").is_err());
        assert!(Arch::preset("conv4-28x64_96").is_err()); // 2 widths for 4 blocks
        assert!(Arch::preset("conv2-28x64__96").is_err());
        let wide = Arch::preset("conv4-56x64_96_128_256-bn").unwrap();
        assert_eq!(
            wide.blocks.iter().map(|b| b.channels).collect::<Vec<_>>(),
            vec![64, 96, 128, 256]
        );
        assert_eq!(wide.name, "conv4-56x64_96_128_256-bn");
        assert_eq!(wide.features().unwrap(), 256 * 3 * 3);
        // conv+bn per block, then the 2304 -> 1 head
        assert_eq!(
            wide.parameter_count().unwrap(),
            (9 * 64 + 64 + 128)
                + (64 * 9 * 96 + 96 + 192)
                + (96 * 9 * 128 + 128 + 256)
                + (128 * 9 * 256 + 256 + 512)
                + 2304
                + 1
        );
        assert_eq!(
            Arch::preset("conv4-56x64_64_64_64-bn").unwrap().name,
            "conv4-56-bn"
        );
        let bn = Arch::preset("conv4-56x32-bn").unwrap();
        assert!(bn.blocks.iter().all(|b| b.batch_norm));
        assert_eq!(bn.name, "conv4-56x32-bn");
        assert_eq!(
            bn.parameter_count().unwrap(),
            Arch::preset("conv4-56x32")
                .unwrap()
                .parameter_count()
                .unwrap()
                + 4 * 2 * 32
        );
    }

    #[test]
    fn framing_is_saved_only_when_it_is_not_the_canvas() {
        let canvas = Arch::conv4(28, 8);
        let json = serde_json::to_string(&canvas).unwrap();
        // Checkpoints written before framing existed read back as canvas.
        assert!(!json.contains("framing"), "{json}");
        let boxed = Arch {
            framing: Framing::ink_box(),
            ..canvas
        };
        let json = serde_json::to_string(&boxed).unwrap();
        assert!(json.contains(r#""framing":{"kind":"ink-box","fill":0.8,"min_side":35}"#));
        assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), boxed);
        let stroked = Arch {
            framing: Framing::ink_box_stroke(),
            ..Arch::conv4(28, 8)
        };
        let json = serde_json::to_string(&stroked).unwrap();
        assert!(json.contains(r#""min_side":35,"stroke":2.5}"#), "{json}");
        assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), stroked);
        let bad = Arch {
            framing: Framing::InkBox {
                fill: 0.8,
                min_side: 0,
                stroke: None,
                spread: None,
            },
            ..Arch::conv4(28, 8)
        };
        assert!(bad.validate().unwrap_err().to_string().contains("min_side"));
    }
}
