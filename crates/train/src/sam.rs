//! Sharpness-aware minimisation (Foret et al., 2021): each step takes its gradient at the point
//! of the neighbourhood where the loss rises fastest, `w + rho * g / |g|`, and applies it to the
//! unmoved weights `w`. It seeks flat minima, which tend to carry over better to data not seen
//! in training (here: alphabets not seen in training), at the price of a second forward and
//! backward pass per step.
//!
//! The second pass also moves the batch-norm running statistics; the trainer snapshots them with
//! [`Saved`] and puts them back, so they take one update per step, from the unmoved weights.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::error::Result;

/// Exact copies of some variables' values, to put back later.
#[must_use = "values saved are only useful if restored"]
pub struct Saved {
    values: Vec<(Var, Tensor)>,
}

impl Saved {
    /// Copies the current value of each of `vars`.
    pub fn of<'a>(vars: impl IntoIterator<Item = &'a Var>) -> Result<Self> {
        let values = vars
            .into_iter()
            .map(|v| Ok((v.clone(), v.as_tensor().detach().copy()?)))
            .collect::<Result<_>>()?;
        Ok(Saved { values })
    }

    /// Sets every saved variable back to the value it had when saved, bit for bit.
    pub fn restore(self) -> Result<()> {
        for (var, value) in self.values {
            var.set(&value)?;
        }
        Ok(())
    }
}

/// The L2 norm of all of `vars`' gradients together (vars without one count as zero).
pub fn gradient_norm(vars: &[Var], grads: &GradStore) -> Result<f64> {
    norm(vars.iter().filter_map(|v| grads.get(v.as_tensor())))
}

/// The L2 norm of all of `tensors` together, summed in f64.
fn norm<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Result<f64> {
    let mut sum = 0.0f64;
    for t in tensors {
        sum += t
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    Ok(sum.sqrt())
}

/// Moves each of `vars` that has a gradient by `rho * g / |g|`, with `|g|` the norm of all
/// their gradients together, and returns what puts them back. A zero gradient moves nothing.
pub fn ascend(vars: &[Var], grads: &GradStore, rho: f64) -> Result<Saved> {
    let moved: Vec<(Var, Tensor)> = vars
        .iter()
        .filter_map(|v| grads.get(v.as_tensor()).map(|g| (v.clone(), g.detach())))
        .collect();
    let saved = Saved::of(moved.iter().map(|(v, _)| v))?;
    let norm = norm(moved.iter().map(|(_, g)| g))?;
    if norm > 0.0 && norm.is_finite() {
        let scale = rho / norm;
        for (var, g) in &moved {
            var.set(&(var.as_tensor().detach() + (g * scale)?)?)?;
        }
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn ascend_moves_by_rho_along_the_unit_gradient_and_restores_exactly() {
        let dev = Device::Cpu;
        let a = Var::from_slice(&[1.0f32, -2.0], 2, &dev).unwrap();
        let b = Var::from_slice(&[0.5f32], 1, &dev).unwrap();
        let untouched = Var::from_slice(&[7.0f32], 1, &dev).unwrap();
        // loss = 3 a0 + 0 a1 + 4 b: gradients (3, 0) and (4), norm 5.
        let w_a = Tensor::from_slice(&[3.0f32, 0.0], 2, &dev).unwrap();
        let w_b = Tensor::from_slice(&[4.0f32], 1, &dev).unwrap();
        let loss = ((a.as_tensor() * &w_a).unwrap().sum_all().unwrap()
            + (b.as_tensor() * &w_b).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let vars = [a.clone(), b.clone(), untouched.clone()];
        assert_eq!(gradient_norm(&vars, &grads).unwrap(), 5.0);

        let saved = ascend(&vars, &grads, 0.5).unwrap();
        // 0.5 * (3, 0, 4) / 5 = (0.3, 0, 0.4).
        let moved_a = values(&a);
        assert!((moved_a[0] - 1.3).abs() < 1e-6, "{moved_a:?}");
        assert_eq!(moved_a[1], -2.0);
        assert!((values(&b)[0] - 0.9).abs() < 1e-6, "{:?}", values(&b));
        assert_eq!(values(&untouched), [7.0], "no gradient, no move");

        saved.restore().unwrap();
        assert_eq!(values(&a), [1.0, -2.0]);
        assert_eq!(values(&b), [0.5]);
    }

    #[test]
    fn a_zero_gradient_moves_nothing() {
        let dev = Device::Cpu;
        let a = Var::from_slice(&[1.0f32, 2.0], 2, &dev).unwrap();
        let loss = (a.as_tensor() * 0.0).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let saved = ascend(std::slice::from_ref(&a), &grads, 0.05).unwrap();
        assert_eq!(values(&a), [1.0, 2.0]);
        saved.restore().unwrap();
        assert_eq!(values(&a), [1.0, 2.0]);
    }

    #[test]
    fn saved_values_are_copies_not_views() {
        let dev = Device::Cpu;
        let a = Var::from_slice(&[1.0f32, 2.0], 2, &dev).unwrap();
        let saved = Saved::of(std::slice::from_ref(&a)).unwrap();
        a.set(&Tensor::from_slice(&[9.0f32, 9.0], 2, &dev).unwrap())
            .unwrap();
        saved.restore().unwrap();
        assert_eq!(values(&a), [1.0, 2.0]);
    }
}
