//! `ViTForImageClassification` as a tch module. Variables are created under
//! the same names as the Hugging Face weights (`vit.embeddings.*`,
//! `vit.encoder.layer.{i}.*`, `vit.layernorm.*`, `classifier.*`), so a
//! checkpoint loads without a renaming map.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::vit_config::{Activation, VitConfig};

struct Embeddings {
    cls_token: Tensor,
    position_embeddings: Tensor,
    projection: nn::Conv2D,
}

impl Embeddings {
    fn new(p: nn::Path, c: &VitConfig) -> Self {
        let patches = c.grid() * c.grid();
        let conv = nn::ConvConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        Self {
            cls_token: p.zeros("cls_token", &[1, 1, c.hidden_size]),
            position_embeddings: p.zeros("position_embeddings", &[1, patches + 1, c.hidden_size]),
            projection: nn::conv2d(
                p / "patch_embeddings" / "projection",
                c.num_channels,
                c.hidden_size,
                c.patch_size,
                conv,
            ),
        }
    }

    /// [B, C, H, W] → [B, 1 + patches, hidden].
    fn forward(&self, pixels: &Tensor) -> Tensor {
        let patches = self
            .projection
            .forward(pixels)
            .flatten(2, -1)
            .transpose(1, 2);
        let batch = patches.size()[0];
        let cls = self.cls_token.expand([batch, -1, -1], false);
        Tensor::cat(&[cls, patches], 1) + &self.position_embeddings
    }
}

struct Layer {
    heads: i64,
    /// The checkpoint's separate projections (they own the variables)...
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    /// ...and, for inference, their concatenation: one [hidden, 3·hidden]
    /// GEMM runs closer to the machine's peak than three [hidden, hidden]
    /// ones. It is a copy, so training (`None`) concatenates on every
    /// forward pass instead, letting gradients reach the three variables.
    fused_qkv: Option<nn::Linear>,
    attention_out: nn::Linear,
    intermediate: nn::Linear,
    output: nn::Linear,
    layernorm_before: nn::LayerNorm,
    layernorm_after: nn::LayerNorm,
    activation: Activation,
}

impl Layer {
    fn new(p: nn::Path, c: &VitConfig) -> Self {
        let h = c.hidden_size;
        let qkv = nn::LinearConfig {
            bias: c.qkv_bias,
            ..Default::default()
        };
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        let attn = &p / "attention";
        let self_attn = &attn / "attention";
        let query = nn::linear(&self_attn / "query", h, h, qkv);
        let key = nn::linear(&self_attn / "key", h, h, qkv);
        let value = nn::linear(&self_attn / "value", h, h, qkv);
        Self {
            heads: c.num_heads,
            fused_qkv: None,
            query,
            key,
            value,
            attention_out: nn::linear(&attn / "output" / "dense", h, h, Default::default()),
            intermediate: nn::linear(
                &p / "intermediate" / "dense",
                h,
                c.intermediate_size,
                Default::default(),
            ),
            output: nn::linear(
                &p / "output" / "dense",
                c.intermediate_size,
                h,
                Default::default(),
            ),
            layernorm_before: nn::layer_norm(&p / "layernorm_before", vec![h], ln),
            layernorm_after: nn::layer_norm(&p / "layernorm_after", vec![h], ln),
            activation: c.activation,
        }
    }

    /// The layer's output; with `attention`, its attention probabilities
    /// [B, heads, T, T] are computed explicitly (softmax of the scaled
    /// scores in f32, as transformers' eager attention does) and pushed
    /// there, for explanations; without, the fused kernel runs.
    fn forward(&self, x: &Tensor, attention: Option<&mut Vec<Tensor>>) -> Tensor {
        let (b, t, h) = x.size3().expect("3-d activations");
        let normed = self.layernorm_before.forward(x);
        // [B, T, 3·hidden] → three [B, heads, T, d_head] views.
        let qkv = match &self.fused_qkv {
            Some(fused) => fused.forward(&normed),
            None => concat_linear(&[&self.query, &self.key, &self.value]).forward(&normed),
        };
        let d_head = h / self.heads;
        let qkv = qkv
            .view([b, t, 3, self.heads, d_head])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let context = match attention {
            // Fused attention kernel; scale defaults to 1/sqrt(d_head) as in HF.
            None => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                false,
                None,
                false,
            ),
            Some(kept) => {
                let scores = q.matmul(&k.transpose(-2, -1)) * (d_head as f64).powf(-0.5);
                let probs = scores.softmax(-1, Kind::Float).to_kind(q.kind());
                let context = probs.matmul(&v);
                kept.push(probs);
                context
            }
        }
        .transpose(1, 2)
        .reshape([b, t, h]);
        let x = x + self.attention_out.forward(&context);
        let hidden = self.intermediate.forward(&self.layernorm_after.forward(&x));
        let hidden = match self.activation {
            Activation::Gelu => hidden.gelu("none"),
            Activation::GeluTanh => hidden.gelu("tanh"),
            Activation::Relu => hidden.relu(),
            Activation::Silu => hidden.silu(),
        };
        x + self.output.forward(&hidden)
    }
}

/// One linear layer computing several, by stacking their output rows.
fn concat_linear(parts: &[&nn::Linear]) -> nn::Linear {
    let ws = Tensor::cat(&parts.iter().map(|l| &l.ws).collect::<Vec<_>>(), 0);
    let bs = parts
        .iter()
        .map(|l| l.bs.as_ref())
        .collect::<Option<Vec<_>>>()
        .map(|b| Tensor::cat(&b, 0));
    nn::Linear { ws, bs }
}

/// The whole classifier: patch embedding, pre-norm encoder, final layer
/// norm, linear head on the CLS token (no pooler, as in HF).
pub struct VitClassifier {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    layernorm: nn::LayerNorm,
    classifier: nn::Linear,
}

impl VitClassifier {
    pub fn new(root: &nn::Path, c: &VitConfig) -> Self {
        let vit = root / "vit";
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        let encoder = &vit / "encoder" / "layer";
        Self {
            embeddings: Embeddings::new(&vit / "embeddings", c),
            layers: (0..c.num_layers)
                .map(|i| Layer::new(&encoder / i, c))
                .collect(),
            layernorm: nn::layer_norm(&vit / "layernorm", vec![c.hidden_size], ln),
            classifier: nn::linear(
                root / "classifier",
                c.hidden_size,
                c.labels.len() as i64,
                Default::default(),
            ),
        }
    }

    /// Builds the fused inference weights from the variables, which must no
    /// longer change (frozen, loaded, in their final dtype): the forward pass
    /// then uses the copies. Training never calls this.
    pub fn fuse_for_inference(&mut self) {
        let _no_grad = tch::no_grad_guard();
        for layer in &mut self.layers {
            layer.fused_qkv = Some(concat_linear(&[&layer.query, &layer.key, &layer.value]));
        }
    }

    /// Pixel values [B, C, H, W] → logits [B, labels].
    pub fn forward(&self, pixels: &Tensor) -> Tensor {
        self.run(pixels, None)
    }

    /// Logits and every layer's attention probabilities, first layer
    /// first: the explanations' forward pass (slower: attention is not
    /// fused).
    pub fn forward_with_attention(&self, pixels: &Tensor) -> (Tensor, Vec<Tensor>) {
        let mut attention = Vec::with_capacity(self.layers.len());
        let logits = self.run(pixels, Some(&mut attention));
        (logits, attention)
    }

    fn run(&self, pixels: &Tensor, mut attention: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut x = self.embeddings.forward(pixels);
        for layer in &self.layers {
            x = layer.forward(&x, attention.as_deref_mut());
        }
        let cls = self.layernorm.forward(&x).select(1, 0);
        self.classifier.forward(&cls)
    }
}
