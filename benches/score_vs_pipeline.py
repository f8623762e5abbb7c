#!/usr/bin/env python3
"""dfscan vs the Hugging Face pipeline and ONNX Runtime, side by side in one run on this machine.

    .venv/bin/python benches/score_vs_pipeline.py [--images 128] [--repeats 3] [--preset base]
                                                  [--device cpu|cuda] [--no-forward] [--work DIR]

Makes a random checkpoint of the preset (tests/tools/make_checkpoint.py; `base` is
ViT-base-sized, `tiny-a` makes a quick smoke test), N 256x256 JPEGs (the size of the model
card's face crops) plus one batch of other JPEGs for dfscan's warm-up, builds `dfscan`
(release) and exports the checkpoint to ONNX (f32, and int8 by ORT's dynamic quantization,
per tensor and per channel), all once under --work.  Then --repeats rounds, each running
every row once, the order reversed every other round (so drift over the run hits all rows
alike), batch 32 everywhere:
  - pipeline f32, bf16: transformers.pipeline with its PIL image processor,
  - ORT f32, int8: ONNX Runtime on the export, with the same reading and preprocessing as the
    pipeline, intra-op threads = torch's (one per physical core).  Round 1 runs both int8
    files; the one whose probabilities are closer to pipeline f32 (max |Δp|, then mean) is
    the int8 row, and the only one run after,
  - dfscan f32, bf16, auto (no --dtype: the dtype its load log says auto chose is shown), and
    f32 with --decode-threads 1 against the default (one decoding thread per core),
    all with `--faces off`: the whole image, as the pipeline scores it.
Steady state on both sides, model loading and start-up excluded: the Python rows load the
model, classify one warm-up batch, then time from the list of paths to all results (reading,
decoding, preprocessing included; benches/pipeline_reference.py).  `dfscan score` cannot warm
up in-process, so each dfscan row runs twice a round: over the warm-up batch alone, and over
the warm-up batch followed by the N images; its rate is N / (the difference of the
`seconds` the two log, each counted from model loaded to last result).  So the first, cold
batch and the start-up cancel out as the pipeline's warm-up does.
Per row: median images/s and each round's, the ratio to pipeline f32 and to the best f32
peer (the faster of pipeline f32 and ORT f32), peak RSS (each process's own, from wait4,
model loading included; the largest over the rounds), and accuracy against pipeline f32 on
the same images: the max |Δp| over every image's every label, and how many images keep
pipeline f32's top label.  Then the decode pool: dfscan f32's decoding and model-wait seconds
with the default and one decoding thread.  Unless --no-forward: `cargo bench --bench forward`,
dfscan's forward GFLOP/s vs this machine's GEMM GFLOP/s, f32 and bf16.  Prints Markdown.
--device cuda runs the pipeline and dfscan rows on the GPU (no ORT rows: the CPU build).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv/bin/python")
DFSCAN = str(REPO / "target/release/dfscan")
BATCH = 32
# CPU features that decide what bf16 and int8 run at: AVX512-BF16 and AMX-BF16 (bf16
# GEMMs), AMX-INT8 and AVX512-VNNI / AVX-VNNI (int8 dot products).
CPU_FLAGS = ["avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni"]


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


def cpu_summary() -> str:
    """CPU model, core count and which of CPU_FLAGS it has."""
    name, flags = platform.processor(), set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    has = " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in CPU_FLAGS)
    return f"{name}, {os.cpu_count()} cores; {has}"


@dataclass
class Row:
    name: str
    kind: str  # pipeline, ort or dfscan
    args: list[str]
    runs: list[float] = field(default_factory=list)  # images/s per round
    rss: list[float] = field(default_factory=list)
    probs: dict = field(default_factory=dict)  # image name -> {label: probability}
    logged: list[dict] = field(default_factory=list)  # dfscan's `scored` log fields per round
    note: str = ""

    @property
    def rate(self) -> float:
        return statistics.median(self.runs)


class Bench:
    def __init__(self, args):
        self.args = args
        work = Path(args.work)
        self.model = work / f"vit-{args.preset}-random"
        self.images = work / f"images-{args.images}"
        self.warm = work / f"warm-{BATCH}"
        self.onnx = work / f"onnx-{args.preset}"
        self.out = work / "runs"
        self.out.mkdir(parents=True, exist_ok=True)
        self.versions: dict = {}  # the last Python row's summary: torch and transformers versions

    def prepare(self) -> None:
        a = self.args
        if not (self.model / "config.json").exists():
            run([PY, "tests/tools/make_checkpoint.py", str(self.model), "--preset", a.preset])
        if not self.images.exists():
            run([PY, "benches/make_bench_images.py", str(self.images), "--n", str(a.images)])
        if not self.warm.exists():  # other pictures than the timed ones
            run([PY, "benches/make_bench_images.py", str(self.warm), "--n", str(BATCH), "--seed", "1"])
        if a.device == "cpu" and not (self.onnx / "model-int8-per-channel.onnx").exists():
            run([PY, "benches/pipeline_reference.py", "--model", str(self.model), "--export-onnx", str(self.onnx)])
        run(["cargo", "build", "--release", "--bin", "dfscan"])

    def rows(self) -> list[Row]:
        rows = [Row(f"pipeline {d}", "pipeline", ["--dtype", d]) for d in ("f32", "bf16")]
        if self.args.device == "cpu":
            rows += [Row("ORT f32", "ort", ["--onnx", str(self.onnx / "model.onnx")])]
            rows += [Row(f"ORT int8 ({v})", "ort", ["--onnx", str(self.onnx / f"model-int8-{v}.onnx")])
                     for v in ("per-tensor", "per-channel")]
        rows += [Row(f"dfscan {d}", "dfscan", ["--dtype", d]) for d in ("f32", "bf16")]
        rows += [Row("dfscan auto", "dfscan", []), Row("dfscan f32, --decode-threads 1", "dfscan",
                                                         ["--dtype", "f32", "--decode-threads", "1"])]
        return rows

    def measure(self, row: Row) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", row.name.lower()).strip("-")
        results = self.out / f"{slug}.json"
        if row.kind in ("pipeline", "ort"):
            summary = self.out / f"{slug}-summary.json"
            p = run([PY, "benches/pipeline_reference.py", "--model", str(self.model), "--images", str(self.images),
                     "--batch-size", str(BATCH), "--device", self.args.device, "--json", str(summary),
                     "--results", str(results), *row.args])
            self.versions = json.loads(summary.read_text())
            row.runs.append(self.versions["images_per_s"])
            row.probs = {k: v["scores"] for k, v in json.loads(results.read_text()).items()}
        else:
            warm_only = self.dfscan(row, [self.warm], os.devnull)
            full = self.dfscan(row, [self.warm, self.images], results)
            seconds = float(full["seconds"]) - float(warm_only["seconds"])
            row.runs.append(self.args.images / seconds if seconds > 0 else float("nan"))
            row.logged.append(full)
            p = full["process"]
            row.probs = {}
            for line in results.read_text().splitlines():
                item = json.loads(line)
                if Path(item["path"]).parent == self.images:
                    row.probs[Path(item["path"]).name] = item["scores"]
        row.rss.append(p.peak_rss_mb)

    def dfscan(self, row: Row, paths: list[Path], output) -> dict:
        p = run([DFSCAN, "score", "--model", str(self.model), "--device", self.args.device, "--faces", "off",
                 "--batch-size", str(BATCH), "--format", "jsonl", "--output", str(output), *row.args,
                 *map(str, paths)], env=dict(os.environ, DFSCAN_LOG="info"))
        scored = [l for l in p.stderr.splitlines() if "scored" in l and "images_per_s" in l][-1]
        fields = dict(re.findall(r"(\w+)=\"?([0-9.]+)", scored))
        auto = re.search(r"auto on (?:CPU|CUDA): (\w+)(.*?)(?: dtype=|$)", p.stderr)
        if auto:
            row.note = f"auto chose {auto.group(1)}{auto.group(2)}"
        return {**fields, "process": p}


def accuracy(row: Row, reference: Row) -> tuple[float, float, int]:
    """max and mean |Δp| over every image's every label, and images with the same top label."""
    deltas, same = [], 0
    for name, ref in reference.probs.items():
        got = row.probs[name]
        deltas += [abs(got[label] - p) for label, p in ref.items()]
        same += max(got, key=got.get) == max(ref, key=ref.get)
    return max(deltas), statistics.mean(deltas), same


def forward_table(args, model: Path) -> list[str]:
    lines = ["| dtype | forward GFLOP/s | GEMM GFLOP/s | forward / GEMM |", "|---|---|---|---|"]
    for dtype in ("f32", "bf16"):
        f = last_json(run(["cargo", "bench", "--bench", "forward", "--", str(model), "--batch", str(BATCH),
                           "--dtype", dtype, "--device", args.device]).stdout)
        lines.append(f"| {dtype} | {f['forward_gflops']:.0f} | {f['gemm_gflops']:.0f} | {f['fraction_of_gemm']:.0%} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each row's rate is the median")
    ap.add_argument("--preset", default="base", help="make_checkpoint.py preset (tiny-a: a quick smoke test)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--no-forward", action="store_true", help="skip the forward-vs-GEMM bench")
    ap.add_argument("--work", default=str(REPO / "target/bench"))
    args = ap.parse_args()
    bench = Bench(args)
    bench.prepare()

    rows = bench.rows()
    int8 = [r for r in rows if r.name.startswith("ORT int8")]
    for round_ in range(args.repeats):
        for row in rows if round_ % 2 == 0 else rows[::-1]:
            bench.measure(row)
        if round_ == 0 and int8:
            reference = rows[0]
            best = min(int8, key=lambda r: accuracy(r, reference)[:2])
            int8_note = "; ".join(f"{r.name}: max |Δp| {accuracy(r, reference)[0]:.4f}" for r in int8)
            rows = [r for r in rows if r not in int8 or r is best]
            best.note = f"kept over the other ({int8_note})"

    reference = rows[0]  # pipeline f32
    peers = [r.rate for r in rows if r.name in ("pipeline f32", "ORT f32")]
    v = bench.versions
    ort = next((r for r in rows if r.kind == "ort"), None)
    print(f"\nMachine: {cpu_summary()}; torch {v['torch_version']} ({v['torch_threads']} threads), "
          f"transformers {v['transformers_version']}"
          + (f", {json.loads((bench.out / 'ort-f32-summary.json').read_text())['runtime']}" if ort else "")
          + f"; {args.preset} checkpoint, {args.images} JPEGs 256x256, batch {BATCH}, {args.device}, "
          f"{args.repeats} rounds (rates: median, then each round)\n")
    print("| row | img/s | rounds | / pipeline f32 | / best f32 peer | peak RSS | max \\|Δp\\| vs pipeline f32 "
          "| top label as pipeline f32 | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        worst, _, same = accuracy(r, reference)
        rounds = ", ".join(f"{x:.2f}" for x in r.runs)
        print(f"| {r.name} | {r.rate:.2f} | {rounds} | {r.rate / reference.rate:.2f}x | {r.rate / max(peers):.2f}x "
              f"| {max(r.rss):.0f} MB | {worst:.4f} | {same}/{len(reference.probs)} | {r.note} |")

    print("\nDecode pool, dfscan f32 (medians over the rounds of what the full run logs: seconds spent "
          "preparing batches on the pool while the model ran the previous one, and seconds waiting for "
          "the model beyond that):\n")
    print("| decode threads | img/s | decode_s | model_wait_s |")
    print("|---|---|---|---|")
    for r in rows:
        if r.name.startswith("dfscan f32"):
            med = {k: statistics.median(float(x[k]) for x in r.logged) for k in ("decode_s", "model_wait_s")}
            threads = "1" if "--decode-threads" in r.args else f"default ({os.cpu_count()})"
            print(f"| {threads} | {r.rate:.2f} | {med['decode_s']:.2f} | {med['model_wait_s']:.2f} |")

    if not args.no_forward:
        print("\ndfscan's forward pass (cargo bench --bench forward, batch 32) vs this machine's GEMM:\n")
        print("\n".join(forward_table(args, bench.model)))


if __name__ == "__main__":
    main()
