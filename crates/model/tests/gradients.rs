//! The CPU conv-block kernel against candle's generic ops, and every layer's gradients against
//! finite differences, odd sizes included.

use candle_core::{DType, Device, Tensor, Var};
use model::layers::{
    blur_max_pool, channel_gates, conv_block, max_pool2, max_pool2_ceil, reference_blur_max_pool,
    reference_conv_block,
};
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// (N, Cin, side, Cout, kernel, padding, pool)
const SHAPES: &[(usize, usize, usize, usize, usize, usize, bool)] = &[
    (3, 2, 9, 4, 3, 1, true),  // 9 -> 9 -> 4 (odd map)
    (2, 3, 7, 5, 3, 1, true),  // 7 -> 3 after pool
    (2, 2, 5, 3, 3, 1, true),  // 5 -> 5 -> 2
    (2, 4, 3, 3, 3, 1, true),  // 3 -> 3 -> 1
    (3, 3, 8, 6, 4, 0, false), // no pool
    (1, 2, 6, 3, 1, 0, true),  // 1x1 kernel
    (4, 1, 12, 8, 5, 2, true),
];

#[test]
fn cpu_kernel_matches_candle_forward_and_gradients() {
    for (i, &(n, cin, side, cout, k, pad, pool)) in SHAPES.iter().enumerate() {
        let seed = i as u64 * 10;
        let x = Var::from_tensor(&random(&[n, cin, side, side], seed, -1.0, 1.0)).unwrap();
        let w = Var::from_tensor(&random(&[cout, cin, k, k], seed + 1, -0.5, 0.5)).unwrap();
        let b = Var::from_tensor(&random(&[cout], seed + 2, -0.2, 0.2)).unwrap();
        let ours = conv_block(&x, &w, &b, pad, pool, true, true).unwrap();
        let reference = reference_conv_block(&x, &w, &b, pad, pool).unwrap();
        assert_eq!(ours.dims(), reference.dims(), "shape {i}");
        assert!(max_rel_diff(&ours, &reference) < 1e-5, "forward {i}");
        let r = random(ours.dims(), seed + 3, -1.0, 1.0);
        let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
            let a = g1.get(v).unwrap();
            let e = g2.get(v).unwrap();
            assert!(
                max_rel_diff(a, e) < 1e-4,
                "grad {name} of shape {i}: {}",
                max_rel_diff(a, e)
            );
        }
    }
}

#[test]
fn first_layer_skips_the_input_gradient() {
    let x = Var::from_tensor(&random(&[2, 1, 6, 6], 1, 0.0, 1.0)).unwrap();
    let w = Var::from_tensor(&random(&[3, 1, 3, 3], 2, -1.0, 1.0)).unwrap();
    let b = Var::from_tensor(&random(&[3], 3, 0.0, 0.1)).unwrap();
    let y = conv_block(&x, &w, &b, 1, true, false, true).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(&x).is_none());
    assert!(g.get(&w).is_some());
}

#[test]
fn koch_layer_shapes_agree_with_candle() {
    // The reference net's layers at a batch of 2 images.
    for (cin, side, cout, k, pool, seed) in [
        (1, 105, 64, 10, true, 1),
        (64, 48, 128, 7, true, 2),
        (128, 21, 128, 4, true, 3),
        (128, 9, 256, 4, false, 4),
    ] {
        let x = Var::from_tensor(&random(&[2, cin, side, side], seed, 0.0, 1.0)).unwrap();
        let w = Var::from_tensor(&random(&[cout, cin, k, k], seed + 1, -0.05, 0.05)).unwrap();
        let b = Var::from_tensor(&random(&[cout], seed + 2, -0.1, 0.1)).unwrap();
        let ours = conv_block(&x, &w, &b, 0, pool, true, true).unwrap();
        let reference = reference_conv_block(&x, &w, &b, 0, pool).unwrap();
        assert!(
            max_rel_diff(&ours, &reference) < 1e-4,
            "forward {cin}->{cout} k{k}"
        );
        let r = random(ours.dims(), seed + 3, -1.0, 1.0);
        let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < 1e-4, "grad {cin}->{cout} k{k}: {d}");
        }
    }
}

/// Central differences of `f` with respect to a few elements of `v`, against autograd.
fn check_fd(f: &dyn Fn() -> Tensor, v: &Var, samples: usize, tol: f32) {
    let grads = f().backward().unwrap();
    let g = grads
        .get(v)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let base = v
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let eps = 2e-3f32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut checked = 0;
    for _ in 0..samples {
        let i = rng.random_range(0..base.len());
        let at = |delta: f32| {
            let mut p = base.clone();
            p[i] += delta;
            v.set(&Tensor::from_vec(p, v.dims(), &Device::Cpu).unwrap())
                .unwrap();
            f().to_dtype(DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap() as f32
        };
        let (up, mid, down) = (at(eps), at(0.0), at(-eps));
        v.set(&Tensor::from_vec(base.clone(), v.dims(), &Device::Cpu).unwrap())
            .unwrap();
        let (forward, backward) = ((up - mid) / eps, (mid - down) / eps);
        if (forward - backward).abs() > tol * (1.0 + forward.abs()) {
            // A ReLU or max kink lies within +-eps: the function is not differentiable here.
            continue;
        }
        checked += 1;
        let numeric = (up - down) / (2.0 * eps);
        let err = (numeric - g[i]).abs();
        assert!(
            err <= tol * (1.0 + numeric.abs()),
            "element {i}: numeric {numeric}, autograd {}",
            g[i]
        );
    }
    assert!(
        checked * 2 >= samples,
        "only {checked} of {samples} samples were smooth"
    );
}

#[test]
fn pooling_gradient_matches_finite_differences_on_odd_sizes() {
    for (side, seed) in [(7usize, 1u64), (3, 2), (6, 3), (5, 4)] {
        let x = shuffled(&[2, 3, side, side], seed);
        let r = random(&[2, 3, side / 2, side / 2], seed + 7, -1.0, 1.0);
        let f = || (max_pool2(&x).unwrap() * &r).unwrap().sum_all().unwrap();
        check_fd(&f, &x, 40, 1e-3);
        // With a gradient of ones, every window passes exactly 1 (PyTorch: 9 for 7x7 -> 3x3).
        assert_eq!(
            total_input_gradient(max_pool2, &x),
            (2 * 3 * (side / 2) * (side / 2)) as f32,
            "side {side}"
        );
    }
}

/// The sum of the input gradient of `pool(x)`'s sum.
fn total_input_gradient(pool: impl Fn(&Tensor) -> model::error::Result<Tensor>, x: &Var) -> f32 {
    pool(x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(x)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn tied_maxima_pass_the_window_gradient_once() {
    // A constant image: all four values of every window tie.
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let g = max_pool2(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gx = g
        .get(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(gx, vec![0.25; 16]);
    // The CPU kernel gives each window's gradient to the first maximum, like PyTorch.
    let w =
        Var::from_tensor(&Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let y = conv_block(&x, &w, &b, 0, true, true, true).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let gx = g
        .get(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let expected: Vec<f32> = (0..16)
        .map(|i| {
            if (i / 4) % 2 == 0 && i % 2 == 0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    assert_eq!(gx, expected);
    // dW sums the input under each window's chosen maximum: 4 windows of 1.0.
    let dw = g
        .get(&w)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(dw, vec![4.0]);
}

#[test]
fn conv_block_gradients_match_finite_differences() {
    for (i, &(n, cin, side, cout, k, pad, pool)) in SHAPES.iter().enumerate().take(5) {
        let seed = 100 + i as u64;
        let x = Var::from_tensor(&random(&[n, cin, side, side], seed, -1.0, 1.0)).unwrap();
        let w = Var::from_tensor(&random(&[cout, cin, k, k], seed + 1, -0.5, 0.5)).unwrap();
        let b = Var::from_tensor(&random(&[cout], seed + 2, 0.05, 0.2)).unwrap();
        let o = if pool {
            (side + 2 * pad + 1 - k) / 2
        } else {
            side + 2 * pad + 1 - k
        };
        let r = random(&[n, cout, o, o], seed + 3, -1.0, 1.0);
        let f = || {
            (conv_block(&x, &w, &b, pad, pool, true, true).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        // Piecewise linear: differences are exact unless a kink is crossed, which the
        // tolerance absorbs for the rare sample.
        for v in [&w, &b, &x] {
            check_fd(&f, v, 12, 0.02);
        }
    }
}

#[test]
fn batch_norm_block_matches_candle_in_training_and_inference() {
    use model::layers::{BatchNorm, conv_bn_block, reference_conv_bn_block};
    for (i, &(n, cin, side, cout, k, pad, pool)) in SHAPES.iter().enumerate().take(5) {
        let seed = 300 + i as u64;
        let x = Var::from_tensor(&random(&[n, cin, side, side], seed, -1.0, 1.0)).unwrap();
        let w = Var::from_tensor(&random(&[cout, cin, k, k], seed + 1, -0.5, 0.5)).unwrap();
        let b = Var::from_tensor(&random(&[cout], seed + 2, -0.2, 0.2)).unwrap();
        let gamma = Var::from_tensor(&random(&[cout], seed + 3, 0.5, 1.5)).unwrap();
        let beta = Var::from_tensor(&random(&[cout], seed + 4, -0.3, 0.3)).unwrap();
        let rm = random(&[cout], seed + 5, -0.1, 0.1);
        let rv = random(&[cout], seed + 6, 0.5, 1.5);
        let bn = BatchNorm {
            gamma: &gamma,
            beta: &beta,
            running_mean: &rm,
            running_var: &rv,
            stats_from_first: None,
        };
        // Inference with the first images' statistics, on both paths.
        let support = BatchNorm {
            stats_from_first: Some(n.div_ceil(2)),
            ..bn
        };
        let (ours, _) = conv_bn_block(&x, &w, &b, pad, pool, true, false, &support).unwrap();
        let (reference, _) =
            reference_conv_bn_block(&x, &w, &b, pad, pool, false, &support).unwrap();
        assert!(
            max_rel_diff(&ours, &reference) < 1e-4,
            "support statistics {i}: {}",
            max_rel_diff(&ours, &reference)
        );
        for train in [true, false] {
            let (ours, s1) = conv_bn_block(&x, &w, &b, pad, pool, true, train, &bn).unwrap();
            let (reference, s2) =
                reference_conv_bn_block(&x, &w, &b, pad, pool, train, &bn).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(
                max_rel_diff(&ours, &reference) < 1e-4,
                "forward {i} train={train}: {}",
                max_rel_diff(&ours, &reference)
            );
            assert_eq!(s1.is_some(), train);
            if let (Some((m1, v1)), Some((m2, v2))) = (s1, s2) {
                assert!(
                    max_rel_diff(&m1, &m2) < 1e-4 && max_rel_diff(&v1, &v2) < 1e-4,
                    "stats {i}"
                );
            }
            if train {
                let r = random(ours.dims(), seed + 7, -1.0, 1.0);
                let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let g2 = (reference * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for (name, v) in [("x", &x), ("w", &w), ("gamma", &gamma), ("beta", &beta)] {
                    let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                    assert!(d < 1e-3, "grad {name} of shape {i}: {d}");
                }
            }
        }
    }
}

#[test]
fn a_ceil_pool_keeps_the_last_row_and_column_and_routes_their_gradient() {
    let v: Vec<f32> = vec![1.0, 5.0, 2.0, 3.0, 4.0, 9.0, 7.0, 0.0, 6.0];
    let x = Var::from_tensor(&Tensor::from_vec(v, (1, 1, 3, 3), &Device::Cpu).unwrap()).unwrap();
    // Floor keeps one window; ceil adds the right column, the bottom row and the corner.
    assert_eq!(values(&max_pool2(&x).unwrap()), vec![5.0]);
    let ceil = max_pool2_ceil(&x).unwrap();
    assert_eq!(ceil.dims(), &[1, 1, 2, 2]);
    assert_eq!(values(&ceil), vec![5.0, 9.0, 7.0, 6.0]);
    let r = Tensor::from_vec(vec![1f32, 2.0, 3.0, 4.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    let g = (ceil * r).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = values(g.get(&x).unwrap());
    assert_eq!(gx, vec![0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 4.0]);
    // An even map pools exactly as the floor pool does.
    let even = random(&[2, 3, 4, 4], 5, 0.0, 1.0);
    assert_eq!(
        values(&max_pool2_ceil(&even).unwrap()),
        values(&max_pool2(&even).unwrap())
    );
}

/// Distinct, well-separated values in a random order, so that no pooling window ties and
/// +-eps never changes a window's winner.
fn shuffled(shape: &[usize], seed: u64) -> Var {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let mut vals: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
    for i in (1..n).rev() {
        vals.swap(i, rng.random_range(0..=i));
    }
    Var::from_tensor(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap()).unwrap()
}

#[test]
fn the_blur_pool_kernel_matches_candle_and_finite_differences() {
    use model::BlurFilter;
    let cases = [(3usize, 1u64), (4, 2), (5, 3), (8, 4), (11, 5), (20, 6)];
    for filter in [BlurFilter::Tri3, BlurFilter::Bin5] {
        for (side, seed) in cases.into_iter().filter(|&(s, _)| s >= filter.min_side()) {
            let x = shuffled(&[2, 3, side, side], seed);
            let o = side / 2;
            let fused = blur_max_pool(&x, filter).unwrap();
            assert_eq!(fused.dims(), &[2, 3, o, o], "{filter:?}, side {side}");
            let reference = reference_blur_max_pool(&x, filter).unwrap();
            assert!(
                max_rel_diff(&fused, &reference) < 1e-6,
                "{filter:?}, side {side}"
            );
            let r = random(&[2, 3, o, o], seed + 7, -1.0, 1.0);
            let g1 = (&fused * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&reference * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let d = max_rel_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap());
            assert!(d < 1e-6, "{filter:?}, side {side}: gradients differ by {d}");
            if side <= 5 {
                // Larger maps sum too many large values for f32 central differences at this
                // eps; their gradients are checked against candle's autograd above.
                let f = || {
                    (blur_max_pool(&x, filter).unwrap() * &r)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                };
                check_fd(&f, &x, 40, 1e-3);
            }
            // The blur's taps sum to one, so a gradient of ones passes exactly one per output
            // cell.
            let total = total_input_gradient(|x| blur_max_pool(x, filter), &x);
            assert!(
                (total - (2 * 3 * o * o) as f32).abs() < 1e-4,
                "{filter:?}, side {side}: {total}"
            );
        }
    }
}

#[test]
fn a_blur_pool_is_steadier_than_a_max_pool_under_a_one_pixel_shift() {
    // A one-pixel-wide vertical stroke at column 3 or 4 of an 8x8 map: the strided max puts
    // it in different output columns (one of them with a full column of 1s, the other empty);
    // the blur pool spreads it over neighbouring columns, so the two outputs stay close.
    let stroke = |col: usize| {
        let v: Vec<f32> = (0..64).map(|i| f32::from(i % 8 == col)).collect();
        Tensor::from_vec(v, (1, 1, 8, 8), &Device::Cpu).unwrap()
    };
    let change = |pool: &dyn Fn(&Tensor) -> Tensor| {
        let (a, b) = (values(&pool(&stroke(3))), values(&pool(&stroke(4))));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>()
    };
    let strided = change(&|x| max_pool2(x).unwrap());
    let blurred = change(&|x| blur_max_pool(x, model::BlurFilter::Tri3).unwrap());
    // Strided: column 1 all 1s, then column 2 all 1s: 8 cells differ by 1.
    assert_eq!(strided, 8.0);
    // Blurred: the dense max covers columns 2-3 or 3-4; the blur at output columns 1 and 2
    // reads (3/4, 1/4) and then (1/4, 3/4) of them: 4 rows x 2 columns x 1/2.
    assert!((blurred - 4.0).abs() < 1e-6, "{blurred}");
    // The wide filter spreads the stroke further, so the shift changes the output less.
    let wide = change(&|x| blur_max_pool(x, model::BlurFilter::Bin5).unwrap());
    assert!(wide < blurred, "{wide} against {blurred}");
    // Too small a map is an error, not a panic: below 3x3, or 4x4 for the wide filter.
    use model::BlurFilter::{Bin5, Tri3};
    let zeros = |side: usize| {
        Tensor::zeros((1, 1, side, side), candle_core::DType::F32, &Device::Cpu).unwrap()
    };
    for (side, filter) in [(2, Tri3), (3, Bin5)] {
        let e = blur_max_pool(&zeros(side), filter).unwrap_err().to_string();
        assert!(e.contains(&format!("S >= {}", side + 1)), "{e}");
        let e = reference_blur_max_pool(&zeros(side), filter)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{side}x{side}")), "{e}");
    }
}

#[test]
fn signed_sqrt_compresses_by_hand_and_has_a_finite_slope_at_zero() {
    use model::Activation;
    let v: Vec<f32> = vec![-4.0, 0.0, 0.99, 9.0];
    let x = Var::from_tensor(&Tensor::from_vec(v, 4, &Device::Cpu).unwrap()).unwrap();
    let y = model::layers::activate(&x, Activation::SignedSqrt).unwrap();
    // sign(x) (sqrt(|x| + 0.01) - 0.1)
    let want = [-(4.01f32.sqrt() - 0.1), 0.0, 0.9, 9.01f32.sqrt() - 0.1];
    for (got, want) in values(&y).iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{got} against {want}");
    }
    // d/dx = 1 / (2 sqrt(|x| + 0.01)): 5 at 0, 0.5 at 0.99.
    let g = values(y.sum_all().unwrap().backward().unwrap().get(&x).unwrap());
    let slopes = [0.5 / 4.01f32.sqrt(), 5.0, 0.5, 0.5 / 9.01f32.sqrt()];
    for (got, want) in g.iter().zip(slopes) {
        assert!((got - want).abs() < 1e-4, "{got} against {want}");
    }
    assert_eq!(
        "signed-sqrt".parse::<Activation>().unwrap(),
        Activation::SignedSqrt
    );
    assert_eq!(
        serde_json::to_string(&Activation::SignedSqrt).unwrap(),
        r#""signed-sqrt""#
    );
    assert!(
        "sqrt"
            .parse::<Activation>()
            .unwrap_err()
            .to_string()
            .contains("signed-sqrt"),
        "the error names the choices"
    );
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn channel_gates_match_finite_differences_for_maps_and_weights() {
    let x = Var::from_tensor(&random(&[2, 4, 3, 3], 21, -1.0, 1.0)).unwrap();
    let w1 = Var::from_tensor(&random(&[2, 4], 22, -1.0, 1.0)).unwrap();
    let b1 = Var::from_tensor(&random(&[2], 23, 0.1, 0.5)).unwrap();
    let w2 = Var::from_tensor(&random(&[4, 2], 24, -1.0, 1.0)).unwrap();
    let b2 = Var::from_tensor(&random(&[4], 25, -0.5, 0.5)).unwrap();
    let r = random(&[2, 4, 3, 3], 26, -1.0, 1.0);
    let f = || {
        let p = [
            w1.as_tensor(),
            b1.as_tensor(),
            w2.as_tensor(),
            b2.as_tensor(),
        ];
        (channel_gates(x.as_tensor(), p).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    for v in [&x, &w1, &b1, &w2, &b2] {
        check_fd(&f, v, 12, 1e-3);
    }
}
