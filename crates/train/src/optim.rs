//! AdamW with decoupled weight decay, as `torch.optim.AdamW` computes it,
//! written out here because its moments must be saved and restored
//! exactly for a resumed run to continue the same trajectory (tch's
//! optimizer keeps them out of reach). Biases and LayerNorm parameters get
//! no weight decay, as in the transformers Trainer.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::Tensor;

use crate::{Schedule, TrainSettings};

struct Param {
    name: String,
    var: Tensor,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

pub struct AdamW {
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Optimizer steps taken (Adam's bias-correction counter).
    pub steps: u64,
}

impl AdamW {
    /// An optimizer over every trainable variable of `vars`, in name order.
    pub fn new(vars: &VarStore, s: &TrainSettings) -> Self {
        let mut named: Vec<(String, Tensor)> = vars.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, var)| Param {
                decay: !(name.ends_with(".bias") || name.contains("layernorm")),
                m: var.zeros_like(),
                v: var.zeros_like(),
                name,
                var,
            })
            .collect();
        Self {
            params,
            beta1: s.adam_beta1,
            beta2: s.adam_beta2,
            eps: s.adam_eps,
            weight_decay: s.weight_decay,
            steps: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.var.zero_grad();
        }
    }

    /// The gradients' global L2 norm.
    pub fn grad_norm(&self) -> f64 {
        let _no_grad = tch::no_grad_guard();
        let squares: Vec<Tensor> = self
            .grads()
            .map(|g| g.to_kind(tch::Kind::Float).square().sum(tch::Kind::Float))
            .collect();
        if squares.is_empty() {
            return 0.0;
        }
        f64::try_from(Tensor::stack(&squares, 0).sum(tch::Kind::Float).sqrt()).unwrap_or(f64::NAN)
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale_grads(&mut self, factor: f64) {
        let _no_grad = tch::no_grad_guard();
        for mut g in self.grads() {
            let _ = g.g_mul_scalar_(factor);
        }
    }

    fn grads(&self) -> impl Iterator<Item = Tensor> + '_ {
        self.params
            .iter()
            .map(|p| p.var.grad())
            .filter(|g| g.defined())
    }

    /// One AdamW update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        let _no_grad = tch::no_grad_guard();
        self.steps += 1;
        let t = self.steps as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        for p in &mut self.params {
            let grad = p.var.grad();
            if !grad.defined() {
                continue;
            }
            if p.decay && self.weight_decay > 0.0 {
                let _ = p.var.g_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            let _ = p.m.lerp_(&grad, 1.0 - self.beta1);
            let _ = p.v.g_mul_scalar_(self.beta2);
            let _ = p.v.g_add_(&(&grad * &grad * (1.0 - self.beta2)));
            let denom = p.v.sqrt() / correction2_sqrt + self.eps;
            let _ = p.var.g_sub_(&(&p.m / denom * (lr / correction1)));
        }
    }

    /// The moments, as `exp_avg.NAME` and `exp_avg_sq.NAME` tensors.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .flat_map(|p| {
                [
                    (format!("exp_avg.{}", p.name), p.m.shallow_clone()),
                    (format!("exp_avg_sq.{}", p.name), p.v.shallow_clone()),
                ]
            })
            .collect()
    }

    /// Restores moments saved by [`AdamW::state`] after `steps` steps.
    pub fn restore(
        &mut self,
        mut saved: HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<(), String> {
        let _no_grad = tch::no_grad_guard();
        for p in &mut self.params {
            for (prefix, slot) in [("exp_avg", &mut p.m), ("exp_avg_sq", &mut p.v)] {
                let key = format!("{prefix}.{}", p.name);
                let t = saved
                    .remove(&key)
                    .ok_or_else(|| format!("optimizer state lacks {key}"))?;
                if t.size() != slot.size() {
                    return Err(format!(
                        "optimizer state {key} has shape {:?}, expected {:?}",
                        t.size(),
                        slot.size()
                    ));
                }
                slot.copy_(&t);
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// The learning rate at optimizer step `step` (0-based) of `total`: linear
/// warmup from 0 over `warmup` steps, then `schedule` down to 0 at `total`.
pub fn learning_rate(
    schedule: Schedule,
    peak: f64,
    warmup: usize,
    total: usize,
    step: usize,
) -> f64 {
    if step < warmup {
        return peak * (step as f64 / warmup as f64);
    }
    let decay_steps = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / decay_steps).min(1.0);
    match schedule {
        Schedule::Constant => peak,
        Schedule::Linear => peak * (1.0 - progress),
        Schedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn matches_torch_adamw_on_a_quadratic() {
        // Reference: torch.optim.AdamW([w], lr=0.1, weight_decay=0.1) on
        // loss = sum((w - 3)^2) from w = [1, -2], three steps.
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1f32, -2.0]));
        let s = TrainSettings {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(&vs, &s);
        for _ in 0..3 {
            opt.zero_grad();
            (&w - 3.0).square().sum(Kind::Float).backward();
            opt.step(0.1);
        }
        let got = Vec::<f32>::try_from(&w).unwrap();
        let expected = [1.266_766f32, -1.643_848];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn no_decay_for_biases_and_layernorms() {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = nn::linear(&root / "dense", 2, 2, Default::default());
        let _ = nn::layer_norm(&root / "layernorm", vec![2], Default::default());
        let opt = AdamW::new(&vs, &TrainSettings::default());
        let decayed: Vec<_> = opt
            .params
            .iter()
            .filter(|p| p.decay)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(decayed, ["dense.weight"]);
    }

    #[test]
    fn warmup_then_decay() {
        let lr = |sched, step| learning_rate(sched, 1.0, 10, 110, step);
        assert_eq!(lr(Schedule::Linear, 0), 0.0);
        assert_eq!(lr(Schedule::Linear, 5), 0.5);
        assert_eq!(lr(Schedule::Linear, 10), 1.0);
        assert_eq!(lr(Schedule::Linear, 60), 0.5);
        assert!(lr(Schedule::Cosine, 60) - 0.5 < 1e-12);
        assert_eq!(lr(Schedule::Constant, 100), 1.0);
        assert_eq!(lr(Schedule::Linear, 110), 0.0);
    }
}
