#!/usr/bin/env python3
"""What an explanation costs in dfscan and in the PyTorch reference, in one run on this machine.

    .venv/bin/python benches/explain_vs_reference.py [--images 16] [--batch 8] [--dtype f32]
                                                     [--device cpu|cuda] [--work DIR]

On the random ViT-base-sized checkpoint (make_checkpoint.py --preset base, shared with the other
benchmarks) and a batch of --batch rows:
  - dfscan: `cargo bench --bench explain` (benches/explain.rs): the model thread's plain forward
    pass, `relevance` and `rollout` on the same batch, interleaved, median of 5; peak RSS after
    the model is loaded, after one explained row and after a full explanation pass, and the MB
    an explained row adds;
  - the reference: tests/tools/explain_reference.py --timings on --images of the benchmark's
    JPEGs (preprocessed before the clock starts): transformers' ViT with sdpa attention under
    no_grad for the plain forward, with eager attention and autograd for the explanation, in
    batches of --batch, after one warm-up batch of each.
Prints Markdown: per image, the plain forward, each method, each method over the same side's
forward (targets: relevance <= 4x, rollout <= 1.3x), and the reference's time over dfscan's
(target >= 1.0x); and the memory.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_vs_pipeline import PY, REPO, cpu_summary, last_json, run  # noqa: E402  (same directory)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=str(REPO / "target/bench"))
    args = ap.parse_args()
    work = Path(args.work)
    model = work / "vit-base-random"
    if not (model / "model.safetensors").exists():
        run([PY, "tests/tools/make_checkpoint.py", str(model), "--preset", "base"])
    images = work / "images-128"
    if not images.exists():
        run([PY, "benches/make_bench_images.py", str(images), "--n", "128"])
    photos = sorted(images.glob("*.jpg"))[: args.images]

    ours = last_json(run(["cargo", "bench", "--bench", "explain", "--", str(model), "--batch",
                          str(args.batch), "--dtype", args.dtype, "--device", args.device]).stdout)
    reference = {}
    for method in ("relevance", "rollout"):
        timings = work / f"explain-reference-{method}.json"
        run([PY, "tests/tools/explain_reference.py", str(model), str(work / f"explain-{method}.safetensors"),
             "--method", method, "--batch", str(args.batch), "--timings", str(timings)]
            + [str(p) for p in photos])
        reference[method] = json.loads(timings.read_text())

    b = args.batch
    fwd_ours = ours["forward_s"] / b
    fwd_theirs = reference["relevance"]["forward_s"] / reference["relevance"]["images"]
    print(f"\nMachine: {cpu_summary()}; ViT-base (random weights), batch {b}, {args.device}, "
          f"{ours['dtype']}, {ours['threads']} threads\n")
    print("| per image | dfscan | × its forward | reference | × its forward | reference / dfscan |")
    print("|---|---|---|---|---|---|")
    print(f"| plain forward | {fwd_ours * 1e3:.1f} ms | 1.00× | {fwd_theirs * 1e3:.1f} ms | 1.00× | "
          f"{fwd_theirs / fwd_ours:.2f}× |")
    for method in ("relevance", "rollout"):
        mine = ours[f"{method}_s"] / b
        theirs = reference[method]["explain_s"] / reference[method]["images"]
        print(f"| {method} | {mine * 1e3:.1f} ms | {mine / fwd_ours:.2f}× | {theirs * 1e3:.1f} ms | "
              f"{theirs / fwd_theirs:.2f}× | {theirs / mine:.2f}× |")
    print(f"\nMemory (dfscan, peak RSS): {ours['peak_rss_loaded_mb']:.0f} MB with the model loaded, "
          f"{ours['peak_rss_one_row_mb']:.0f} MB after explaining one row, {ours['peak_rss_pass_mb']:.0f} MB "
          f"after a pass of up to 8 rows: {ours['mb_per_explained_row']:.0f} MB per explained row. "
          f"Reference peak RSS: relevance {reference['relevance']['peak_rss_mb']:.0f} MB, rollout "
          f"{reference['rollout']['peak_rss_mb']:.0f} MB (two models loaded: eager and sdpa).")


if __name__ == "__main__":
    main()
