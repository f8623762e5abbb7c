#!/usr/bin/env python3
"""Why dfscan offers no int8 dtype: int8 ViT classifiers against their own f32 probabilities.

    .venv/bin/python benches/int8_accuracy.py [--presets base,tiny-a,tiny-b] [--seed 0]
                                              [--gemm-seconds 1] [--work DIR]

For each preset, the random checkpoint of tests/tools/make_checkpoint.py (--preset P --seed S,
written once under --work) scores the same images in f32 and in each of
  (a) torch.ao.quantization.quantize_dynamic, qint8, per-tensor weights (the default qconfig),
  (b) the same with per-channel weights (per_channel_dynamic_qconfig),
      (a) and (b) quantize every nn.Linear, the classifier too (quantize_dynamic's usual call);
  (c) W8A8: per-output-channel symmetric int8 weights and per-token symmetric int8
      activations, multiplied by torch._int_mm into int32 and rescaled, in every nn.Linear
      but the classifier (finer-grained than (a) and (b), and like them needs no calibration);
  (d) bf16 autocast (what a non-int8 fast path costs in accuracy, for scale),
and reports each one's max and mean |Δp| (every image's every label) against f32, the share
of images whose top label stays the same, and its forward images/s at batch 16 (after one
warm-up batch; preprocessing excluded).  Images: scikit-image's sample photographs
(the ones tests/tools/face_detector_reference.py `paths` finds, and the other photographs in
that folder), each whole and as three deterministic square crops, plus eight random-noise
images; all through the checkpoint's ViTImageProcessor.

Then GEMM throughput at the ViT-base MLP shape for a batch of 32 ([32*197, 768] x
[768, 3072], 2 ops per multiply-add): f32 and bf16 matmul, torch._int_mm (int8 x int8 ->
int32, on (c)'s int8 operands), and torch.ops.quantized.linear_dynamic (what (a) runs: f32
in, per-tensor int8 weights, activations quantized on the fly with reduce_range, as
quantize_dynamic's modules call it) with each quantized engine this torch has of x86, fbgemm
and onednn; with each kernel's product's relative (Frobenius) error against f32's, so that a
fast kernel that computes the wrong thing shows.  Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "tools"))
sys.path.insert(0, str(REPO / "benches"))
from make_checkpoint import make_checkpoint, processor_class  # noqa: E402
from score_vs_pipeline import cpu_summary  # noqa: E402

# Photographs in scikit-image's data folder besides the ones `paths` names (drawings,
# synthetic patterns and scans left out).
MORE_PHOTOS = ["brick", "coins", "grass", "gravel", "hubble_deep_field", "ihc", "moon", "motorcycle_left",
               "retina", "rocket"]
NOISE_IMAGES = 8
BATCH = 16
MLP = (32 * 197, 768, 3072)


def photos() -> list[Path]:
    out = subprocess.run([str(REPO / ".venv-tools/bin/python"), "tests/tools/face_detector_reference.py", "paths"],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    named = [Path(p) for p in json.loads(out)["images"].values()]
    data = named[0].parent
    more = [next(data.glob(f"{name}.*")) for name in MORE_PHOTOS]
    return named + more


def images() -> list:
    """The study's images as RGB PIL images (deterministic)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for path in photos():
        im = Image.open(path).convert("RGB")
        out.append(im)
        w, h = im.size
        for _ in range(3):
            side = int(min(w, h) * rng.uniform(0.4, 0.8))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            out.append(im.crop((x, y, x + side, y + side)))
    for _ in range(NOISE_IMAGES):
        out.append(Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), "RGB"))
    return out


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row of a 2-D tensor: (int8 values, [rows, 1] scales)."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale


class W8A8Linear(nn.Module):
    """nn.Linear with int8 weights (symmetric, per output channel) and int8 activations
    (symmetric, per token), multiplied in int32 by torch._int_mm."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w, scale = quantize_rows(linear.weight.detach())
        self.w_t, self.w_scale = w.t(), scale.t()  # [in, out], [1, out]
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x):
        a, a_scale = quantize_rows(x.reshape(-1, x.shape[-1]))
        y = torch._int_mm(a, self.w_t).float() * a_scale * self.w_scale
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


def w8a8(model):
    model = copy.deepcopy(model)
    targets = [(name, m) for name, m in model.named_modules()
               if isinstance(m, nn.Linear) and name != "classifier"]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, W8A8Linear(linear))
    return model


def variants(model) -> dict:
    """Name -> forward function (pixel_values -> f32 probabilities)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    def probs(m):
        return lambda x: m(pixel_values=x).logits.float().softmax(-1)

    def autocast(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(pixel_values=x).logits.float().softmax(-1)

    return {
        "f32": probs(model),
        "(a) dynamic qint8, per-tensor": probs(quantize_dynamic(copy.deepcopy(model), {nn.Linear},
                                                                dtype=torch.qint8)),
        "(b) dynamic qint8, per-channel": probs(quantize_dynamic(
            copy.deepcopy(model), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)),
        "(c) W8A8 _int_mm, per-channel W, per-token A": probs(w8a8(model)),
        "(d) bf16 autocast": autocast,
    }


def score(forward, pixels) -> tuple[np.ndarray, float]:
    """All images' probabilities, and images/s of the batches after a warm-up batch."""
    batches = list(torch.split(pixels, BATCH))
    with torch.inference_mode():
        forward(batches[0])
        t0 = time.perf_counter()
        out = [forward(b) for b in batches]
        seconds = time.perf_counter() - t0
    return torch.cat(out).numpy(), len(pixels) / seconds


def study(preset: str, seed: int, work: Path, imgs: list) -> list[dict]:
    from transformers import ViTForImageClassification

    ckpt = work / f"vit-{preset}-random"
    if not (ckpt / "config.json").exists():
        make_checkpoint(ckpt, preset=preset, seed=seed)
    model = ViTForImageClassification.from_pretrained(ckpt).eval()
    pixels = processor_class().from_pretrained(ckpt)(images=imgs, return_tensors="pt").pixel_values
    rows, reference = [], None
    for name, forward in variants(model).items():
        p, rate = score(forward, pixels)
        if reference is None:
            reference, base_rate = p, rate
        d = np.abs(p - reference)
        rows.append({"preset": preset, "method": name, "max_dp": float(d.max()), "mean_dp": float(d.mean()),
                     "agree": int((p.argmax(1) == reference.argmax(1)).sum()), "images": len(p),
                     "images_per_s": rate, "speedup": rate / base_rate})
        print(f"{preset} {name}: max |dp| {d.max():.4f}, {rate:.1f} img/s", file=sys.stderr, flush=True)
    return rows


def gemms(seconds: float) -> list[tuple[str, float, float]]:
    """(kernel, GOP/s, relative error of its product against f32's) per kernel; the rate is
    the fastest of three stretches of `seconds` / 3, the kernels interleaved (so a burst of
    load elsewhere hits them alike), after the error check's call has warmed each up."""
    m, k, n = MLP
    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g)
    linear = nn.Linear(k, n, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n, k, generator=g) / k ** 0.5)
    w = linear.weight.detach()
    b = w.t().contiguous()
    a16, b16 = a.bfloat16(), b.bfloat16()
    w8 = W8A8Linear(linear)
    a8, _ = quantize_rows(a)
    # name -> (the timed call, the product it stands for, in f32)
    kernels = {
        "f32 matmul": (lambda: a @ b, lambda: a @ b),
        "bf16 matmul": (lambda: a16 @ b16, lambda: (a16 @ b16).float()),
        "torch._int_mm (int8 -> int32)": (lambda: torch._int_mm(a8, w8.w_t), lambda: w8(a)),
    }
    default = torch.backends.quantized.engine
    for engine in ("x86", "fbgemm", "onednn"):
        if engine not in torch.backends.quantized.supported_engines:
            continue
        torch.backends.quantized.engine = engine
        qw = torch.quantize_per_tensor(w, float(w.abs().max()) / 127, 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(qw, None)

        def dynamic(engine=engine, packed=packed):
            torch.backends.quantized.engine = engine
            return torch.ops.quantized.linear_dynamic(a, packed, True)

        kernels[f"quantized.linear_dynamic, {engine}"] = (dynamic, dynamic)
    with torch.inference_mode():
        exact = a @ b
        errors = {name: float((product() - exact).norm() / exact.norm()) for name, (_, product) in kernels.items()}
        best = dict.fromkeys(kernels, 0.0)
        for _ in range(3):
            for name, (fn, _) in kernels.items():
                calls, t0 = 0, time.perf_counter()
                while (el := time.perf_counter() - t0) < seconds / 3 or calls == 0:
                    fn()
                    calls += 1
                best[name] = max(best[name], 2.0 * m * k * n * calls / el / 1e9)
    torch.backends.quantized.engine = default
    return [(name, best[name], errors[name]) for name in kernels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="base,tiny-a,tiny-b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gemm-seconds", type=float, default=1.0, help="per GEMM kernel")
    ap.add_argument("--work", default=str(REPO / "target/bench"))
    args = ap.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    imgs = images()
    rows = [r for preset in args.presets.split(",") for r in study(preset, args.seed, Path(args.work), imgs)]
    kernels = gemms(args.gemm_seconds)

    print(f"\nMachine: {cpu_summary()}; torch {torch.__version__} ({torch.get_num_threads()} threads, "
          f"quantized engine {torch.backends.quantized.engine}), transformers {transformers.__version__}; "
          f"checkpoints: make_checkpoint.py --seed {args.seed}; {len(imgs)} images "
          f"({len(imgs) - NOISE_IMAGES} photographs and crops, {NOISE_IMAGES} noise), batch {BATCH}\n")
    print("| preset | method | max \\|Δp\\| | mean \\|Δp\\| | top label as f32 | img/s (batch 16) | vs f32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['method']} | {r['max_dp']:.4f} | {r['mean_dp']:.4f} "
              f"| {r['agree']}/{r['images']} | {r['images_per_s']:.1f} | {r['speedup']:.2f}x |")
    m, k, n = MLP
    f32 = kernels[0][1]
    print(f"\n| GEMM [{m}, {k}] x [{k}, {n}] | GOP/s | vs f32 | relative error vs f32 |")
    print("|---|---|---|---|")
    for name, rate, err in kernels:
        print(f"| {name} | {rate:.0f} | {rate / f32:.2f}x | {err:.1e} |")


if __name__ == "__main__":
    main()
