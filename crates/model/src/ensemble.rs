//! Several separately trained networks as one: their towers side by side, their heads joined.
//!
//! A head scores `bias + w . |e1 - e2|`, and `|e1 - e2|` of concatenated embeddings is the
//! concatenation of each member's. So the mean of K members' logits is exactly one head over
//! the K towers with weights `w_k / K` and bias `mean(b_k)`: an ensemble needs no code of its
//! own anywhere the network is used.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::arch::Arch;
use crate::error::{ModelError, Result};
use crate::net::{SiameseNet, tower_prefix};

/// One network whose logit is the mean of the members' logits. Members must share one
/// single-tower architecture.
pub fn merge(members: &[SiameseNet]) -> Result<SiameseNet> {
    let Some(first) = members.first() else {
        return Err(ModelError::Arch(
            "an ensemble needs at least one member".into(),
        ));
    };
    let arch = first.arch();
    for (i, m) in members.iter().enumerate() {
        if m.arch().towers != 1 {
            return Err(ModelError::Arch(format!(
                "member {i} is already an ensemble ({} towers); merge the single networks",
                m.arch().towers
            )));
        }
        if m.arch() != arch {
            return Err(ModelError::Arch(format!(
                "members must share one architecture: member 0 is {}, member {i} is {}",
                arch.name,
                m.arch().name
            )));
        }
    }
    if !arch.head.is_linear() {
        // Only a weighted sum of per-dimension terms splits into the members' sums.
        return Err(ModelError::Arch(format!(
            "networks whose head has a hidden layer or compares products cannot be merged into \
             one network ({}); score them as an ensemble instead",
            arch.name
        )));
    }
    let k = members.len();
    let merged = Arch {
        towers: k,
        ..arch.clone()
    };
    let device = first.device();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let (mut head_w, mut head_b) = (Vec::with_capacity(k), Vec::with_capacity(k));
    for (t, m) in members.iter().enumerate() {
        for (name, var) in m.named_vars().into_iter().chain(m.named_buffers()) {
            let value = var.as_tensor().to_device(device)?;
            match name.as_str() {
                "head.weight" => head_w.push(value),
                "head.bias" => head_b.push(value),
                _ => {
                    tensors.insert(format!("{}{name}", tower_prefix(&merged, t)), value);
                }
            }
        }
    }
    let scale = 1.0 / k as f64;
    tensors.insert("head.weight".into(), (Tensor::cat(&head_w, 1)? * scale)?);
    tensors.insert(
        "head.bias".into(),
        (Tensor::stack(&head_b, 0)?.sum(0)? * scale)?,
    );
    SiameseNet::from_tensors(&merged, &tensors, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Init;
    use candle_core::Device;

    fn net(arch: &Arch, seed: u64) -> SiameseNet {
        SiameseNet::new(arch, Init::Default, seed, &Device::Cpu).unwrap()
    }

    fn logits(n: &SiameseNet, a: &Tensor, b: &Tensor) -> Vec<f32> {
        let (ea, eb) = (n.embed_inference(a).unwrap(), n.embed_inference(b).unwrap());
        n.head_logits(&ea, &eb).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn merged_logits_are_the_mean_of_the_members() {
        let mut arch = Arch::preset("conv4-16x4-bn").unwrap();
        arch.embedding = 6;
        let members: Vec<SiameseNet> = (0..3).map(|s| net(&arch, s)).collect();
        let a = Tensor::rand(0f32, 1.0, (5, 1, 16, 16), &Device::Cpu).unwrap();
        let b = Tensor::rand(0f32, 1.0, (5, 1, 16, 16), &Device::Cpu).unwrap();
        let merged = merge(&members).unwrap();
        assert_eq!(merged.arch().towers, 3);
        assert_eq!(merged.arch().embedding_dim().unwrap(), 18);
        assert_eq!(
            merged.arch().parameter_count().unwrap(),
            3 * (arch.parameter_count().unwrap() - 7) + 18 + 1
        );
        let each: Vec<Vec<f32>> = members.iter().map(|m| logits(m, &a, &b)).collect();
        let got = logits(&merged, &a, &b);
        for (i, g) in got.iter().enumerate() {
            let mean = each.iter().map(|l| l[i]).sum::<f32>() / 3.0;
            assert!((g - mean).abs() < 1e-5, "pair {i}: {g} vs {mean}");
        }
        // The members really differ, so the mean is not one member's logit.
        assert!((each[0][0] - each[1][0]).abs() > 1e-4);
        // Saved and loaded, the merged network keeps its towers and its scores.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ensemble.safetensors");
        crate::io::save(&merged, &path, &Default::default()).unwrap();
        let (loaded, _) = crate::io::load(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.arch(), merged.arch());
        assert_eq!(logits(&loaded, &a, &b), got);
        // A one-member ensemble is the member itself.
        let single = merge(&members[..1]).unwrap();
        assert_eq!(single.arch(), &arch);
        assert_eq!(logits(&single, &a, &b), each[0]);
    }

    #[test]
    fn members_must_match_and_be_single_networks() {
        let arch = Arch::conv4(16, 4);
        let other = Arch::conv4(16, 8);
        let msg = merge(&[net(&arch, 0), net(&other, 1)])
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("member 1"), "{msg}");
        let twice = merge(&[net(&arch, 0), net(&arch, 1)]).unwrap();
        let msg = merge(&[twice]).err().unwrap().to_string();
        assert!(msg.contains("already an ensemble"), "{msg}");
        assert!(merge(&[]).is_err());
    }
}
