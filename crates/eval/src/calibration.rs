//! Whether `sigmoid(logit)` means what `verify` says it means: the reliability of a model's
//! same/different probabilities on scored pairs, and Platt scaling fitted to such pairs.
//!
//! N-way trials only rank candidates, so an objective that only ranks them (softmax
//! cross-entropy over an episode) leaves the logits' offset, and partly their scale, free: its
//! 0.5 need not separate same from different. Platt scaling, `sigmoid(scale * logit +
//! offset)`, fixes that without changing any ranking (`scale > 0`); the model crate folds it
//! into the head (`SiameseNet::rescale_head`).

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::plot::{Chart, Series, write_chart};
use crate::stats::{Z95, wilson};

/// The metadata key of a model file that holds its [`Record`].
pub const METADATA_KEY: &str = "calibration";

/// One scored pair: the model's logit and whether the two images show the same character.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredPair {
    pub logit: f32,
    pub same: bool,
}

/// `sigmoid(scale * logit + offset)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub scale: f64,
    pub offset: f64,
}

impl Platt {
    pub const IDENTITY: Platt = Platt {
        scale: 1.0,
        offset: 0.0,
    };

    pub fn probability(&self, logit: f32) -> f64 {
        sigmoid(self.scale * logit as f64 + self.offset)
    }

    /// `self` followed by `after`: one rescaling of the original logits.
    pub fn then(self, after: Platt) -> Platt {
        Platt {
            scale: after.scale * self.scale,
            offset: after.scale * self.offset + after.offset,
        }
    }

    /// The maximum-likelihood fit on `pairs` (Platt 1999, with the regularised targets
    /// `(n+ + 1) / (n+ + 2)` and `1 / (n- + 2)` that keep it finite on separable pairs; Newton
    /// steps with a backtracking line search, after Lin, Lin & Weng 2007).
    pub fn fit(pairs: &[ScoredPair]) -> Result<Platt> {
        let positives = pairs.iter().filter(|p| p.same).count();
        let negatives = pairs.len() - positives;
        if positives == 0 || negatives == 0 {
            return Err(EvalError::Invalid(format!(
                "calibration needs same and different pairs, got {positives} same and {negatives} different"
            )));
        }
        if let Some(bad) = pairs.iter().find(|p| !p.logit.is_finite()) {
            return Err(EvalError::Invalid(format!(
                "calibration needs finite logits, got {}",
                bad.logit
            )));
        }
        let high = (positives as f64 + 1.0) / (positives as f64 + 2.0);
        let low = 1.0 / (negatives as f64 + 2.0);
        let data: Vec<(f64, f64)> = pairs
            .iter()
            .map(|p| (p.logit as f64, if p.same { high } else { low }))
            .collect();
        let loss = |a: f64, b: f64| -> f64 {
            data.iter()
                .map(|&(s, t)| {
                    let z = a * s + b;
                    softplus(z) - t * z
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut value = loss(a, b);
        for _ in 0..100 {
            // Gradient and Hessian of the loss in (a, b); a tiny ridge keeps it invertible.
            let (mut g1, mut g2) = (0.0, 0.0);
            let (mut h11, mut h22, mut h12) = (1e-12, 1e-12, 0.0);
            for &(s, t) in &data {
                let p = sigmoid(a * s + b);
                let d = p * (1.0 - p);
                g1 += (p - t) * s;
                g2 += p - t;
                h11 += d * s * s;
                h22 += d;
                h12 += d * s;
            }
            if g1.abs() < 1e-7 * data.len() as f64 && g2.abs() < 1e-7 * data.len() as f64 {
                break;
            }
            let det = h11 * h22 - h12 * h12;
            let da = -(h22 * g1 - h12 * g2) / det;
            let db = -(h11 * g2 - h12 * g1) / det;
            let slope = g1 * da + g2 * db;
            let mut step = 1.0;
            while step >= 1e-10 {
                let (na, nb) = (a + step * da, b + step * db);
                let candidate = loss(na, nb);
                if candidate <= value + 1e-4 * step * slope {
                    (a, b, value) = (na, nb, candidate);
                    break;
                }
                step /= 2.0;
            }
            if step < 1e-10 {
                break;
            }
        }
        if !(a.is_finite() && b.is_finite()) || a <= 0.0 {
            return Err(EvalError::Invalid(format!(
                "the fitted scale is {a:.4}: this model's logits do not rank same pairs above \
                 different ones, so no calibration can make them probabilities"
            )));
        }
        Ok(Platt {
            scale: a,
            offset: b,
        })
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// One probability bin of a reliability diagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// `[low, high)` (the last bin includes 1).
    pub low: f64,
    pub high: f64,
    pub pairs: usize,
    pub same: usize,
    /// Mean predicted probability of the bin's pairs.
    pub mean_probability: f64,
}

impl Bin {
    /// Fraction of the bin's pairs that are the same character.
    pub fn observed(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.same as f64 / self.pairs as f64
        }
    }
}

/// How well probabilities match outcomes on a set of pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    pub pairs: usize,
    pub same: usize,
    /// Pairs that `p >= 0.5` gets right (what `verify`'s verdict gets right).
    pub accuracy: f64,
    /// Mean negative log-likelihood (nats).
    pub log_loss: f64,
    /// Mean squared error of the probability.
    pub brier: f64,
    /// Expected calibration error: the pair-weighted mean `|observed - predicted|` over the
    /// bins.
    pub ece: f64,
    pub bins: Vec<Bin>,
}

impl Reliability {
    /// `pairs` under `platt`, in `bins` equal-width probability bins.
    pub fn measure(pairs: &[ScoredPair], platt: Platt, bins: usize) -> Reliability {
        let bins = bins.max(1);
        let mut out: Vec<Bin> = (0..bins)
            .map(|i| Bin {
                low: i as f64 / bins as f64,
                high: (i + 1) as f64 / bins as f64,
                pairs: 0,
                same: 0,
                mean_probability: 0.0,
            })
            .collect();
        let (mut right, mut nll, mut brier) = (0usize, 0.0, 0.0);
        for pair in pairs {
            let z = platt.scale * pair.logit as f64 + platt.offset;
            let p = sigmoid(z);
            let y = if pair.same { 1.0 } else { 0.0 };
            right += usize::from((p >= 0.5) == pair.same);
            nll += softplus(z) - y * z;
            brier += (p - y) * (p - y);
            let bin = &mut out[((p * bins as f64) as usize).min(bins - 1)];
            bin.pairs += 1;
            bin.same += usize::from(pair.same);
            bin.mean_probability += p;
        }
        for bin in &mut out {
            if bin.pairs > 0 {
                bin.mean_probability /= bin.pairs as f64;
            }
        }
        let n = pairs.len().max(1) as f64;
        let ece = out
            .iter()
            .map(|b| b.pairs as f64 * (b.observed() - b.mean_probability).abs())
            .sum::<f64>()
            / n;
        Reliability {
            pairs: pairs.len(),
            same: pairs.iter().filter(|p| p.same).count(),
            accuracy: right as f64 / n,
            log_loss: nll / n,
            brier: brier / n,
            ece,
            bins: out,
        }
    }
}

/// What a model file records of its calibration (metadata key [`METADATA_KEY`]), so that
/// `verify` can say what its probability was fitted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The rescaling folded into the head (the logits in the file are already calibrated).
    pub platt: Platt,
    /// `images_background` or `images_evaluation`.
    pub split: String,
    /// The alphabets the pairs came from (empty: the whole split).
    pub alphabets: Vec<String>,
    /// Protocols the pairs were drawn under (each pair: a 2-way trial's query against its two
    /// candidates, one the same character by another drawer, one not).
    pub protocols: Vec<String>,
    pub pairs: usize,
    pub seed: u64,
    /// The paired turns the logits were averaged over.
    pub turns: usize,
    pub mirror_pairs: bool,
}

impl Record {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a calibration record serializes")
    }

    pub fn from_json(text: &str) -> Result<Record> {
        serde_json::from_str(text)
            .map_err(|e| EvalError::Invalid(format!("bad calibration metadata: {e}")))
    }

    /// The record in a model file's metadata, if it has one.
    pub fn from_metadata(
        metadata: &std::collections::HashMap<String, String>,
    ) -> Result<Option<Record>> {
        metadata
            .get(METADATA_KEY)
            .map(|text| Record::from_json(text))
            .transpose()
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        let scope = if self.alphabets.is_empty() {
            self.split.clone()
        } else {
            format!("{} alphabets of {}", self.alphabets.len(), self.split)
        };
        format!(
            "calibrated on {} pairs of {scope} ({}), {} turn{}",
            self.pairs,
            self.protocols.join(" + "),
            self.turns,
            if self.turns == 1 { "" } else { "s" }
        )
    }
}

/// Row and legend names of `calibrate`'s two sets of probabilities.
pub const AS_GIVEN: &str = "as the model gives them";
pub const SCALED: &str = "Platt-scaled";

/// What `calibrate --plot P` writes to `P.json` besides the figures' provenance, enough to
/// redraw its diagram.
#[derive(Clone, Debug, Deserialize)]
pub struct DiagramData {
    /// The diagram's title (absent in files written before 2026-12-06).
    #[serde(default)]
    pub title: Option<String>,
    pub before: Reliability,
    pub after: Reliability,
}

impl DiagramData {
    /// Redraws the diagram `calibrate` drew from these figures.
    pub fn write(
        &self,
        png: Option<&std::path::Path>,
        svg: Option<&std::path::Path>,
    ) -> Result<()> {
        write_reliability_diagram(
            self.title.as_deref().unwrap_or("Reliability"),
            &[(AS_GIVEN, &self.before), (SCALED, &self.after)],
            png,
            svg,
        )
    }
}

/// A reliability diagram: observed frequency of same pairs against the predicted probability,
/// one line per named measurement, with 95% Wilson bars and the diagonal of perfect calibration.
pub fn write_reliability_diagram(
    title: &str,
    measured: &[(&str, &Reliability)],
    png: Option<&std::path::Path>,
    svg: Option<&std::path::Path>,
) -> Result<()> {
    let mut series = vec![Series::guide(
        "perfectly calibrated",
        vec![(0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)],
    )];
    for (name, r) in measured {
        series.push(Series::line(
            format!(
                "{name} (ECE {:.3}, accuracy {:.1}%)",
                r.ece,
                100.0 * r.accuracy
            ),
            r.bins
                .iter()
                .filter(|b| b.pairs > 0)
                .map(|b| {
                    let (lo, hi) = wilson(b.same, b.pairs, Z95);
                    (b.mean_probability, b.observed(), lo, hi)
                })
                .collect(),
        ));
    }
    let chart = Chart {
        title,
        x_label: "predicted p(same character)",
        y_label: "observed fraction of same pairs",
        series: &series,
        y_range: Some(0.0..1.0),
        x_range: None,
        x_ticks: None,
    };
    write_chart(&chart, png, svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(logit: f32, same: bool) -> ScoredPair {
        ScoredPair { logit, same }
    }

    #[test]
    fn reliability_by_hand() {
        // Identity: p = sigmoid(logit). sigmoid(0) = 0.5 counts as "same".
        let pairs = [
            pair(0.0, true),
            pair(0.0, false),
            pair(2.0, true),
            pair(-2.0, true),
        ];
        let r = Reliability::measure(&pairs, Platt::IDENTITY, 2);
        assert_eq!((r.pairs, r.same), (4, 3));
        // Right: (0, same), (2, same); wrong: (0, different), (-2, same).
        assert!((r.accuracy - 0.5).abs() < 1e-12);
        let s2 = 1.0 / (1.0 + (-2.0f64).exp()); // 0.8808
        // -ln 0.5 twice; (2, same): -ln(s2); (-2, same): -ln(sigmoid(-2)) = -ln(1 - s2).
        let nll = (2.0 * 2f64.ln() - s2.ln() - (1.0 - s2).ln()) / 4.0;
        assert!((r.log_loss - nll).abs() < 1e-9, "{} vs {nll}", r.log_loss);
        let brier = (0.25 + 0.25 + (1.0 - s2).powi(2) + s2.powi(2)) / 4.0;
        assert!((r.brier - brier).abs() < 1e-12);
        // Bins [0, .5): the -2 pair (p = 0.1192, same); [.5, 1]: 0.5, 0.5, 0.8808 (2 of 3 same).
        assert_eq!((r.bins[0].pairs, r.bins[0].same), (1, 1));
        assert_eq!((r.bins[1].pairs, r.bins[1].same), (3, 2));
        let mean_hi = (0.5 + 0.5 + s2) / 3.0;
        assert!((r.bins[1].mean_probability - mean_hi).abs() < 1e-12);
        let ece = (1.0 * (1.0 - (1.0 - s2)) + 3.0 * (2.0 / 3.0 - mean_hi).abs()) / 4.0;
        assert!((r.ece - ece).abs() < 1e-12, "{} vs {ece}", r.ece);
    }

    #[test]
    fn platt_recovers_a_known_rescaling() {
        // Logits whose true probability is sigmoid(0.5 * logit - 3): the fit should find about
        // (0.5, -3). Outcomes are laid out deterministically at their exact frequency.
        let mut pairs = Vec::new();
        for step in 0..=40 {
            let logit = -4.0 + 0.5 * step as f32 + 6.0;
            let p = sigmoid(0.5 * logit as f64 - 3.0);
            let same = (p * 200.0).round() as usize;
            pairs.extend((0..200).map(|i| pair(logit, i < same)));
        }
        let fit = Platt::fit(&pairs).unwrap();
        assert!((fit.scale - 0.5).abs() < 0.01, "{fit:?}");
        assert!((fit.offset + 3.0).abs() < 0.05, "{fit:?}");
        // The fitted probabilities beat the raw ones on every measure.
        let (raw, cal) = (
            Reliability::measure(&pairs, Platt::IDENTITY, 10),
            Reliability::measure(&pairs, fit, 10),
        );
        assert!(cal.log_loss < raw.log_loss && cal.ece < raw.ece && cal.accuracy > raw.accuracy);
        assert!(cal.ece < 0.01, "{cal:?}");
    }

    #[test]
    fn platt_is_finite_on_separable_pairs_and_refuses_what_it_cannot_fit() {
        let separable: Vec<ScoredPair> = (0..50).map(|i| pair(i as f32 / 10.0, i >= 25)).collect();
        let fit = Platt::fit(&separable).unwrap();
        assert!(fit.scale.is_finite() && fit.scale > 0.0 && fit.offset.is_finite());
        assert!(Reliability::measure(&separable, fit, 10).accuracy == 1.0);
        let err = Platt::fit(&[pair(1.0, true), pair(2.0, true)]).unwrap_err();
        assert!(err.to_string().contains("2 same and 0 different"), "{err}");
        let reversed: Vec<ScoredPair> = (0..50).map(|i| pair(i as f32 / 10.0, i < 25)).collect();
        let err = Platt::fit(&reversed).unwrap_err().to_string();
        assert!(err.contains("do not rank same pairs above"), "{err}");
        let err = Platt::fit(&[pair(f32::NAN, true), pair(0.0, false)]).unwrap_err();
        assert!(err.to_string().contains("finite logits"), "{err}");
    }

    #[test]
    fn rescalings_compose_in_order() {
        let (first, second) = (
            Platt {
                scale: 2.0,
                offset: 1.0,
            },
            Platt {
                scale: 0.5,
                offset: -3.0,
            },
        );
        let both = first.then(second);
        for logit in [-4.0f32, 0.0, 2.5] {
            let step = first.scale * logit as f64 + first.offset;
            let by_hand = second.scale * step + second.offset;
            assert!((both.scale * logit as f64 + both.offset - by_hand).abs() < 1e-12);
        }
        assert_eq!(Platt::IDENTITY.then(second), second);
    }

    #[test]
    fn records_round_trip_and_describe_themselves() {
        let r = Record {
            platt: Platt {
                scale: 0.75,
                offset: -2.0,
            },
            split: "images_background".into(),
            alphabets: vec!["Sanskrit".into(), "Armenian".into()],
            protocols: vec!["within-alphabet".into(), "random".into()],
            pairs: 8000,
            seed: 3,
            turns: 4,
            mirror_pairs: false,
        };
        assert_eq!(Record::from_json(&r.to_json()).unwrap(), r);
        let mut metadata = std::collections::HashMap::new();
        assert_eq!(Record::from_metadata(&metadata).unwrap(), None);
        metadata.insert(METADATA_KEY.to_string(), r.to_json());
        assert_eq!(Record::from_metadata(&metadata).unwrap(), Some(r.clone()));
        assert_eq!(
            r.describe(),
            "calibrated on 8000 pairs of 2 alphabets of images_background (within-alphabet + random), 4 turns"
        );
        let err = Record::from_json("{\"platt\": 1}").unwrap_err().to_string();
        assert!(err.starts_with("bad calibration metadata"), "{err}");
    }

    #[test]
    fn the_diagram_writes_png_and_svg() {
        let pairs: Vec<ScoredPair> = (0..40)
            .map(|i| pair(i as f32 / 4.0 - 5.0, i % 3 != 0))
            .collect();
        let r = Reliability::measure(&pairs, Platt::IDENTITY, 10);
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("r.png"), dir.path().join("r.svg"));
        write_reliability_diagram("test", &[("raw", &r)], Some(&png), Some(&svg)).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("<svg") && text.contains("ECE"),
            "svg without the legend"
        );
    }

    #[test]
    fn a_diagram_is_redrawn_from_calibrates_json() {
        let pairs: Vec<ScoredPair> = (0..40)
            .map(|i| pair(i as f32 / 4.0 - 5.0, i % 3 != 0))
            .collect();
        let before = Reliability::measure(&pairs, Platt::IDENTITY, 10);
        let after = Reliability::measure(
            &pairs,
            Platt {
                scale: 0.5,
                offset: 0.2,
            },
            10,
        );
        // What `calibrate --plot` writes, provenance and all.
        let json = serde_json::json!({
            "title": "Reliability on 2 alphabets of images_background",
            "checkpoint": "m.safetensors",
            "platt": Platt::IDENTITY,
            "before": before,
            "after": after,
        });
        let data: DiagramData = serde_json::from_value(json.clone()).unwrap();
        assert_eq!((&data.before, &data.after), (&before, &after));
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("r.svg");
        data.write(None, Some(&svg)).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for want in [
            "Reliability on 2 alphabets of images_background",
            "perfectly calibrated",
            AS_GIVEN,
            SCALED,
        ] {
            assert!(text.contains(want), "no {want}");
        }
        // Files from before the title was kept get a plain one.
        let mut old = json;
        old.as_object_mut().unwrap().remove("title");
        let data: DiagramData = serde_json::from_value(old).unwrap();
        assert_eq!(data.title, None);
        data.write(None, Some(&svg)).unwrap();
        assert!(
            std::fs::read_to_string(&svg)
                .unwrap()
                .contains(">\nReliability\n<")
        );
    }
}
