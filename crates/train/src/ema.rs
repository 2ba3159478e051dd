//! A running average of the weights (`ema = DECAY`): after each optimiser step every parameter
//! and batch-norm statistic `w` moves its shadow `s` to `d * s + (1 - d) * w`, with
//! `d = min(DECAY, (1 + n) / (10 + n))` after `n` earlier updates, so the first steps (whose
//! weights are far from the trained ones) are forgotten quickly. The shadow travels in
//! `last.safetensors` (as `ema.NAME` tensors) so a resumed run averages exactly as an
//! uninterrupted one, and is written as a network of its own, `ema.safetensors`.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use model::SiameseNet;

use crate::error::{Result, TrainError};

/// Prefix of the shadow tensors in a checkpoint.
const PREFIX: &str = "ema.";

pub struct WeightAverage {
    decay: f64,
    /// Updates so far.
    updates: u64,
    /// (name, shadow) for every parameter, then every buffer, in the network's order.
    shadow: Vec<(String, Tensor)>,
}

fn named_state(net: &SiameseNet) -> Vec<(String, Tensor)> {
    net.named_vars()
        .into_iter()
        .chain(net.named_buffers())
        .map(|(name, var)| (name, var.as_tensor().clone()))
        .collect()
}

impl WeightAverage {
    /// Starts the average at the network's current weights.
    pub fn new(decay: f64, net: &SiameseNet) -> Result<Self> {
        let shadow = named_state(net)
            .into_iter()
            .map(|(name, t)| Ok((name, t.copy()?.detach())))
            .collect::<Result<Vec<_>>>()?;
        Ok(WeightAverage {
            decay,
            updates: 0,
            shadow,
        })
    }

    /// The decay the next update uses.
    pub fn current_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Moves the shadow towards the network's weights.
    pub fn update(&mut self, net: &SiameseNet) -> Result<()> {
        let d = self.current_decay();
        // Same order as `named_state`, without building the names each step.
        let weights = net.vars().iter().chain(net.buffers());
        for ((_, s), w) in self.shadow.iter_mut().zip(weights) {
            // Detached: arithmetic on the variable records it, and each shadow would then
            // hold the one before it alive, a copy of the weights per step.
            *s = ((&*s * d)? + (w.as_tensor() * (1.0 - d))?)?.detach();
        }
        self.updates += 1;
        Ok(())
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The averaged weights as a network of the same architecture.
    pub fn network(&self, net: &SiameseNet) -> Result<SiameseNet> {
        let tensors: HashMap<String, Tensor> = self.shadow.iter().cloned().collect();
        Ok(SiameseNet::from_tensors(
            net.arch(),
            &tensors,
            net.device(),
        )?)
    }

    /// The shadow as named tensors for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.shadow
            .iter()
            .map(|(name, t)| (format!("{PREFIX}{name}"), t.clone()))
            .collect()
    }

    /// Restores a shadow saved by [`WeightAverage::state_tensors`] after `updates` updates.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        updates: u64,
        device: &Device,
    ) -> Result<()> {
        for (name, s) in &mut self.shadow {
            let key = format!("{PREFIX}{name}");
            let t = tensors.get(&key).ok_or_else(|| {
                TrainError::Config(format!("checkpoint has no weight average `{key}`"))
            })?;
            if t.dims() != s.dims() {
                return Err(TrainError::Config(format!(
                    "weight average `{key}` has the wrong shape"
                )));
            }
            *s = t.to_device(device)?;
        }
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Arch, Init};

    fn first_weight(net: &SiameseNet) -> Vec<f32> {
        net.vars()[0]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn the_average_follows_the_warm_up_then_the_decay_by_hand() {
        let net = SiameseNet::new(&Arch::conv4(16, 4), Init::Default, 0, &Device::Cpu).unwrap();
        let set = |value: f32| {
            for v in net.vars() {
                v.set(
                    &v.as_tensor()
                        .ones_like()
                        .unwrap()
                        .affine(value as f64, 0.0)
                        .unwrap(),
                )
                .unwrap();
            }
        };
        set(0.0);
        let mut ema = WeightAverage::new(0.5, &net).unwrap();
        // n = 0: d = min(0.5, 1/10) = 0.1, so s = 0.1 * 0 + 0.9 * 10 = 9.
        set(10.0);
        ema.update(&net).unwrap();
        let averaged = ema.network(&net).unwrap();
        assert!(
            first_weight(&averaged)
                .iter()
                .all(|&x| (x - 9.0).abs() < 1e-5)
        );
        // n = 1: d = min(0.5, 2/11) = 2/11, so s = 2/11 * 9 + 9/11 * 20.
        set(20.0);
        ema.update(&net).unwrap();
        let want = 2.0 / 11.0 * 9.0 + 9.0 / 11.0 * 20.0;
        let got = first_weight(&ema.network(&net).unwrap());
        assert!(got.iter().all(|&x| (x - want).abs() < 1e-4), "{got:?}");
        // From n = 8 on, (1 + n) / (10 + n) >= 0.5: the decay itself.
        for _ in 2..8 {
            ema.update(&net).unwrap();
        }
        assert_eq!(ema.current_decay(), 0.5);
        assert_eq!(ema.updates(), 8);
        // The network itself is untouched.
        assert!(first_weight(&net).iter().all(|&x| x == 20.0));
        // The shadow holds values, not a graph back to every earlier update: one that
        // tracked the variables would keep each step's copy of the weights alive.
        assert!(ema.state_tensors().iter().all(|(_, t)| !t.track_op()));
    }

    #[test]
    fn the_shadow_round_trips_through_a_checkpoint_map() {
        let net = SiameseNet::new(
            &Arch::preset("conv4-16-bn").unwrap(),
            Init::Default,
            1,
            &Device::Cpu,
        )
        .unwrap();
        let mut ema = WeightAverage::new(0.9, &net).unwrap();
        ema.update(&net).unwrap();
        let saved: HashMap<String, Tensor> = ema.state_tensors().into_iter().collect();
        assert!(saved.keys().all(|k| k.starts_with("ema.")));
        assert!(
            saved.keys().any(|k| k.ends_with("running_var")),
            "buffers too"
        );
        let mut back = WeightAverage::new(0.9, &net).unwrap();
        back.load_state(&saved, 1, &Device::Cpu).unwrap();
        assert_eq!(back.updates(), 1);
        assert_eq!(back.current_decay(), ema.current_decay());
        let mut missing = saved.clone();
        let key = missing.keys().next().unwrap().clone();
        missing.remove(&key);
        let err = back
            .load_state(&missing, 1, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&key), "{err}");
    }
}
