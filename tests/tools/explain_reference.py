#!/usr/bin/env python3
"""Explanation maps of a Hugging Face ViT checkpoint computed by PyTorch itself: the reference
side of dfscan's `relevance` and `rollout` explanations (tests/explain.rs, benches/explain.py).

    explain_reference.py MODEL_DIR OUT.safetensors --method relevance|rollout
                         [--target fake|predicted] [--pixels IN.safetensors] [IMAGE ...]
                         [--timings FILE] [--batch N]

The model is `ViTForImageClassification` in float32, eval mode, with transformers' *eager*
attention so that `output_attentions=True` returns each layer's attention probabilities A
[B, heads, T, T] as tensors of the autograd graph (T = 1 + patches).  Inputs: every tensor of
`--pixels` (name -> [C, H, W] or [1, C, H, W] pixel values) and every IMAGE, preprocessed by the pipeline's PIL
image processor (key: the file name), run in batches of `--batch` (default 8) in sorted key
order.

Methods (the CLS row over the patch tokens, reshaped to the patch grid):
  relevance  Chefer, Gur & Wolf, ICCV 2021, the self-attention rule: R = I; for each layer in
             order, R += mean_heads(clamp(dA * A, min=0)) @ R, where dA is the gradient of the
             target logit with respect to A (torch.autograd.grad of the batch's summed target
             logits: rows do not interact, so each row's gradient is its own).
  rollout    Abnar & Zuidema 2020: per layer 0.5 * mean_heads(A) + 0.5 * I, rows renormalised
             to sum 1, multiplied across layers (the last layer's on the left); no gradient.
Target: the fake class's logit (the label named "fake" or "deepfake", case-insensitive) or the
predicted (argmax) class's.

Each grid is normalised to [0, 1] as (g - min) / (max - min) (all zeros when max == min).
OUT gets, per key, `<key>.grid` [g, g] float32, `<key>.raw` [g, g] (before normalisation),
`<key>.pixels` [C, H, W] and `<key>.logits` [labels]; so a caller can feed dfscan the very same
pixels.  `--timings FILE` writes JSON {"images", "forward_s", "explain_s", "peak_rss_mb"}: the
time of a plain forward (sdpa attention, no_grad) and of the explanation over the same
batches, after one warm-up batch of each.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_checkpoint  # noqa: E402  (same directory: _quiet_transformers, processor_class)


def fake_index(config) -> int:
    names = {i: str(n).lower() for i, n in config.id2label.items()}
    found = [i for i, n in names.items() if n in ("fake", "deepfake")]
    if len(found) != 1:
        raise SystemExit(f"explain_reference: no single fake label in {config.id2label}")
    return int(found[0])


def normalise(raw):
    import torch

    lo = raw.amin(dim=(-2, -1), keepdim=True)
    hi = raw.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (raw - lo) / torch.where(span > 0, span, 1), torch.zeros_like(raw))


def explain(model, pixels, method: str, target: str):
    """(logits [B, labels], raw grids [B, g, g])."""
    import torch

    if method == "relevance":
        # Weights are frozen: a leaf input that requires grad makes autograd record the graph.
        pixels = pixels.detach().requires_grad_(True)
    with torch.enable_grad() if method == "relevance" else torch.no_grad():
        out = model(pixel_values=pixels, output_attentions=True)
        logits = out.logits
        attentions = out.attentions
        b, _, t, _ = attentions[0].shape
        eye = torch.eye(t, dtype=torch.float32).expand(b, t, t)
        if method == "rollout":
            r = None
            for a in attentions:
                a = 0.5 * a.mean(dim=1) + 0.5 * eye
                a = a / a.sum(dim=-1, keepdim=True)
                r = a if r is None else a @ r
        else:
            idx = (
                torch.full((b,), fake_index(model.config), dtype=torch.long)
                if target == "fake"
                else logits.argmax(dim=-1)
            )
            chosen = logits.gather(1, idx[:, None]).sum()
            grads = torch.autograd.grad(chosen, attentions)
            r = eye.clone()
            for a, g in zip(attentions, grads):
                cam = (g * a).clamp(min=0).mean(dim=1)
                r = r + cam @ r
    g = int(round((t - 1) ** 0.5))
    return logits.detach(), r[:, 0, 1:].detach().reshape(b, g, g)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("images", nargs="*")
    ap.add_argument("--method", choices=["relevance", "rollout"], required=True)
    ap.add_argument("--target", choices=["fake", "predicted"], default="fake")
    ap.add_argument("--pixels")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--timings")
    args = ap.parse_intermixed_args(argv)

    make_checkpoint._quiet_transformers()
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import ViTForImageClassification
    from transformers.image_utils import load_image

    torch.manual_seed(0)
    model = ViTForImageClassification.from_pretrained(
        args.model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    for p in model.parameters():
        p.requires_grad_(False)

    inputs: dict[str, torch.Tensor] = {}
    if args.pixels:
        inputs.update(
            {k: v.to(torch.float32).reshape(v.shape[-3:]) for k, v in load_file(args.pixels).items()}
        )
    if args.images:
        processor = make_checkpoint.processor_class().from_pretrained(args.model_dir)
        for path in args.images:
            image = load_image(str(path))
            inputs[Path(path).name] = processor(images=image, return_tensors="pt")[
                "pixel_values"
            ][0].to(torch.float32)
    if not inputs:
        raise SystemExit("explain_reference: no inputs (--pixels or IMAGE)")
    keys = sorted(inputs)
    batches = [keys[i : i + args.batch] for i in range(0, len(keys), args.batch)]

    out: dict[str, torch.Tensor] = {}
    timings = {"images": len(keys)}
    if args.timings:
        # Warm-ups, then the plain forward the explanation is compared with.
        warm = torch.stack([inputs[k] for k in batches[0]])
        explain(model, warm, args.method, args.target)
        plain = ViTForImageClassification.from_pretrained(
            args.model_dir, dtype=torch.float32, attn_implementation="sdpa"
        ).eval()
        with torch.no_grad():
            plain(pixel_values=warm)
            start = time.perf_counter()
            for batch in batches:
                plain(pixel_values=torch.stack([inputs[k] for k in batch]))
            timings["forward_s"] = time.perf_counter() - start
        del plain
    start = time.perf_counter()
    for batch in batches:
        pixels = torch.stack([inputs[k] for k in batch])
        logits, raw = explain(model, pixels, args.method, args.target)
        grids = normalise(raw)
        for i, key in enumerate(batch):
            out[f"{key}.grid"] = grids[i].contiguous()
            out[f"{key}.raw"] = raw[i].contiguous()
            out[f"{key}.pixels"] = pixels[i].detach().contiguous()
            out[f"{key}.logits"] = logits[i].contiguous()
    timings["explain_s"] = time.perf_counter() - start
    save_file(out, args.out)
    if args.timings:
        timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(args.timings).write_text(json.dumps(timings) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
