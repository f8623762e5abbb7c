#!/usr/bin/env python3
"""dfscan vs the Hugging Face pipeline, side by side in one run on this machine.

    .venv/bin/python benches/score_vs_pipeline.py [--images N] [--dtypes f32,bf16] [--device cpu|cuda]
                                                  [--work DIR]

Builds `dfscan` (release), makes a random ViT-base-sized checkpoint and N 256x256 JPEGs
(the size of the model card's face crops) once, then for each dtype:
  - the transformers pipeline (batch 32, PIL image processor) over the images,
  - `dfscan score --batch-size 32` over the same images,
  - `cargo bench --bench forward`: dfscan's forward GFLOP/s vs this machine's GEMM GFLOP/s,
and prints a Markdown table with the ratios (the pipeline's fp32 rate is the baseline for
both dtypes, since that is what a user runs today).
Rates exclude model loading on both sides; the pipeline also gets a warm-up batch, dfscan
does not (its first, cold batch is counted). Peak RSS is each process's own (wait4 rusage),
model loading included.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv/bin/python")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Runs `cmd`; the result also carries `peak_rss_mb`, the child's own peak RSS."""
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, **kw)
    # Drain both pipes on threads and reap the child ourselves: wait4 gives
    # this child's own rusage, which Popen.wait would discard.
    pipes = {}
    readers = [threading.Thread(target=lambda k=k, f=f: pipes.__setitem__(k, f.read())) for k, f in
               (("out", p.stdout), ("err", p.stderr))]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    out, err = pipes["out"], pipes["err"]
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{err}")
    result = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    result.peak_rss_mb = usage.ru_maxrss / 1024
    return result


def last_json(text: str) -> dict:
    return json.loads([l for l in text.splitlines() if l.startswith("{")][-1])


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--work", default=str(REPO / "target/bench"))
    args = ap.parse_args()
    work = Path(args.work)
    model, images = work / "vit-base-random", work / f"images-{args.images}"
    if not (model / "model.safetensors").exists():
        run([PY, "tests/tools/make_checkpoint.py", str(model), "--preset", "base"])
    if not images.exists():
        run([PY, "benches/make_bench_images.py", str(images), "--n", str(args.images)])
    run(["cargo", "build", "--release", "--bin", "dfscan"])

    rows = []
    for dtype in args.dtypes.split(","):
        summary = work / f"pipeline-{dtype}.json"
        pipe_run = run([PY, "benches/pipeline_reference.py", "--model", str(model), "--images", str(images),
                        "--batch-size", "32", "--dtype", dtype, "--device", args.device, "--json", str(summary)])
        pipe = json.loads(summary.read_text())
        env = dict(os.environ, DFSCAN_LOG="info")
        out = run([str(REPO / "target/release/dfscan"), "score", "--model", str(model), "--device", args.device,
                   "--dtype", dtype, "--batch-size", "32", "--format", "jsonl", "--output", os.devnull,
                   str(images)], env=env)
        rate = float(re.search(r"images_per_s=\"?([0-9.]+)", out.stderr).group(1))
        fwd = last_json(run(["cargo", "bench", "--bench", "forward", "--", str(model), "--batch", "32",
                             "--dtype", dtype, "--device", args.device]).stdout)
        rows.append((dtype, pipe["images_per_s"], rate, fwd, pipe_run.peak_rss_mb, out.peak_rss_mb))

    base = next((r[1] for r in rows if r[0] == "f32"), rows[0][1])
    print(f"\nMachine: {cpu_name()}, {os.cpu_count()} cores; torch {pipe['torch_version']}, "
          f"transformers {pipe['transformers_version']}; {args.images} JPEGs 256x256, batch 32, {args.device}\n")
    print("| dtype | pipeline img/s | dfscan img/s | dfscan / pipeline (same dtype) | dfscan / pipeline fp32 "
          "| forward GFLOP/s | GEMM GFLOP/s | forward / GEMM | pipeline peak RSS | dfscan peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dtype, p, d, f, p_rss, d_rss in rows:
        print(f"| {dtype} | {p:.2f} | {d:.2f} | {d / p:.2f}x | {d / base:.2f}x | {f['forward_gflops']:.0f} "
              f"| {f['gemm_gflops']:.0f} | {f['fraction_of_gemm']:.0%} | {p_rss:.0f} MB | {d_rss:.0f} MB |")


if __name__ == "__main__":
    main()
