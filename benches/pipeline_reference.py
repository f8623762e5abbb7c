#!/usr/bin/env python3
"""The reference side of dfscan's benchmark: time `transformers.pipeline` (or the same
checkpoint exported to ONNX Runtime) on a folder.

    pipeline_reference.py --model DIR --images DIR [--batch-size 32] [--dtype f32|bf16]
                          [--threads N] [--warmup N] [--repeat R] [--num-workers N]
                          [--onnx FILE] [--json OUT] [--results OUT]
    pipeline_reference.py --model DIR --export-onnx OUT_DIR
    pipeline_reference.py --gemm [--threads N] [--gemm-seconds 2] [--json OUT]

Benchmark mode builds
    pipeline("image-classification", model=DIR, device=-1|0 (--device), dtype=torch.float32|bfloat16,
             batch_size=B)
warms it up on the first --warmup images (default: one full batch), then times, with the wall
clock, `pipe(paths)` over every image file in --images (sorted by name): from the list of paths
to the list of all results, i.e. including file reading, decoding and preprocessing, the way a
user would measure it.  num_workers is the pipeline default (0: preprocessing runs in the main
process) unless --num-workers is given.  Prints (and with --json writes) one JSON object:
    {images, seconds, images_per_s, dtype, batch_size, torch_threads, transformers_version,
     torch_version, ...extra fields}
With --repeat R > 1 the timed pass runs R times; `seconds` is the median, `runs` lists all.
--results OUT writes the per-image top label and every label's probability of the last pass.

--onnx FILE times ONNX Runtime (CPU execution provider, intra-op threads = --threads or torch's
default, one per physical core) on FILE instead of the pipeline, timed the same way over the
same work: each batch's images read with transformers' `load_image` (as the pipeline does),
preprocessed by the checkpoint's own image processor (the pipeline's, checked to be the PIL
ViTImageProcessor) into one array, run, softmaxed; --dtype does not apply.

--export-onnx OUT_DIR writes the checkpoint's logits as ONNX with a dynamic batch axis
(torch.onnx.export's TorchScript exporter, opset 17: the dynamo one needs onnxscript, which
the venv lacks) to OUT_DIR/model.onnx, runs ORT's quantization pre-processing (shape
inference and graph optimisation, as its docs advise) and dynamic quantization with QInt8
weights, per tensor and per channel: model-int8-per-tensor.onnx, model-int8-per-channel.onnx.

--gemm measures this machine's GEMM throughput with torch.matmul, fp32 and bf16, at ViT-base
shapes for a batch of 32 (M = 32*197 tokens): [M,768]x[768,3072] (the headline, `fc1`),
[M,3072]x[3072,768] (`fc2`) and [M,768]x[768,768] (`proj`); each repeated until >= 2 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def _quiet() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _set_threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def _env_info() -> dict:
    import torch

    info = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
    try:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        pass
    info["cpu_count"] = os.cpu_count()
    return info


def list_images(d: Path) -> list[str]:
    return sorted(str(p) for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def check_processor(processor) -> str:
    cls = type(processor).__name__
    if not ("Pil" in cls or cls == "ViTImageProcessor"):
        raise SystemExit(f"the checkpoint's image processor is {cls}; expected the PIL/slow ViT one")
    return cls


def bench(args, classify, extra: dict) -> dict:
    """Times `classify(paths)` (-> one list of {label, score} per path, best first) over every
    image after a warm-up (see the module doc) and returns the JSON summary."""
    paths = list_images(Path(args.images))
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"no image files in {args.images}")

    warm = paths[: (args.warmup if args.warmup is not None else args.batch_size)]
    t_warm = time.perf_counter()
    if warm:
        classify(warm)
    t_warm = time.perf_counter() - t_warm

    runs, results = [], None
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        results = classify(paths)
        runs.append(time.perf_counter() - t0)
    assert len(results) == len(paths)
    seconds = statistics.median(runs)

    import transformers

    out = {
        "images": len(paths),
        "seconds": round(seconds, 4),
        "images_per_s": round(len(paths) / seconds, 3),
        "batch_size": args.batch_size,
        "transformers_version": transformers.__version__,
        **_env_info(),
        **extra,
        "runs": [round(r, 4) for r in runs],
        "warmup_images": len(warm),
        "warmup_seconds": round(t_warm, 3),
        "model": str(args.model),
        "images_dir": str(args.images),
    }
    if args.results:
        per = {
            Path(p).name: {"label": r[0]["label"], "scores": {x["label"]: x["score"] for x in r}}
            for p, r in zip(paths, results)
        }
        Path(args.results).write_text(json.dumps(per, indent=1, sort_keys=True) + "\n")
    return out


def run_pipeline(args) -> dict:
    import torch

    _quiet()
    _set_threads(args.threads)
    from transformers import pipeline

    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    t_load = time.perf_counter()
    pipe = pipeline(
        "image-classification", model=args.model, device=0 if args.device == "cuda" else -1, dtype=dtype,
        batch_size=args.batch_size
    )
    t_load = time.perf_counter() - t_load
    proc_cls = check_processor(pipe.image_processor)

    call_kw = {}
    if args.num_workers is not None:
        call_kw["num_workers"] = args.num_workers
    return bench(args, lambda paths: pipe(paths, **call_kw), {
        "dtype": args.dtype,
        "load_seconds": round(t_load, 3),
        "num_workers": args.num_workers if args.num_workers is not None else 0,
        "processor_class": proc_cls,
    })


def run_onnx(args) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch

    _quiet()
    _set_threads(args.threads)
    from transformers import AutoConfig, AutoImageProcessor
    from transformers.image_utils import load_image

    if args.device != "cpu":
        raise SystemExit("--onnx runs on the CPU execution provider only")
    t_load = time.perf_counter()
    processor = AutoImageProcessor.from_pretrained(args.model)
    labels = AutoConfig.from_pretrained(args.model).id2label
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    t_load = time.perf_counter() - t_load

    def classify(paths: list[str]) -> list:
        results = []
        for i in range(0, len(paths), args.batch_size):
            images = [load_image(p) for p in paths[i: i + args.batch_size]]
            pixels = processor(images=images, return_tensors="np")["pixel_values"]
            logits = session.run(None, {"pixel_values": pixels})[0].astype(np.float64)
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            results += [[{"label": labels[j], "score": float(row[j])} for j in np.argsort(-row)] for row in probs]
        return results

    return bench(args, classify, {
        "runtime": f"onnxruntime {ort.__version__}",
        "onnx": str(args.onnx),
        "intra_op_threads": options.intra_op_num_threads,
        "load_seconds": round(t_load, 3),
        "processor_class": check_processor(processor),
    })


def export_onnx(args) -> dict:
    import torch

    _quiet()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from transformers import ViTForImageClassification

    out = Path(args.export_onnx)
    out.mkdir(parents=True, exist_ok=True)
    model = ViTForImageClassification.from_pretrained(args.model).eval()

    class Logits(torch.nn.Module):  # the exported graph's one output
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).logits

    size = model.config.image_size
    f32, pre = out / "model.onnx", out / "model-preprocessed.onnx"
    t0 = time.perf_counter()
    torch.onnx.export(Logits(), (torch.zeros(1, 3, size, size),), str(f32), dynamo=False, opset_version=17,
                      input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
    quant_pre_process(str(f32), str(pre))
    files = {"f32": str(f32)}
    for name, per_channel in (("per-tensor", False), ("per-channel", True)):
        files[f"int8-{name}"] = str(out / f"model-int8-{name}.onnx")
        quantize_dynamic(str(pre), files[f"int8-{name}"], weight_type=QuantType.QInt8, per_channel=per_channel)
    pre.unlink()
    return {**files, "seconds": round(time.perf_counter() - t0, 1)}


def run_gemm(args) -> dict:
    import torch

    _set_threads(args.threads)
    m = 32 * 197
    shapes = {"fc1": (m, 768, 3072), "fc2": (m, 3072, 768), "proj": (m, 768, 768)}
    res: dict = {"M": m, "min_seconds": args.gemm_seconds, **_env_info()}
    g = torch.Generator().manual_seed(0)
    for dname, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        for sname, (mm, k, n) in shapes.items():
            a = torch.randn(mm, k, generator=g).to(dt)
            b = torch.randn(k, n, generator=g).to(dt)
            with torch.inference_mode():
                torch.matmul(a, b)  # warm-up (oneDNN/MKL kernel selection, page faults)
                iters, t0 = 0, time.perf_counter()
                while True:
                    torch.matmul(a, b)
                    iters += 1
                    el = time.perf_counter() - t0
                    if el >= args.gemm_seconds:
                        break
            gflops = 2.0 * mm * k * n * iters / el / 1e9
            res[f"{dname}_{sname}_gflops"] = round(gflops, 2)
            res[f"{dname}_{sname}_iters"] = iters
        res[f"{dname}_gflops"] = res[f"{dname}_fc1_gflops"]
    # ViT-base forward cost, for turning GFLOP/s into a rough images/s ceiling
    vit_gflop_per_image = 2 * 197 * 12 * (4 * 768 * 768 + 2 * 768 * 3072) / 1e9 + 2 * 12 * 2 * 197 * 197 * 768 / 1e9
    res["vit_base_gflop_per_image"] = round(vit_gflop_per_image, 2)
    for dname in ("f32", "bf16"):
        res[f"{dname}_images_per_s_ceiling"] = round(res[f"{dname}_gflops"] / vit_gflop_per_image, 2)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="HF checkpoint directory")
    ap.add_argument("--images", help="folder of images (non-recursive)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--warmup", type=int, help="warm-up images (default: one batch)")
    ap.add_argument("--repeat", type=int, default=1, help="timed passes; seconds = median")
    ap.add_argument("--num-workers", type=int, help="pipeline DataLoader workers (default: pipeline's, 0)")
    ap.add_argument("--limit", type=int, help="use only the first N images")
    ap.add_argument("--json", help="also write the JSON summary here")
    ap.add_argument("--results", help="write per-image results of the last pass here")
    ap.add_argument("--onnx", help="time ONNX Runtime on this file instead of the pipeline")
    ap.add_argument("--export-onnx", metavar="OUT_DIR", help="export --model to ONNX (f32 and int8) instead")
    ap.add_argument("--gemm", action="store_true", help="measure GEMM GFLOP/s instead")
    ap.add_argument("--gemm-seconds", type=float, default=2.0)
    args = ap.parse_args(argv)

    if args.gemm:
        out = run_gemm(args)
    elif args.export_onnx:
        if not args.model:
            ap.error("--export-onnx needs --model")
        out = export_onnx(args)
    else:
        if not args.model or not args.images:
            ap.error("--model and --images are required (or use --gemm)")
        out = run_onnx(args) if args.onnx else run_pipeline(args)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
