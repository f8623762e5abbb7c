#!/usr/bin/env python3
"""Write a complete Hugging Face `ViTForImageClassification` checkpoint with random weights.

The directory has exactly what `save_pretrained` writes for a real fine-tuned checkpoint
(config.json, model.safetensors or model.safetensors.index.json + shards) plus the
preprocessor_config.json of a `ViTImageProcessor`.  Loading it with
`pipeline("image-classification", model=OUT_DIR)` works like loading a Hub model.

The weights are random but not HF's default init (std 0.02 everywhere), which gives almost
the same near-uniform probabilities for every image and so makes a parity test meaningless.
Instead every matrix gets a fan-in scaled init (attention is far from uniform, activations
stay O(1)), LayerNorm affine parameters are perturbed away from (1, 0) so that a loader that
drops them is caught, and the classifier is calibrated on deterministic synthetic images so
that logits have mean ~0 and a spread of ~1.5 per class: softmax probabilities then spread
over roughly 0.05 - 0.95.

--headless writes a pretrained backbone without a classification head instead, laid out like
`google/vit-base-patch16-224-in21k` (the base of a fine-tuning run): a `ViTModel` with its
pooler, weight keys without the `vit.` prefix (`embeddings.cls_token`,
`encoder.layer.0.attention.attention.query.weight`, ..., `layernorm.weight`,
`pooler.dense.weight`), config.json with `"architectures": ["ViTModel"]` and no
id2label/label2id, and the preset's preprocessor_config.json.  Its backbone weights are
bit-identical to the `vit.*` weights of the same preset and seed with the preset's labels
(the pooler gets its own fan-in init).  `ViTForImageClassification.from_pretrained(OUT,
num_labels=K)` loads the whole backbone, reports `pooler.dense.*` as unused and initialises a
new classifier, like the real in21k checkpoint.

Usage:
    make_checkpoint.py OUT_DIR [--preset tiny-a|tiny-b|base] [--seed N]
                       [--labels Real,Fake] [--shard-size BYTES] [--headless]

Library use (make_fixtures.py):  make_checkpoint(out_dir, preset="tiny-a", seed=0)
                                 make_checkpoint(out_dir, preset="tiny-a", headless=True)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]

# Each preset: model config, labels (class index order), preprocessor, default shard size.
PRESETS: dict[str, dict] = {
    "tiny-a": dict(
        config=dict(
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=3,
            intermediate_size=100,
            image_size=40,
            patch_size=8,
            layer_norm_eps=1e-6,
            qkv_bias=True,
        ),
        labels=["Real", "Fake"],
        processor=dict(size=40, resample=2, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        shard_size=None,
        calib_images=48,
    ),
    "tiny-b": dict(
        config=dict(
            hidden_size=36,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=70,
            image_size=30,
            patch_size=6,
            layer_norm_eps=1e-12,
            qkv_bias=False,
        ),
        labels=["Fake", "Real", "Unsure"],
        processor=dict(size=30, resample=2, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD),
        # ~75 KB of fp32 weights: 24 KB shards give 4 shards (+ index).
        shard_size=24_000,
        calib_images=48,
    ),
    "base": dict(
        config=dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            image_size=224,
            patch_size=16,
            layer_norm_eps=1e-12,
            qkv_bias=True,
        ),
        labels=["Real", "Fake"],  # like prithivMLmods/Deep-Fake-Detector-Model
        processor=dict(size=224, resample=2, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        shard_size=None,
        calib_images=8,
    ),
}


def _quiet_transformers() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def processor_class():
    """The slow/PIL ViT image processor class (the one the pipeline uses without torchvision)."""
    import transformers

    cls = getattr(transformers, "ViTImageProcessorPil", None)
    return cls if cls is not None else transformers.ViTImageProcessor


def make_processor(preset: str):
    p = PRESETS[preset]["processor"]
    return processor_class()(
        do_resize=True,
        size={"height": p["size"], "width": p["size"]},
        resample=p["resample"],
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(p["mean"]),
        image_std=list(p["std"]),
    )


def make_config(preset: str, labels: list[str] | None):
    """The preset's ViTConfig: a classifier's with `labels`, or (None) a head-less `ViTModel`'s
    like google/vit-base-patch16-224-in21k.  The id2label/label2id that ViTConfig always
    serialises are stripped from a head-less config.json after saving (_strip_label_maps)."""
    from transformers import ViTConfig

    head = (
        dict(
            id2label={i: name for i, name in enumerate(labels)},
            label2id={name: i for i, name in enumerate(labels)},
            architectures=["ViTForImageClassification"],
        )
        if labels is not None
        else dict(architectures=["ViTModel"])
    )
    return ViTConfig(
        **PRESETS[preset]["config"],
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_channels=3,
        **head,
    )


def _strip_label_maps(config_json: Path) -> None:
    """Remove id2label/label2id from a written config.json (the real in21k config has none),
    in save_pretrained's format (indent 2, sorted keys, trailing newline)."""
    cfg = json.loads(config_json.read_text())
    for key in ("id2label", "label2id"):
        cfg.pop(key, None)
    config_json.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def calibration_pixels(preset: str, n: int, seed: int) -> "torch.Tensor":
    """Deterministic synthetic images (gradients, blobs, stripes, noise), already normalized
    with the preset's mean/std at the model's input size: [n, 3, S, S] float32."""
    import torch

    p = PRESETS[preset]["processor"]
    s = p["size"]
    rng = np.random.default_rng(10_007 * seed + 17)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / max(s - 1, 1)
    imgs = []
    for _ in range(n):
        theta = rng.uniform(0, 2 * np.pi)
        t = np.cos(theta) * xx + np.sin(theta) * yy
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        img = c0[:, None, None] * (1 - t) + c1[:, None, None] * t
        for _ in range(rng.integers(1, 4)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.4)
            m = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
            img[:, m] = rng.uniform(0, 1, 3)[:, None]
        if rng.uniform() < 0.5:
            f = rng.uniform(2, 8)
            img = img + 0.2 * np.sin(2 * np.pi * f * (xx if rng.uniform() < 0.5 else yy))[None]
        img = img + rng.normal(0, rng.uniform(0.0, 0.15), img.shape)
        img = np.clip(np.round(img * 255), 0, 255) / 255.0
        mean = np.asarray(p["mean"])[:, None, None]
        std = np.asarray(p["std"])[:, None, None]
        imgs.append(((img - mean) / std).astype(np.float32))
    return torch.from_numpy(np.stack(imgs))


def init_weights(model, seed: int) -> None:
    """Replace HF's init by one whose outputs depend strongly on the image (see module doc)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                normal_(module.weight, 1.0 / math.sqrt(fan_in))
                if module.bias is not None:
                    normal_(module.bias, 0.05)
            elif isinstance(module, nn.LayerNorm):
                normal_(module.weight, 0.15, mean=1.0)
                normal_(module.bias, 0.1)
        emb = model.base_model.embeddings  # model.vit for the head model
        normal_(emb.cls_token, 1.0)
        normal_(emb.position_embeddings, 0.5)


def calibrate_classifier(model, preset: str, seed: int) -> dict:
    """Set classifier weight/bias so that logits over calibration images have mean 0 and a
    standard deviation of ~1.5 for every class.  Returns stats for logging."""
    import torch

    n = PRESETS[preset]["calib_images"]
    pix = calibration_pixels(preset, n, seed)
    model.eval()
    with torch.no_grad():
        feats = model.vit(pixel_values=pix).last_hidden_state[:, 0, :]  # CLS after final LN
        w = model.classifier.weight  # [num_labels, hidden]
        raw = feats @ w.T  # [n, num_labels]
        std = raw.std(dim=0).clamp_min(1e-6)
        scale = 1.5 / std
        w.mul_(scale[:, None])
        model.classifier.bias.copy_(-(raw.mean(dim=0) * scale))
        logits = model(pixel_values=pix).logits
        probs = logits.softmax(-1)
    return dict(
        calib_images=n,
        logit_std=[round(v, 3) for v in logits.std(0).tolist()],
        prob_min=round(probs.min().item(), 4),
        prob_max=round(probs.max().item(), 4),
    )


def headless_model(preset: str, seed: int):
    """A `ViTModel` (with pooler) whose backbone equals the `vit` of the head model that
    make_checkpoint(preset, seed) builds with the preset's labels; pooler: fan-in init."""
    import torch
    from torch import nn
    from transformers import ViTForImageClassification, ViTModel

    torch.manual_seed(seed)
    full = ViTForImageClassification(make_config(preset, list(PRESETS[preset]["labels"])))
    init_weights(full, seed)  # same draws as the head checkpoint (calibration is head-only)

    model = ViTModel(make_config(preset, None), add_pooling_layer=True)
    result = model.load_state_dict(full.vit.state_dict(), strict=False)
    pooler = {k for k in model.state_dict() if k.startswith("pooler.")}
    if set(result.missing_keys) != pooler or result.unexpected_keys:
        raise RuntimeError(f"backbone copy mismatch: {result}")
    g = torch.Generator().manual_seed(1_000_003 * seed + 7)
    dense: nn.Linear = model.pooler.dense
    with torch.no_grad():
        dense.weight.copy_(torch.randn(dense.weight.shape, generator=g) / math.sqrt(dense.in_features))
        dense.bias.copy_(torch.randn(dense.bias.shape, generator=g) * 0.05)
    return model


def make_checkpoint(
    out_dir: str | os.PathLike,
    preset: str = "tiny-a",
    seed: int = 0,
    labels: list[str] | None = None,
    shard_size: int | None = None,
    verbose: bool = False,
    headless: bool = False,
) -> dict:
    """Write the checkpoint to out_dir (replacing a previous one).  Returns a small summary.
    headless=True writes a ViTModel backbone without classifier (see module doc); labels must
    then be None."""
    _quiet_transformers()
    import torch
    from transformers import ViTForImageClassification

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if headless and labels:
        raise ValueError("a headless checkpoint has no labels")
    labels = list(labels) if labels else list(PRESETS[preset]["labels"])
    if len(set(labels)) != len(labels) or not all(labels):
        raise ValueError(f"labels must be distinct and non-empty: {labels}")
    if shard_size is None:
        shard_size = PRESETS[preset]["shard_size"]

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    if headless:
        model = headless_model(preset, seed)
        stats = {}
    else:
        torch.manual_seed(seed)
        config = make_config(preset, labels)
        model = ViTForImageClassification(config)
        init_weights(model, seed)
        stats = calibrate_classifier(model, preset, seed)
    model.eval()

    save_kwargs = {"safe_serialization": True}
    if shard_size:
        save_kwargs["max_shard_size"] = int(shard_size)
    try:
        model.save_pretrained(out, **save_kwargs)
    except TypeError:  # safe_serialization dropped in newer versions (always safetensors)
        save_kwargs.pop("safe_serialization")
        model.save_pretrained(out, **save_kwargs)
    make_processor(preset).save_pretrained(out)
    if headless:
        _strip_label_maps(out / "config.json")

    for f in out.iterdir():  # save_pretrained writes weights 0600 (atomic temp file)
        f.chmod(0o644)
    files = sorted(p.name for p in out.iterdir())
    if shard_size and "model.safetensors.index.json" not in files and preset == "tiny-b":
        raise RuntimeError(f"expected a sharded checkpoint in {out}, got {files}")
    summary = dict(
        preset=preset,
        seed=seed,
        **({"headless": True} if headless else {"labels": labels}),
        files=files,
        params=sum(p.numel() for p in model.parameters()),
        **stats,
    )
    if verbose:
        print(json.dumps(summary), file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--preset", default="tiny-a", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", help="comma-separated label names in class-index order")
    ap.add_argument(
        "--shard-size",
        type=int,
        help="max_shard_size in bytes (default: preset's; tiny-b is sharded by default, 0 = one file)",
    )
    ap.add_argument(
        "--headless",
        action="store_true",
        help="write a ViTModel backbone without classifier, like google/vit-base-patch16-224-in21k",
    )
    args = ap.parse_args(argv)
    if args.headless and args.labels:
        ap.error("--labels makes no sense with --headless (no classifier)")
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    summary = make_checkpoint(
        args.out_dir, args.preset, args.seed, labels, args.shard_size, headless=args.headless
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
