//! Optimizer updates against hand-computed values, and the fused CPU path against tensor ops.

use candle_core::{Device, Tensor, Var};
use train::optim::{Optimizer, OptimizerConfig};

fn step_once(
    config: OptimizerConfig,
    p: &[f32],
    g: &[f32],
    steps: usize,
    tensor_ops: bool,
) -> Vec<f32> {
    let var = Var::from_tensor(&Tensor::new(p, &Device::Cpu).unwrap()).unwrap();
    let mut opt = Optimizer::new(config, vec![var.clone()], vec![0]).unwrap();
    if tensor_ops {
        opt = opt.with_tensor_ops().unwrap();
    }
    for _ in 0..steps {
        let loss = (var.as_tensor() * &Tensor::new(g, &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads, 1.0, 0.0).unwrap();
    }
    var.as_tensor().to_vec1::<f32>().unwrap()
}

#[test]
fn adamw_first_step_by_hand() {
    let cfg = OptimizerConfig::Adamw {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    // m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25: step = lr * 0.5 / 0.5 = lr (the sign of g).
    // p = 1 * (1 - 0.1 * 0.01) - 0.1 = 0.899;  p = -2 * 0.999 + 0.1 = -1.898
    for tensor_ops in [false, true] {
        let p = step_once(cfg.clone(), &[1.0, -2.0], &[0.5, -3.0], 1, tensor_ops);
        assert!((p[0] - 0.899).abs() < 1e-6, "{p:?}");
        assert!((p[1] + 1.898).abs() < 1e-6, "{p:?}");
    }
}

#[test]
fn adamw_second_step_by_hand() {
    let cfg = OptimizerConfig::Adamw {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    // Constant gradient g: mhat = g and vhat = g^2 at every step, so each step moves by lr.
    let p = step_once(cfg, &[1.0], &[0.5], 2, false);
    assert!((p[0] - 0.8).abs() < 1e-5, "{p:?}");
}

#[test]
fn sgd_momentum_and_l2_by_hand() {
    let cfg = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        momentum_start: 0.9,
        momentum_epochs: 0.0,
        l2: 0.1,
        layer_lr: vec![],
        layer_l2: vec![],
    };
    // step 1: g' = 0.5 + 0.1 * 1 = 0.6, buf = 0.6, p = 1 - 0.06 = 0.94
    // step 2: g' = 0.5 + 0.094 = 0.594, buf = 0.54 + 0.594 = 1.134, p = 0.94 - 0.1134 = 0.8266
    for tensor_ops in [false, true] {
        let p = step_once(cfg.clone(), &[1.0], &[0.5], 2, tensor_ops);
        assert!((p[0] - 0.8266).abs() < 1e-6, "{p:?}");
    }
}

#[test]
fn momentum_ramps_and_layers_scale() {
    let var_a = Var::from_tensor(&Tensor::new(&[1f32], &Device::Cpu).unwrap()).unwrap();
    let var_b = Var::from_tensor(&Tensor::new(&[1f32], &Device::Cpu).unwrap()).unwrap();
    let cfg = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        momentum_start: 0.5,
        momentum_epochs: 4.0,
        l2: 0.0,
        layer_lr: vec![1.0, 2.0],
        layer_l2: vec![],
    };
    let mut opt = Optimizer::new(cfg, vec![var_a.clone(), var_b.clone()], vec![0, 1]).unwrap();
    let grad = |v: &Var| {
        let loss = (v.as_tensor() * 1.0).unwrap().sum_all().unwrap();
        loss.backward().unwrap()
    };
    let mut grads = grad(&var_a);
    let gb = grad(&var_b);
    grads.insert(
        var_b.as_tensor(),
        gb.get(var_b.as_tensor()).unwrap().clone(),
    );
    opt.step(&grads, 1.0, 0.0).unwrap(); // buf = 1; a -= 0.1, b -= 0.2
    opt.step(&grads, 1.0, 2.0).unwrap(); // momentum 0.7: buf = 1.7; a -= 0.17, b -= 0.34
    let a = var_a.as_tensor().to_vec1::<f32>().unwrap()[0];
    let b = var_b.as_tensor().to_vec1::<f32>().unwrap()[0];
    assert!((a - (1.0 - 0.1 - 0.17)).abs() < 1e-6, "{a}");
    assert!((b - (1.0 - 0.2 - 0.34)).abs() < 1e-6, "{b}");
}

#[test]
fn fused_and_tensor_paths_agree_on_big_parameters() {
    let n = 100_003;
    let p: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect();
    let g: Vec<f32> = (0..n)
        .map(|i| ((i * 11) % 17) as f32 / 17.0 - 0.5)
        .collect();
    let cfg = OptimizerConfig::default();
    let a = step_once(cfg.clone(), &p, &g, 3, false);
    let b = step_once(cfg, &p, &g, 3, true);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6);
    }
}

#[test]
fn invalid_settings_are_rejected() {
    let mut cfg = OptimizerConfig::default();
    cfg.set_lr(-1.0);
    assert!(cfg.validate().unwrap_err().contains("positive"));
    cfg.set_lr(f64::NAN);
    assert!(cfg.validate().is_err());
}

/// The tensor-op path (the one GPUs take) keeps values, not graphs: a gradient from
/// `backward` still references the forward pass, and moment buffers built on it would keep
/// every step's graph alive (a CUDA run of the reference net ran out of its 141 GB in 20
/// steps that way).
#[test]
fn tensor_op_moments_hold_no_graph() {
    for config in [OptimizerConfig::adamw(1e-3), OptimizerConfig::koch_sgd()] {
        let var =
            Var::from_tensor(&Tensor::new(&[1f32, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(config, vec![var.clone()], vec![0])
            .unwrap()
            .with_tensor_ops()
            .unwrap();
        for _ in 0..3 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(var.as_tensor()).unwrap().track_op());
            opt.step(&grads, 1.0, 0.0).unwrap();
        }
        let state = opt.state_tensors().unwrap();
        assert!(!state.is_empty());
        for (name, t) in state {
            assert!(!t.track_op(), "{name} tracks its graph");
        }
    }
}
