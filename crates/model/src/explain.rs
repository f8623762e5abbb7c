//! Explanation maps of a batch, on the model thread: the two methods of
//! [`ExplainMethod`] over the ViT's attention probabilities, the CLS
//! token's row over the patch tokens. Gradients come from libtorch's own
//! autograd (`run_backward` on the attention tensors), so `relevance` is
//! the same computation as Chefer's PyTorch code, not a re-derivation.
//! Only these passes materialise attention; plain scoring keeps the fused
//! kernel.
//!
//! Weights are frozen, so the backward pass computes gradients of
//! activations only, from the last layer down to the first attention
//! map, and stops there: nothing reaches the patch embedding.

use dfscan_core::ExplainMethod;
use tch::{Kind, Tensor};

use crate::vit::VitClassifier;

/// Raw maps [B, patches] of `pixels` [B, C, H, W] by `method`; `targets`
/// (one class index per row) are the logits `relevance` explains.
pub fn maps(
    model: &VitClassifier,
    pixels: &Tensor,
    method: ExplainMethod,
    targets: &[i64],
) -> Tensor {
    match method {
        ExplainMethod::Rollout => {
            let (_, attention) = model.forward_with_attention(pixels);
            rollout(&attention)
        }
        ExplainMethod::Relevance => tch::with_grad(|| {
            // A leaf that requires grad makes libtorch record the graph;
            // run_backward asks only for the attention maps' gradients.
            let input = pixels.detach().set_requires_grad(true);
            let (logits, attention) = model.forward_with_attention(&input);
            let index = Tensor::from_slice(targets)
                .to_device(logits.device())
                .unsqueeze(1);
            let chosen = logits.gather(1, &index, false).sum(Kind::Float);
            let gradients = Tensor::run_backward(&[chosen], &attention, false, false);
            relevance(&attention, &gradients)
        }),
    }
}

/// R = I; per layer R += mean_heads(clamp(∇A ⊙ A, min 0)) · R; CLS row.
fn relevance(attention: &[Tensor], gradients: &[Tensor]) -> Tensor {
    let _no_grad = tch::no_grad_guard();
    let mut r = identity(&attention[0]);
    for (a, g) in attention.iter().zip(gradients) {
        let cam = (g.to_kind(Kind::Float) * a.to_kind(Kind::Float))
            .clamp_min(0.0)
            .mean_dim([1i64].as_slice(), false, Kind::Float);
        r = &r + cam.bmm(&r);
    }
    cls_row(&r)
}

/// Per layer 0.5 · mean_heads(A) + 0.5 · I, rows renormalised, multiplied
/// with the later layer on the left; CLS row.
fn rollout(attention: &[Tensor]) -> Tensor {
    let eye = identity(&attention[0]);
    let mut r: Option<Tensor> = None;
    for a in attention {
        let mixed = a
            .to_kind(Kind::Float)
            .mean_dim([1i64].as_slice(), false, Kind::Float)
            * 0.5
            + &eye * 0.5;
        let mixed = &mixed / mixed.sum_dim_intlist([-1i64].as_slice(), true, Kind::Float);
        r = Some(match r {
            None => mixed,
            Some(r) => mixed.bmm(&r),
        });
    }
    cls_row(&r.expect("a ViT has layers"))
}

/// [B, T, T] identities for attention [B, heads, T, T], in f32.
fn identity(attention: &Tensor) -> Tensor {
    let size = attention.size();
    let (b, t) = (size[0], size[2]);
    Tensor::eye(t, (Kind::Float, attention.device())).expand([b, t, t], false)
}

/// The CLS token's relevance to each patch token: [B, T - 1].
fn cls_row(r: &Tensor) -> Tensor {
    r.select(1, 0).narrow(1, 1, r.size()[2] - 1)
}
