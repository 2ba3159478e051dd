//! The whole network: shapes, parameter counts, outputs, loss, saving and loading.

use candle_core::{Device, Tensor};
use model::io::{Extras, load, load_expecting, save};
use model::loss::{bce_with_logits, bce_with_logits_host};
use model::net::{HiddenLayer, HostHead};
use model::{Arch, Distance, HeadSpec, Init, SiameseNet};

fn images(n: usize, side: usize, seed: u32) -> Tensor {
    let v: Vec<f32> = (0..n * side * side)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 2) as f32)
        .collect();
    Tensor::from_vec(v, (n, 1, side, side), &Device::Cpu).unwrap()
}

#[test]
fn reference_tower_shapes_and_head_range() {
    let arch = Arch::koch();
    let net = SiameseNet::new(&arch, Init::Default, 0, &Device::Cpu).unwrap();
    let total: usize = net.vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(total, 38_951_745);
    assert_eq!(total, arch.parameter_count().unwrap());
    let x = images(2, 105, 1);
    // Feature map before the dense layer: 256x6x6.
    let h = blocks_by_hand(&net, &x);
    assert_eq!(h.dims(), &[2, 256, 6, 6]);
    let e = net.embed_inference(&x).unwrap();
    assert_eq!(e.dims(), &[2, 4096]);
    let logits = net
        .forward_pairs(&images(2, 105, 1), &images(2, 105, 2))
        .unwrap();
    assert_eq!(logits.dims(), &[2]);
    let p = candle_nn::ops::sigmoid(&logits)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
}

/// The conv blocks of a network without batch norm, one layer function at a time: the fused
/// block pools by floor, and a ceil- or blur-pooled block is left unpooled and pooled after it.
fn blocks_by_hand(net: &SiameseNet, x: &Tensor) -> Tensor {
    let mut h = x.clone();
    for (i, b) in net.arch().blocks.iter().enumerate() {
        let (w, bias) = (
            net.vars()[2 * i].as_tensor(),
            net.vars()[2 * i + 1].as_tensor(),
        );
        let fused = b.pool && !b.pool_ceil && !b.pool_blur;
        h = model::layers::conv_block(&h, w, bias, b.padding, fused, i > 0, false).unwrap();
        if b.pool && b.pool_ceil {
            h = model::layers::max_pool2_ceil(&h).unwrap();
        }
        if b.pool && b.pool_blur {
            h = model::layers::reference_blur_max_pool(&h, b.blur_filter).unwrap();
        }
    }
    h
}

#[test]
fn identical_images_give_the_bias_logit() {
    let arch = Arch::conv4(28, 8);
    let net = SiameseNet::new(&arch, Init::Kaiming, 3, &Device::Cpu).unwrap();
    let x = images(3, 28, 7);
    let logits = net.forward_pairs(&x, &x).unwrap().to_vec1::<f32>().unwrap();
    let bias = net.head_host().unwrap().bias;
    for l in logits {
        assert!((l - bias).abs() < 1e-6);
    }
}

fn with_distance(distance: Distance) -> Arch {
    Arch {
        distance,
        ..Arch::conv4(28, 8)
    }
}

#[test]
fn host_head_weighs_the_architectures_distance() {
    let (a, b) = ([1.0f32, -2.0, 0.5], [0.0f32, 1.0, 0.5]);
    let l1 = HostHead {
        weights: vec![2.0, -1.0, 7.0],
        bias: 0.25,
        distance: Distance::L1,
        products: false,
        hidden: None,
    };
    // 0.25 + 2*1 - 1*3 + 7*0
    assert_eq!(l1.logit(&a, &b), -0.75);
    let sq = HostHead {
        distance: Distance::SquaredL2,
        ..l1
    };
    // 0.25 + 2*1 - 1*9 + 7*0
    assert_eq!(sq.logit(&a, &b), -6.75);
}

#[test]
fn host_head_matches_the_tensor_head() {
    for distance in [Distance::L1, Distance::SquaredL2] {
        host_head_matches_the_tensor_head_with(distance);
    }
}

fn host_head_matches_the_tensor_head_with(distance: Distance) {
    let arch = with_distance(distance);
    let net = SiameseNet::new(&arch, Init::Default, 5, &Device::Cpu).unwrap();
    let (a, b) = (images(4, 28, 1), images(4, 28, 2));
    let logits = net.forward_pairs(&a, &b).unwrap().to_vec1::<f32>().unwrap();
    let ea = net.embed_inference(&a).unwrap().to_vec2::<f32>().unwrap();
    let eb = net.embed_inference(&b).unwrap().to_vec2::<f32>().unwrap();
    let head = net.head_host().unwrap();
    for i in 0..4 {
        let host = head.logit(&ea[i], &eb[i]);
        assert!((host - logits[i]).abs() < 1e-4, "{host} vs {}", logits[i]);
        let by_hand = head.bias
            + (0..ea[i].len())
                .map(|d| {
                    let diff = ea[i][d] - eb[i][d];
                    head.weights[d]
                        * if distance == Distance::L1 {
                            diff.abs()
                        } else {
                            diff * diff
                        }
                })
                .sum::<f32>();
        assert!((by_hand - logits[i]).abs() < 1e-4, "{distance:?}");
    }
    // embed_images chunks the batch but gives the same embeddings.
    let flat = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let chunked = net.embed_images(&flat, 3).unwrap();
    assert_eq!(chunked.len(), 4 * 8);
    for (x, y) in chunked.iter().zip(ea.concat()) {
        assert!((x - y).abs() < 1e-5);
    }
}

#[test]
fn a_rescaled_head_gives_scale_times_logit_plus_offset_for_both_distances() {
    for distance in [Distance::L1, Distance::SquaredL2] {
        let net =
            SiameseNet::new(&with_distance(distance), Init::Default, 9, &Device::Cpu).unwrap();
        let (a, b) = (images(3, 28, 4), images(3, 28, 5));
        let before = net.forward_pairs(&a, &b).unwrap().to_vec1::<f32>().unwrap();
        let head = net.head_host().unwrap();
        net.rescale_head(2.5, -1.25).unwrap();
        let after = net.forward_pairs(&a, &b).unwrap().to_vec1::<f32>().unwrap();
        for (x, y) in before.iter().zip(&after) {
            assert!(
                (2.5 * x - 1.25 - y).abs() < 1e-4,
                "{distance:?}: {x} -> {y}"
            );
        }
        let rescaled = net.head_host().unwrap();
        assert!((rescaled.bias - (2.5 * head.bias - 1.25)).abs() < 1e-6);
        assert!((rescaled.weights[3] - 2.5 * head.weights[3]).abs() < 1e-6);
        assert_eq!(rescaled.distance, distance);
    }
    // A scale of zero or below would tie or reverse every ranking: refused, head untouched.
    let net =
        SiameseNet::new(&with_distance(Distance::L1), Init::Default, 9, &Device::Cpu).unwrap();
    let head = net.head_host().unwrap();
    for (scale, offset) in [
        (0.0, 0.0),
        (-1.0, 0.0),
        (f32::NAN, 0.0),
        (1.0, f32::INFINITY),
    ] {
        let err = net.rescale_head(scale, offset).unwrap_err().to_string();
        assert!(err.contains("finite scale > 0"), "{err}");
    }
    assert_eq!(net.head_host().unwrap(), head);
}

#[test]
fn a_head_with_products_and_a_hidden_layer_computes_by_hand() {
    let (a, b) = ([1.0f32, -2.0, 0.5], [0.0f32, 1.0, 0.5]);
    // Inputs: |a - b| = (1, 3, 0), then a * b = (0, -2, 0.25).
    let products = HostHead {
        weights: vec![2.0, -1.0, 7.0, 1.0, 0.5, 4.0],
        bias: 0.25,
        distance: Distance::L1,
        products: true,
        hidden: None,
    };
    // 0.25 + (2 - 3 + 0) + (0 - 1 + 1)
    assert_eq!(products.logit(&a, &b), -0.75);
    let hidden = HostHead {
        weights: vec![2.0, -3.0],
        bias: 0.5,
        hidden: Some(HiddenLayer {
            // Unit 0: 1 + (1 + 3 + 0) - (0 - 2 + 0.25) = 6.75; unit 1: -1 + 3 - 2 = 0 -> 0 by
            // the ReLU, and negative inputs are cut off too.
            weights: vec![
                1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0,
            ],
            biases: vec![1.0, -1.0],
        }),
        ..products
    };
    assert_eq!(hidden.logit(&a, &b), 0.5 + 2.0 * 6.75);
    assert!(!hidden.is_linear());
}

fn with_head(hidden: usize, products: bool) -> Arch {
    Arch {
        head: HeadSpec { hidden, products },
        ..Arch::conv4(28, 8)
    }
}

#[test]
fn nonlinear_heads_agree_on_the_host_and_in_tensors_and_count_their_parameters() {
    for (hidden, products) in [(0, true), (5, false), (6, true)] {
        let arch = with_head(hidden, products);
        let net = SiameseNet::new(&arch, Init::Default, 3, &Device::Cpu).unwrap();
        let total: usize = net.vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(total, arch.parameter_count().unwrap());
        let inputs = if products { 16 } else { 8 };
        let head_params = if hidden > 0 {
            inputs * hidden + hidden + hidden + 1
        } else {
            inputs + 1
        };
        assert_eq!(
            total - Arch::conv4(28, 8).parameter_count().unwrap(),
            head_params - 9
        );
        let (a, b) = (images(4, 28, 1), images(4, 28, 2));
        let logits = net.forward_pairs(&a, &b).unwrap().to_vec1::<f32>().unwrap();
        let ea = net.embed_inference(&a).unwrap().to_vec2::<f32>().unwrap();
        let eb = net.embed_inference(&b).unwrap().to_vec2::<f32>().unwrap();
        let head = net.head_host().unwrap();
        assert_eq!(head.hidden.is_some(), hidden > 0);
        for i in 0..4 {
            let host = head.logit(&ea[i], &eb[i]);
            assert!((host - logits[i]).abs() < 1e-4, "{host} vs {}", logits[i]);
        }
        let all = net
            .pairwise_logits(
                &net.embed_inference(&a).unwrap(),
                &net.embed_inference(&b).unwrap(),
            )
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for i in 0..4 {
            for j in 0..4 {
                assert!((all[i][j] - head.logit(&ea[i], &eb[j])).abs() < 1e-4);
            }
        }
        // The calibration folds into the output layer whatever lies before it.
        net.rescale_head(2.0, 1.0).unwrap();
        let after = net.forward_pairs(&a, &b).unwrap().to_vec1::<f32>().unwrap();
        for (x, y) in logits.iter().zip(&after) {
            assert!((2.0 * x + 1.0 - y).abs() < 1e-4, "{x} -> {y}");
        }
    }
}

#[test]
fn a_nonlinear_head_round_trips_and_is_refused_by_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let arch = with_head(4, true);
    let net = SiameseNet::new(&arch, Init::Default, 1, &Device::Cpu).unwrap();
    let path = dir.path().join("w.safetensors");
    save(&net, &path, &Extras::default()).unwrap();
    let (back, _) = load(&path, &Device::Cpu).unwrap();
    assert_eq!(
        back.arch().head,
        HeadSpec {
            hidden: 4,
            products: true
        }
    );
    assert_eq!(back.head_host().unwrap(), net.head_host().unwrap());
    let other = SiameseNet::new(&arch, Init::Default, 2, &Device::Cpu).unwrap();
    let err = model::ensemble::merge(&[net, other])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot be merged"), "{err}");
}

#[test]
fn pairwise_logits_match_the_pair_head() {
    for distance in [Distance::L1, Distance::SquaredL2] {
        pairwise_logits_match_the_pair_head_with(distance);
    }
}

fn pairwise_logits_match_the_pair_head_with(distance: Distance) {
    let net = SiameseNet::new(&with_distance(distance), Init::Default, 2, &Device::Cpu).unwrap();
    let q = net.embed_inference(&images(3, 28, 1)).unwrap();
    let c = net.embed_inference(&images(4, 28, 2)).unwrap();
    let all = net
        .pairwise_logits(&q, &c)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let (qv, cv) = (q.to_vec2::<f32>().unwrap(), c.to_vec2::<f32>().unwrap());
    let head = net.head_host().unwrap();
    for i in 0..3 {
        for j in 0..4 {
            assert!((all[i][j] - head.logit(&qv[i], &cv[j])).abs() < 1e-4);
        }
    }
}

#[test]
fn same_seed_same_weights() {
    let arch = Arch::conv4(28, 8);
    let a = SiameseNet::new(&arch, Init::Koch, 9, &Device::Cpu).unwrap();
    let b = SiameseNet::new(&arch, Init::Koch, 9, &Device::Cpu).unwrap();
    let c = SiameseNet::new(&arch, Init::Koch, 10, &Device::Cpu).unwrap();
    let flat = |n: &SiameseNet| {
        n.vars()[0]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
    // Koch's biases are N(0.5, 0.01).
    let bias = a.vars()[1].as_tensor().to_vec1::<f32>().unwrap();
    assert!(bias.iter().all(|b| (b - 0.5).abs() < 0.06));
}

#[test]
fn bce_matches_hand_computed_values() {
    let logits = [0.0f32, 2.0, -3.0, 40.0];
    let labels = [1.0f32, 0.0, 0.0, 1.0];
    // ln 2, ln(1+e^2), ln(1+e^-3), ~0
    let expected = (2f32.ln() + (1.0 + 2f32.exp()).ln() + (1.0 + (-3f32).exp()).ln() + 0.0) / 4.0;
    assert!((bce_with_logits_host(&logits, &labels) - expected).abs() < 1e-6);
    let t = bce_with_logits(
        &Tensor::new(&logits, &Device::Cpu).unwrap(),
        &Tensor::new(&labels, &Device::Cpu).unwrap(),
    )
    .unwrap()
    .to_scalar::<f32>()
    .unwrap();
    assert!((t - expected).abs() < 1e-6);
    // Stable for huge logits.
    let big = bce_with_logits_host(&[-1000.0], &[1.0]);
    assert!((big - 1000.0).abs() < 1e-3);
}

#[test]
fn the_head_distance_round_trips_and_old_architectures_read_as_l1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sq.safetensors");
    let arch = with_distance(Distance::SquaredL2);
    let net = SiameseNet::new(&arch, Init::Default, 1, &Device::Cpu).unwrap();
    save(&net, &path, &Extras::default()).unwrap();
    let (back, _) = load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.arch().distance, Distance::SquaredL2);
    let x = images(2, 28, 4);
    let y = images(2, 28, 9);
    let before = net.forward_pairs(&x, &y).unwrap().to_vec1::<f32>().unwrap();
    let after = back
        .forward_pairs(&x, &y)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(before, after);
    // Architectures saved before the field existed have no `distance` and are L1, and an L1
    // architecture is written without it, so old and new files read the same.
    let json = serde_json::to_string(&Arch::conv4(28, 8)).unwrap();
    assert!(!json.contains("distance"), "{json}");
    let old: Arch = serde_json::from_str(&json).unwrap();
    assert_eq!(old.distance, Distance::L1);
    let json = serde_json::to_string(&arch).unwrap();
    assert!(json.contains(r#""distance":"squared-l2""#), "{json}");
    assert_eq!(
        "squared-l2".parse::<Distance>().unwrap(),
        Distance::SquaredL2
    );
    let err = "l2".parse::<Distance>().unwrap_err().to_string();
    assert!(err.contains("expected l1 or squared-l2"), "{err}");
}

#[test]
fn save_load_round_trip_keeps_arch_weights_and_extras() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let arch = Arch::conv4(28, 8);
    let net = SiameseNet::new(&arch, Init::Default, 1, &Device::Cpu).unwrap();
    let mut extras = Extras::default();
    extras.metadata.insert("step".into(), "42".into());
    extras.tensors.insert(
        "opt.m.0".into(),
        Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap(),
    );
    save(&net, &path, &extras).unwrap();
    let (back, rest) = load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.arch(), &arch);
    for (a, b) in net.vars().iter().zip(back.vars()) {
        let a = a
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = b
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(rest.metadata.get("step").map(String::as_str), Some("42"));
    assert_eq!(
        rest.tensors["opt.m.0"].to_vec1::<f32>().unwrap(),
        vec![1.0, 2.0]
    );
    assert!(!rest.tensors.contains_key("conv1.weight"));
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let net = SiameseNet::new(&Arch::conv4(28, 8), Init::Default, 1, &Device::Cpu).unwrap();
    save(&net, &path, &Extras::default()).unwrap();

    let msg = load_expecting(&path, &Arch::koch(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("m.safetensors") && msg.contains("conv4-28") && msg.contains("koch"),
        "{msg}"
    );

    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let msg = load(&truncated, &Device::Cpu).err().unwrap().to_string();
    assert!(
        msg.contains("truncated.safetensors") && msg.contains("not a model file"),
        "{msg}"
    );

    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"hello world, not tensors").unwrap();
    let msg = load(&junk, &Device::Cpu).err().unwrap().to_string();
    assert!(
        msg.contains("junk.bin") && msg.contains("not a valid safetensors file"),
        "{msg}"
    );

    let foreign = dir.path().join("foreign.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([(
            "w".to_string(),
            Tensor::new(&[1f32], &Device::Cpu).unwrap(),
        )]),
        &foreign,
    )
    .unwrap();
    let msg = load(&foreign, &Device::Cpu).err().unwrap().to_string();
    assert!(msg.contains("without `format = omniglot-siamese`"), "{msg}");

    let missing = dir.path().join("nope.safetensors");
    let msg = load(&missing, &Device::Cpu).err().unwrap().to_string();
    assert!(
        msg.contains("nope.safetensors") && msg.contains("cli -- train"),
        "{msg}"
    );
}

#[test]
fn wrong_image_size_is_an_error() {
    let net = SiameseNet::new(&Arch::conv4(28, 8), Init::Default, 1, &Device::Cpu).unwrap();
    let msg = net
        .embed_inference(&images(1, 32, 0))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("[N, 1, 28, 28]"), "{msg}");
    assert!(net.embed_images(&[0.0; 100], 4).is_err());
}

#[test]
fn batch_norm_nets_track_running_statistics_and_round_trip() {
    let arch = Arch::preset("conv4-16x4-bn").unwrap();
    let net = SiameseNet::new(&arch, Init::Kaiming, 1, &Device::Cpu).unwrap();
    let before = net.named_buffers()[0]
        .1
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(before, vec![0.0; 4]);
    // A training forward moves the running mean towards the batch mean.
    let _ = net.embed(&images(6, 16, 3)).unwrap();
    let after = net.named_buffers()[0]
        .1
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(after, before);
    // Inference does not.
    let _ = net.embed_inference(&images(6, 16, 4)).unwrap();
    assert_eq!(
        net.named_buffers()[0]
            .1
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap(),
        after
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    save(&net, &path, &Extras::default()).unwrap();
    let (back, rest) = load(&path, &Device::Cpu).unwrap();
    assert!(rest.tensors.is_empty(), "buffers are part of the model");
    let x = images(3, 16, 5);
    let a = net
        .embed_inference(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = back
        .embed_inference(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        net.parameter_layers(),
        vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4]
    );
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
}

#[test]
fn support_statistics_normalise_with_the_first_images_only() {
    let arch = Arch::preset("conv4-16x4-bn").unwrap();
    let net = SiameseNet::new(&arch, Init::Kaiming, 2, &Device::Cpu).unwrap();
    let (support, queries) = (images(5, 16, 7), images(3, 16, 8));
    let both = Tensor::cat(&[&support, &queries], 0).unwrap();
    let buffers = |n: &SiameseNet| -> Vec<Vec<f32>> {
        n.named_buffers()
            .iter()
            .map(|(_, v)| v.as_tensor().to_vec1::<f32>().unwrap())
            .collect()
    };
    let before = buffers(&net);
    let got = rows(&net.embed_with_support_stats(&both, 5).unwrap());
    assert_eq!(buffers(&net), before, "running statistics must not move");
    // With the whole batch as support, normalisation is training mode's (batch statistics).
    let alone = rows(&net.embed_with_support_stats(&support, 5).unwrap());
    let train = rows(&net.embed(&support).unwrap());
    for (a, t) in alone.iter().zip(&train) {
        assert!(close(a, t), "{a:?} vs {t:?}");
    }
    // The queries do not move the statistics: the support rows are the same with or
    // without them, and each query's row is the same whatever other queries come with it.
    for (g, a) in got.iter().zip(&alone) {
        assert!(close(g, a));
    }
    let one = Tensor::cat(&[&support, &queries.narrow(0, 1, 1).unwrap()], 0).unwrap();
    let one = rows(&net.embed_with_support_stats(&one, 5).unwrap());
    assert!(close(&one[5], &got[6]));
    // And it is not the running-statistics embedding.
    let running = rows(&net.embed_inference(&queries).unwrap());
    assert!(!close(&running[0], &got[5]));
    // The host path agrees with the tensor path.
    let flat = both.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let host = net.embed_images_with_support_stats(&flat, 5).unwrap();
    assert!(close(&host, &got.concat()));
    for bad in [0, 9] {
        let err = net.embed_with_support_stats(&both, bad).unwrap_err();
        assert!(
            err.to_string().contains(&format!("first {bad} of 8")),
            "{err}"
        );
    }
}

#[test]
fn feature_maps_are_the_towers_maps_block_by_block() {
    // conv4-16x4-bn: no dense layer and no activation, so the maps after the last block,
    // flattened, are the embedding; after one block they are 4 x 8 x 8.
    let arch = Arch::preset("conv4-16x4-bn").unwrap();
    let net = SiameseNet::new(&arch, Init::Kaiming, 2, &Device::Cpu).unwrap();
    let x = images(3, 16, 4);
    let flat = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (last, shape) = net.feature_maps(&flat, 4, 2).unwrap();
    assert_eq!(shape, [4, 1, 1]);
    let e = net.embed_inference(&x).unwrap();
    assert!(close(
        &last,
        &e.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    ));
    let (first, shape) = net.feature_maps(&flat, 1, 3).unwrap();
    assert_eq!(shape, [4, 8, 8]);
    assert_eq!(first.len(), 3 * 4 * 8 * 8);
    // Batched two and one at a time, the same maps.
    assert!(close(&first, &net.feature_maps(&flat, 1, 1).unwrap().0));
    for count in [0, 5] {
        let err = net.feature_maps(&flat, count, 2).unwrap_err().to_string();
        assert!(err.contains(&format!("after block {count}")), "{err}");
    }
}

#[test]
fn embeddings_with_maps_are_the_training_embeddings_and_their_inner_maps() {
    let arch = Arch::preset("conv4-16x4-bn").unwrap();
    let net = SiameseNet::new(&arch, Init::Kaiming, 2, &Device::Cpu).unwrap();
    let x = images(3, 16, 4);
    let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (e, maps) = net.embed_with_maps(&x, 2).unwrap();
    assert_eq!(maps.dims(), &[3, 4, 4, 4]);
    assert!(close(&flat(&e), &flat(&net.embed(&x).unwrap())));
    // After the last block the maps are the embedding itself (no dense layer here).
    let (e, maps) = net.embed_with_maps(&x, 4).unwrap();
    assert!(close(&flat(&e), &flat(&maps)));
    // With a dense embedding layer as well.
    let dense = Arch::conv4(16, 8);
    let net = SiameseNet::new(&dense, Init::Kaiming, 5, &Device::Cpu).unwrap();
    let (e, maps) = net.embed_with_maps(&x, 1).unwrap();
    assert_eq!(maps.dims()[..2], [3, dense.blocks[0].channels]);
    assert!(close(&flat(&e), &flat(&net.embed(&x).unwrap())));
    for block in [0, 5] {
        let err = net.embed_with_maps(&x, block).unwrap_err().to_string();
        assert!(err.contains(&format!("after block {block}")), "{err}");
    }
}

/// Asserts that the squared norm of the embeddings `e` has a finite, non-zero gradient for
/// every parameter of the tower.
fn every_tower_parameter_learns(net: &SiameseNet, e: &Tensor) {
    let grads = e.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in net
        .named_vars()
        .iter()
        .filter(|(n, _)| !n.starts_with("head"))
    {
        let g = grads
            .get(v)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm.is_finite() && norm > 0.0, "{name}: {norm}");
    }
}

#[test]
fn a_ceil_pooled_block_keeps_its_whole_map_in_the_embedding() {
    // 20 -> 10 -> 5 -> 3 (ceil) instead of 2 (floor).
    let mut arch = Arch::convnet_widths(20, &[4, 4, 4], false);
    arch.blocks[2].pool_ceil = true;
    assert_eq!(arch.embedding_dim().unwrap(), 4 * 3 * 3);
    let net = SiameseNet::new(&arch, Init::Kaiming, 4, &Device::Cpu).unwrap();
    let x = images(3, 20, 9);
    // The 5x5 map of the last block pools to 3x3.
    let h = blocks_by_hand(&net, &x);
    assert_eq!(h.dims(), &[3, 4, 3, 3]);
    let h = h.flatten_from(1).unwrap();
    let e = net.embed_inference(&x).unwrap();
    assert_eq!(e.dims(), &[3, 36]);
    assert!(close(
        &e.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        &h.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    ));
    // Training with batch norm: the loss reaches every parameter through the ceil pool.
    let mut bn = Arch::convnet_widths(20, &[4, 4, 4], true);
    bn.blocks[2].pool_ceil = true;
    let net = SiameseNet::new(&bn, Init::Kaiming, 4, &Device::Cpu).unwrap();
    let e = net.embed(&x).unwrap();
    assert_eq!(e.dims(), &[3, 36]);
    every_tower_parameter_learns(&net, &e);
    // On an even map ceil and floor agree, so the fused pool serves both.
    let mut even = Arch::convnet_widths(20, &[4, 4, 4], true);
    even.blocks[0].pool_ceil = true;
    let floor = SiameseNet::new(
        &Arch::convnet_widths(20, &[4, 4, 4], true),
        Init::Kaiming,
        4,
        &Device::Cpu,
    )
    .unwrap();
    let ceil = SiameseNet::new(&even, Init::Kaiming, 4, &Device::Cpu).unwrap();
    assert_eq!(
        rows(&ceil.embed_inference(&x).unwrap()),
        rows(&floor.embed_inference(&x).unwrap())
    );
    // Configurations without the key read as floor pooling, and floor is not written out.
    let json = serde_json::to_string(&Arch::convnet_widths(20, &[4, 4, 4], true)).unwrap();
    assert!(!json.contains("pool_ceil"), "{json}");
    let json = serde_json::to_string(&bn).unwrap();
    assert_eq!(json.matches(r#""pool_ceil":true"#).count(), 1, "{json}");
    assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), bn);
}

#[test]
fn blur_pooled_blocks_keep_the_floor_sides_and_train_every_parameter() {
    // 20 -> 10 -> 5 -> 2, as with floor max-pools; the blur has no weights.
    let mut arch = Arch::convnet_widths(20, &[4, 4, 4], false);
    for b in &mut arch.blocks {
        b.pool_blur = true;
    }
    let plain = Arch::convnet_widths(20, &[4, 4, 4], false);
    assert_eq!(arch.embedding_dim().unwrap(), 4 * 2 * 2);
    assert_eq!(
        arch.parameter_count().unwrap(),
        plain.parameter_count().unwrap()
    );
    let net = SiameseNet::new(&arch, Init::Kaiming, 4, &Device::Cpu).unwrap();
    let x = images(3, 20, 9);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let h = blocks_by_hand(&net, &x).flatten_from(1).unwrap();
    let e = net.embed_inference(&x).unwrap();
    assert_eq!(e.dims(), &[3, 16]);
    assert!(close(&flat(&e), &flat(&h)));
    // The same weights pooled by strided maxima embed differently.
    let max_pooled = SiameseNet::new(&plain, Init::Kaiming, 4, &Device::Cpu).unwrap();
    assert!(!close(
        &flat(&e),
        &flat(&max_pooled.embed_inference(&x).unwrap())
    ));
    // Training with batch norm: the loss reaches every parameter through the blur pools.
    let mut bn = Arch::convnet_widths(20, &[4, 4, 4], true);
    for b in &mut bn.blocks {
        b.pool_blur = true;
    }
    let net = SiameseNet::new(&bn, Init::Kaiming, 4, &Device::Cpu).unwrap();
    every_tower_parameter_learns(&net, &net.embed(&x).unwrap());
    // Written only when on, read back as written.
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("pool_blur"), "{json}");
    let json = serde_json::to_string(&bn).unwrap();
    assert_eq!(json.matches(r#""pool_blur":true"#).count(), 3, "{json}");
    assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), bn);
    // A blur pool needs `pool`, no ceil pool, and at least a 3x3 map.
    let mut unpooled = plain.clone();
    unpooled.blocks[0].pool = false;
    unpooled.blocks[0].pool_blur = true;
    let mut both = plain.clone();
    both.blocks[1].pool_ceil = true;
    both.blocks[1].pool_blur = true;
    let mut small = Arch::convnet_widths(8, &[4, 4, 4], false);
    small.blocks[2].pool_blur = true;
    for (bad, block, side) in [(unpooled, 0, 20), (both, 1, 10), (small, 2, 2)] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(&format!("block {block}")), "{err}");
        assert!(err.contains(&format!("{side}x{side}")), "{err}");
    }
}

#[test]
fn the_wide_blur_filter_embeds_by_hand_and_is_written_only_when_chosen() {
    use model::BlurFilter;
    // 20 -> 10 -> 5 -> 2: the last pool reads a 5x5 map, wide enough for [1, 4, 6, 4, 1].
    let mut narrow = Arch::convnet_widths(20, &[4, 4, 4], false);
    for b in &mut narrow.blocks {
        b.pool_blur = true;
    }
    let mut wide = narrow.clone();
    for b in &mut wide.blocks {
        b.blur_filter = BlurFilter::Bin5;
    }
    wide.validate().unwrap();
    let net = SiameseNet::new(&wide, Init::Kaiming, 4, &Device::Cpu).unwrap();
    let x = images(3, 20, 9);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let h = blocks_by_hand(&net, &x).flatten_from(1).unwrap();
    let e = net.embed_inference(&x).unwrap();
    assert!(close(&flat(&e), &flat(&h)));
    // The same weights through the narrow filter embed differently.
    let same_weights = SiameseNet::new(&narrow, Init::Kaiming, 4, &Device::Cpu).unwrap();
    assert!(!close(
        &flat(&e),
        &flat(&same_weights.embed_inference(&x).unwrap())
    ));
    // The default filter is not written, so configs from before the option hash the same.
    let json = serde_json::to_string(&narrow).unwrap();
    assert!(!json.contains("blur_filter"), "{json}");
    let json = serde_json::to_string(&wide).unwrap();
    assert_eq!(
        json.matches(r#""blur_filter":"bin-5""#).count(),
        3,
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), wide);
    assert_eq!("bin-5".parse::<BlurFilter>().unwrap(), BlurFilter::Bin5);
    let err = "bin5".parse::<BlurFilter>().unwrap_err().to_string();
    assert!(err.contains("tri-3 or bin-5"), "{err}");
    // The wide filter needs a 4x4 map; a filter without the blur pool is a mistake.
    let mut small = Arch::convnet_widths(6, &[4, 4], false);
    small.blocks[1].pool_blur = true;
    small.validate().unwrap();
    small.blocks[1].blur_filter = BlurFilter::Bin5;
    let err = small.validate().unwrap_err().to_string();
    assert!(
        err.contains("block 1") && err.contains("4x4") && err.contains("3x3"),
        "{err}"
    );
    let mut stray = Arch::convnet_widths(20, &[4, 4, 4], false);
    stray.blocks[0].blur_filter = BlurFilter::Bin5;
    let err = stray.validate().unwrap_err().to_string();
    assert!(
        err.contains("block 0") && err.contains("`pool_blur` is off"),
        "{err}"
    );
}

#[test]
fn channel_gates_scale_each_map_by_hand_count_their_parameters_and_learn() {
    // 12 -> 6 -> 3; the second block's four channels are gated through a bottleneck of two.
    let plain = Arch::convnet_widths(12, &[4, 4], false);
    let mut arch = plain.clone();
    arch.blocks[1].se_reduction = 2;
    assert_eq!(arch.blocks[1].se_hidden(), 2);
    // W1 [2, 4] + b1 [2] + W2 [4, 2] + b2 [4].
    assert_eq!(
        arch.parameter_count().unwrap(),
        plain.parameter_count().unwrap() + 8 + 2 + 8 + 4
    );
    let net = SiameseNet::new(&arch, Init::Default, 5, &Device::Cpu).unwrap();
    let total: usize = net.vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(total, arch.parameter_count().unwrap());
    let named = net.named_vars();
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..8],
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "conv2.se1.weight",
            "conv2.se1.bias",
            "conv2.se2.weight",
            "conv2.se2.bias"
        ]
    );
    assert_eq!(named[4].1.dims(), &[2, 4]);
    assert_eq!(named[6].1.dims(), &[4, 2]);

    // By hand: the ungated maps from the same conv weights, then each map times
    // sigmoid(W2 relu(W1 m + b1) + b2) of its image's channel means m.
    let x = images(3, 12, 4);
    let host = |i: usize| {
        net.vars()[i]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let mut h = x.clone();
    for i in 0..2 {
        let (w, b) = (
            net.vars()[2 * i].as_tensor(),
            net.vars()[2 * i + 1].as_tensor(),
        );
        h = model::layers::conv_block(&h, w, b, 1, true, i > 0, false).unwrap();
    }
    assert_eq!(h.dims(), &[3, 4, 3, 3]);
    let maps = h.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (w1, b1, w2, b2) = (host(4), host(5), host(6), host(7));
    let mut expected = Vec::new();
    for n in 0..3 {
        let map = |c: usize| &maps[(n * 4 + c) * 9..(n * 4 + c + 1) * 9];
        let m: Vec<f32> = (0..4).map(|c| map(c).iter().sum::<f32>() / 9.0).collect();
        let hidden: Vec<f32> = (0..2)
            .map(|j| (b1[j] + (0..4).map(|c| w1[j * 4 + c] * m[c]).sum::<f32>()).max(0.0))
            .collect();
        for c in 0..4 {
            let z = b2[c] + (0..2).map(|j| w2[c * 2 + j] * hidden[j]).sum::<f32>();
            let gate = 1.0 / (1.0 + (-z).exp());
            assert!(gate > 0.0 && gate < 1.0);
            expected.extend(map(c).iter().map(|v| v * gate));
        }
    }
    let e = net.embed_inference(&x).unwrap();
    assert_eq!(e.dims(), &[3, 36]);
    let got = e.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(close(&got, &expected), "{got:?}\n{expected:?}");
    // The gates change the embedding: the same conv weights without them embed the maps.
    assert!(!close(&got, &maps));

    // With batch norm on every block and gates on both, the loss reaches every parameter
    // (PyTorch's init: non-zero biases, so no bottleneck unit starts dead on every image).
    let mut bn = Arch::convnet_widths(12, &[4, 4], true);
    for b in &mut bn.blocks {
        b.se_reduction = 2;
    }
    let net = SiameseNet::new(&bn, Init::Default, 6, &Device::Cpu).unwrap();
    every_tower_parameter_learns(&net, &net.embed(&x).unwrap());

    // Written only when on, read back as written; saved and loaded with the weights.
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("se_reduction"), "{json}");
    let json = serde_json::to_string(&bn).unwrap();
    assert_eq!(json.matches(r#""se_reduction":2"#).count(), 2, "{json}");
    assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), bn);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("se.safetensors");
    save(&net, &path, &Extras::default()).unwrap();
    let (back, _) = load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.arch(), &bn);
    assert_eq!(
        rows(&back.embed_inference(&x).unwrap()),
        rows(&net.embed_inference(&x).unwrap())
    );

    // A reduction wider than the block leaves no gate units.
    let mut bad = plain.clone();
    bad.blocks[0].se_reduction = 8;
    let err = bad.validate().unwrap_err().to_string();
    assert!(
        err.contains("block 0") && err.contains("no gate units for 4 channels"),
        "{err}"
    );
}
