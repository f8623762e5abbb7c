#!/usr/bin/env python3
"""The GPU check's steps, run by scripts/gpu-check.sh (which finds the binaries, the
Python with torch and the libtorch they load; read its header first).

    gpu_check.py run --mode gpu|dry --out DIR --work DIR --dfscan BIN --parity BIN
                     --fixtures DIR --redis-server BIN [--deadline-s 420] [--steps S]
    gpu_check.py pipeline ...   (internal: the transformers side, in its own process)

Steps, each recorded in DIR/report.json and DIR/report.md as it finishes (a run cut short
still leaves what it measured):
  facts    nvidia-smi -q (GPU, driver, CUDA), torch/transformers, CPU, the bundle's manifest
  assets   a random checkpoint (ViT-B/16 on a GPU, tiny-a in the dry run) and JPEGs from
           benches/make_bench_images.py; a head-less tiny-a base and a make_train_set.py set
  parity   the parity test binary's ignored CUDA cases (`cuda_`), every dtype, each measured
           difference against its bound
  score    `dfscan score` (JPEG files in) for each dtype and batch size against
           `transformers.pipeline` on the same device, GPU utilisation and memory sampled
           through NVML (pynvml, else nvidia-smi), decoding vs model-wait shares
  cluster  redis-server (a free loopback port, never 6379) + `dfscan coordinator` +
           `dfscan worker`; one `dfscan submit` job; items/s and the worker's batch-size
           histogram from its /metrics
  metrics  the worker's /metrics exports GPU memory (CUDA), or declares it (CPU)
  train    `dfscan train --dtype bf16|f16` a few hundred steps: losses fall, the checkpoint
           reloads in `dfscan score`
A step that fails is recorded and the next one runs; the exit status is 1 when any failed.
Targets (rates) are reported as met or missed, never failed: speed is measured, not tested.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "tools"), str(REPO / "benches")]

# What each mode runs. The GPU sizes are meant to fit the issue's 8-minute window on one
# H200 with room to spare (an estimate until a GPU run); the dry run's exercise every step
# on 2 CPU cores in under a minute or so.
MODES = {
    "gpu": dict(
        device="cuda", preset="base", image_size=256, distinct_images=1024, score_images=24576,
        pipeline_images=1024, batches=[32, 128, 256], dtypes=["f32", "bf16", "f16"],
        cluster_items=20000, worker_dtype="bf16", worker_max_batch=128,
        train_per_class=128, val_per_class=32, train_batch=16, train_epochs=19,
        train_dtypes=["bf16", "f16"], target_batch=128,
    ),
    "dry": dict(
        device="cpu", preset="tiny-a", image_size=64, distinct_images=32, score_images=64,
        pipeline_images=32, batches=[8, 16], dtypes=["f32", "bf16", "f16"],
        cluster_items=200, worker_dtype="bf16", worker_max_batch=16,
        train_per_class=64, val_per_class=8, train_batch=16, train_epochs=2,
        train_dtypes=["bf16", "f16"], target_batch=16,
    ),
}
# The issue's targets (BENCHMARKS.md, "GPU check").
TARGET_RATIO = 3.0  # bf16 dfscan / bf16 pipeline at batch 128
TARGET_STRETCH = 10_000.0  # bf16 images/s of ViT-B/16 on an H200
TARGET_DECODE_SHARE = 0.25  # of the wall time, at that rate


def log(msg: str) -> None:
    print(f"[gpu-check] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_field(text: str, name: str) -> float | None:
    """A `name=value` field of a tracing log line (quoted or not)."""
    m = re.search(rf"\b{name}=\"?([0-9.eE+-]+)", ANSI.sub("", text))
    return float(m.group(1)) if m else None


class Deadline:
    """The run's wall-clock budget: each command gets what is left, at most its own cap."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def cap(self, seconds: float) -> float:
        left = self.left()
        if left < 5:
            raise TimeoutError("out of time: the run's deadline passed before this step")
        return min(seconds, left)


class GpuSampler:
    """Samples GPU utilisation and memory every 0.1 s between start() and stop(), through
    NVML (pynvml) or `nvidia-smi`; where neither answers (a CPU host) it records nothing."""

    def __init__(self, index: int = 0):
        self.index, self.samples, self._stop, self._thread = index, [], threading.Event(), None
        self.source = "none"
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)

            def read():
                u = pynvml.nvmlDeviceGetUtilizationRates(handle)
                m = pynvml.nvmlDeviceGetMemoryInfo(handle)
                return float(u.gpu), m.used / 2**20

            read()
            self._read, self.source = read, "nvml"
        except Exception:  # noqa: BLE001 - no pynvml or no driver: try nvidia-smi
            if shutil.which("nvidia-smi") and self._smi() is not None:
                self._read, self.source = self._smi, "nvidia-smi"

    def _smi(self):
        try:
            out = subprocess.run(
                ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
            util, mem = out.stdout.strip().split(",")
            return float(util), float(mem)
        except Exception:  # noqa: BLE001
            return None

    def start(self) -> "GpuSampler":
        self.samples = []
        if self.source == "none":
            return self
        first = self._read()
        self.baseline = first[1] if first else 0.0
        self._stop.clear()

        def loop():
            while not self._stop.wait(0.1):
                s = self._read()
                if s is not None:
                    self.samples.append(s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        if self._thread:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if not self.samples:
            return {"gpu_source": self.source, "gpu_samples": 0}
        util = [u for u, _ in self.samples]
        peak = max(m for _, m in self.samples)
        return {
            "gpu_source": self.source, "gpu_samples": len(self.samples),
            "gpu_util_mean_pct": round(statistics.fmean(util), 1), "gpu_util_max_pct": max(util),
            "gpu_mem_peak_mib": round(peak), "gpu_mem_added_mib": round(peak - self.baseline),
        }


def free_port() -> int:
    """A free loopback port from the kernel's ephemeral range (so never Redis' 6379)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def run(cmd: list, timeout: float, log_to: Path, env: dict | None = None, check: bool = True):
    """Runs a command to completion, its stdout and stderr kept in `log_to`."""
    log("+ " + " ".join(str(c) for c in cmd))
    started = time.monotonic()
    with open(log_to, "w") as f:
        p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=f, text=True,
                           timeout=timeout, env=env)
    p.seconds = time.monotonic() - started
    p.log = log_to.read_text()
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} exited {p.returncode}: "
                           f"{p.log[-2000:]}")
    return p


class Services:
    """Long-running processes of one step, ended (by their own pids) when it ends."""

    def __init__(self):
        self.procs = []

    def start(self, name: str, cmd: list, log_to: Path, env: dict) -> subprocess.Popen:
        log("& " + " ".join(str(c) for c in cmd))
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                             stderr=open(log_to, "w"), env=env)
        self.procs.append((name, p))
        return p

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def wait_until(what: str, ready, timeout: float, procs: list):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for name, p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited {p.returncode} while waiting for {what}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def histogram(samples, name: str) -> dict:
    """Cumulative `le` buckets of a histogram as {le: cumulative count}, with sum and count."""
    buckets = {labels["le"]: v for n, labels, v in samples if n == f"{name}_bucket"}
    total = sum(v for n, _, v in samples if n == f"{name}_sum")
    count = sum(v for n, _, v in samples if n == f"{name}_count")
    return {"buckets": buckets, "sum": total, "count": count}


def metric(samples, name: str, **labels) -> float:
    return sum(v for n, ls, v in samples
               if n == name and all(ls.get(k) == want for k, want in labels.items()))


# --- the steps ----------------------------------------------------------------------------


def facts(ctx) -> dict:
    out = {"mode": ctx.mode, "device": ctx.cfg["device"], "host": platform.node(),
           "cpu": cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    import torch

    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:
        out["transformers"] = None
    version = subprocess.run([ctx.dfscan, "--version"], capture_output=True, text=True, timeout=60)
    out["dfscan"] = version.stdout.strip()
    # The GPU host's copy of the tree has no .git: the bundle's manifest names the commit.
    git = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True) if shutil.which("git") else None
    out["commit"] = git.stdout.strip() if git and git.returncode == 0 else None
    manifest = Path(ctx.args.dfscan).resolve().parent.parent / "MANIFEST.json"
    out["bundle"] = json.loads(manifest.read_text()) if manifest.exists() else None
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True, timeout=60).stdout
        (ctx.out / "nvidia-smi-q.txt").write_text(q)

        def field(name):
            m = re.search(rf"^\s*{name}\s*:\s*(.+)$", q, re.M)
            return m.group(1).strip() if m else None

        out["nvidia_smi"] = {
            "gpu": field("Product Name"), "driver": field("Driver Version"),
            "cuda": field("CUDA Version"), "memory_total": field("Total"),
            "gpus": field("Attached GPUs"), "vbios": field("VBIOS Version"),
        }
    else:
        out["nvidia_smi"] = None
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def bench_images_part(args):
    from make_bench_images import make_bench_images

    out, n, seed, size = args
    return make_bench_images(out, n, seed, size)


def assets(ctx) -> dict:
    from make_checkpoint import make_checkpoint

    cfg, work = ctx.cfg, ctx.work
    t0 = time.monotonic()
    ctx.model = work / f"vit-{cfg['preset']}"
    summary = make_checkpoint(ctx.model, preset=cfg["preset"], seed=0)
    ctx.train_base = work / "train-base"
    make_checkpoint(ctx.train_base, preset="tiny-a", seed=0, headless=True)
    # JPEGs in parallel parts (make_bench_images empties the folder it writes).
    parts = min(8, os.cpu_count() or 1, max(1, cfg["distinct_images"] // 64))
    per = cfg["distinct_images"] // parts
    jobs = [(work / "jpeg" / f"part-{i}", per, i, cfg["image_size"]) for i in range(parts)]
    with ProcessPoolExecutor(parts) as pool:
        list(pool.map(bench_images_part, jobs))
    distinct = sorted(p for d, *_ in jobs for p in d.glob("img_*.jpg"))
    ctx.pipeline_dir = work / "pipeline-images"
    link_set(ctx.pipeline_dir, distinct, cfg["pipeline_images"])
    ctx.score_dir = work / "score-images"
    link_set(ctx.score_dir, distinct, cfg["score_images"])
    ctx.cluster_dir = work / "cluster-images"
    link_set(ctx.cluster_dir, distinct, cfg["cluster_items"])
    ctx.train_data = work / "train-data"
    run([sys.executable, REPO / "tests/tools/make_train_set.py", ctx.train_data, "--train-per-class",
         cfg["train_per_class"], "--val-per-class", cfg["val_per_class"]], 120, work / "train-set.log")
    sizes = [p.stat().st_size for p in distinct]
    return {"model": summary["preset"], "params": summary["params"], "distinct_jpegs": len(distinct),
            "jpeg_size": cfg["image_size"], "jpeg_mean_bytes": round(statistics.fmean(sizes)),
            "seconds": round(time.monotonic() - t0, 1)}


def link_set(folder: Path, files: list[Path], n: int):
    """n names in `folder` for the distinct files, cycling: hard links where the file system
    allows (each is read and decoded like a file of its own), copies elsewhere."""
    folder.mkdir(parents=True)
    for i in range(n):
        src, dst = files[i % len(files)], folder / f"img_{i:06d}.jpg"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def parity(ctx) -> dict:
    env = dict(ctx.env, DFSCAN_TEST_FIXTURES=str(ctx.args.fixtures), RUST_TEST_THREADS="1")
    if ctx.mode == "dry":
        env["DFSCAN_TEST_DEVICE"] = "cpu"
    p = run([ctx.args.parity, "--ignored", "--nocapture", "cuda_"], ctx.deadline.cap(180),
            ctx.work / "parity.log", env=env, check=False)
    checks = []
    for m in re.finditer(r"parity: device=(\S+) dtype=(\S+) check=(\S+) max_abs_diff=(\S+) "
                         r"bound=(\S+)", p.log + p.stdout):
        diff, bound = float(m.group(4)), float(m.group(5))
        checks.append({"device": m.group(1), "dtype": m.group(2), "check": m.group(3),
                       "max_abs_diff": diff, "bound": bound, "ok": diff < bound})
    # With --nocapture a test's own lines come between its name and its "ok".
    tests = re.findall(r"^test (\S+) \.\.\. ", p.stdout, re.M)
    summary = re.search(r"^test result: \w+\. (\d+) passed; (\d+) failed", p.stdout, re.M)
    passed, failed = map(int, summary.groups()) if summary else (0, 0)
    result = {"tests": tests, "passed": passed, "failed": failed, "checks": checks,
              "exit": p.returncode}
    if p.returncode != 0 or not tests or passed != len(tests):
        raise StepFailed(result, f"parity tests exited {p.returncode}: {p.stdout[-1500:]}")
    return result


class StepFailed(Exception):
    def __init__(self, result: dict, message: str):
        super().__init__(message)
        self.result = result


def score(ctx) -> dict:
    cfg = ctx.cfg
    runs = []
    sampler = GpuSampler()
    env = dict(ctx.env, DFSCAN_LOG="info", NO_COLOR="1")
    for dtype in cfg["dtypes"]:
        for batch in cfg["batches"]:
            row = {"dtype": dtype, "batch": batch, "images": cfg["score_images"]}
            sampler.start()
            p = run([ctx.dfscan, "score", "--model", ctx.model, "--device", cfg["device"],
                     "--dtype", dtype, "--batch-size", batch, "--format", "jsonl",
                     "--output", os.devnull, ctx.score_dir], ctx.deadline.cap(240),
                    ctx.work / f"score-{dtype}-{batch}.log", env=env, check=False)
            row.update(sampler.stop())
            if p.returncode != 0:
                row["error"] = ANSI.sub("", p.log)[-600:]
            else:
                seconds = log_field(p.log, "seconds")
                row.update(images_per_s=log_field(p.log, "images_per_s"), seconds=seconds,
                           decode_share=round(log_field(p.log, "decode_s") / seconds, 3),
                           model_wait_share=round(log_field(p.log, "model_wait_s") / seconds, 3))
            runs.append(row)
            ctx.save()
    pipe_json = ctx.work / "pipeline.json"
    run([sys.executable, __file__, "pipeline", "--model", ctx.model, "--images", ctx.pipeline_dir,
         "--device", cfg["device"], "--dtypes", ",".join(cfg["dtypes"]),
         "--batches", ",".join(map(str, cfg["batches"])), "--json", pipe_json],
        ctx.deadline.cap(300), ctx.work / "pipeline.log", env=ctx.env)
    pipe = json.loads(pipe_json.read_text())
    by = {(r["dtype"], r["batch"]): r for r in pipe["runs"]}
    for row in runs:
        ref = by.get((row["dtype"], row["batch"]), {})
        f32 = by.get(("f32", row["batch"]), {})
        row["pipeline"] = ref
        if row.get("images_per_s") and ref.get("images_per_s"):
            row["over_pipeline"] = round(row["images_per_s"] / ref["images_per_s"], 2)
        if row.get("images_per_s") and f32.get("images_per_s"):
            row["over_pipeline_f32"] = round(row["images_per_s"] / f32["images_per_s"], 2)
    # On the CPU, f16 may not run in this build: that is a skip, recorded with libtorch's words.
    broken = [r for r in runs if "error" in r and not (cfg["device"] == "cpu" and r["dtype"] == "f16")]
    result = {"runs": runs, "pipeline_versions": {k: pipe.get(k) for k in ("torch", "transformers")},
              "pipeline_processor": sorted({r["processor"] for r in pipe["runs"] if "processor" in r}),
              "skipped": [f"{r['dtype']} batch {r['batch']} on CPU: {r['error']}" for r in runs
                          if "error" in r and r not in broken]}
    if broken:
        raise StepFailed(result, f"{len(broken)} dfscan score runs failed")
    return result


def cluster(ctx) -> dict:
    cfg, work = ctx.cfg, ctx.work
    ports = {k: free_port() for k in ("redis", "grpc", "metrics", "health")}
    name = ctx.model.name
    redis_url = f"redis://127.0.0.1:{ports['redis']}"
    env = dict(ctx.env, DFSCAN_COORDINATOR__AUTH__DISABLED="true", DFSCAN_LOG="warn")
    services = Services()
    try:
        (work / "redis").mkdir()
        services.start("redis-server", [ctx.args.redis_server, "--port", ports["redis"], "--bind",
                                        "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                                        work / "redis"], work / "redis.log", env)
        wait_until("redis-server", lambda: redis_ping(ports["redis"]), 30, services.procs)
        services.start("coordinator", [ctx.dfscan, "coordinator", "--listen",
                                       f"127.0.0.1:{ports['grpc']}", "--redis", redis_url,
                                       "--models", name], work / "coordinator.log", env)
        worker_env = dict(env, DFSCAN_METRICS__LISTEN=f"127.0.0.1:{ports['metrics']}",
                          DFSCAN_WORKER__HEALTH_LISTEN=f"127.0.0.1:{ports['health']}")
        services.start("worker", [ctx.dfscan, "worker", "--redis", redis_url, "--model", ctx.model,
                                  "--device", cfg["device"], "--dtype", cfg["worker_dtype"],
                                  "--max-batch", cfg["worker_max_batch"]], work / "worker.log",
                       worker_env)
        health = f"http://127.0.0.1:{ports['health']}/readyz"
        wait_until("the worker (/readyz)", lambda: http_get(health)[0] == 200,
                   ctx.deadline.cap(180), services.procs)
        scrape = f"http://127.0.0.1:{ports['metrics']}/metrics"
        before = parse_metrics(http_get(scrape)[1])
        results = work / "cluster-results.jsonl"
        sampler = GpuSampler().start()
        p = run([ctx.dfscan, "submit", "--coordinator", f"http://127.0.0.1:{ports['grpc']}",
                 "--model", name, "--output", results, ctx.cluster_dir], ctx.deadline.cap(300),
                work / "submit.log", env=env)
        gpu = sampler.stop()
        status, text = http_get(scrape)
        (ctx.out / "worker-metrics.txt").write_text(text)
        after = parse_metrics(text)
    finally:
        services.stop()
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    errors = [r for r in lines if r.get("error")]
    items = cfg["cluster_items"]
    h0, h1 = histogram(before, "dfscan_worker_batch_size"), histogram(after, "dfscan_worker_batch_size")
    ordered = sorted(h1["buckets"], key=lambda le: float(le.replace("+Inf", "inf")))
    cumulative = [h1["buckets"][le] - h0["buckets"].get(le, 0) for le in ordered]
    per_bucket = [{"le": le, "batches": int(c - (cumulative[i - 1] if i else 0))}
                  for i, (le, c) in enumerate(zip(ordered, cumulative))]
    batches = h1["count"] - h0["count"]
    result = {
        "items": items, "results": len(lines), "errors": len(errors), "seconds": round(p.seconds, 3),
        "items_per_s": round(items / p.seconds, 1), "worker_dtype": cfg["worker_dtype"],
        "max_batch": cfg["worker_max_batch"], "batches": int(batches),
        "mean_batch": round((h1["sum"] - h0["sum"]) / batches, 1) if batches else None,
        "batch_size_histogram": [b for b in per_bucket if b["batches"]],
        "scored": metric(after, "dfscan_worker_items_total", outcome="scored")
        - metric(before, "dfscan_worker_items_total", outcome="scored"),
        **gpu,
    }
    ctx.worker_metrics = (status, text, after)
    if len(lines) != items or errors or result["scored"] != items:
        raise StepFailed(result, f"{len(lines)} results, {len(errors)} errors, "
                                 f"{result['scored']} scored of {items}")
    return result


def metrics_check(ctx) -> dict:
    if not getattr(ctx, "worker_metrics", None):
        raise RuntimeError("no /metrics scrape: the cluster step did not get that far")
    status, text, samples = ctx.worker_metrics
    used = [(ls.get("gpu"), v) for n, ls, v in samples if n == "dfscan_worker_gpu_memory_used_bytes"]
    total = [(ls.get("gpu"), v) for n, ls, v in samples if n == "dfscan_worker_gpu_memory_total_bytes"]
    result = {"http_status": status, "scored_items_exported": "dfscan_worker_items_total" in text,
              "gpu_memory_used_bytes": dict(used), "gpu_memory_total_bytes": dict(total)}
    if ctx.cfg["device"] == "cpu":
        # A CPU worker never asks NVML, and a gauge family without samples is not rendered.
        result["note"] = "CPU worker: no GPU memory samples, as designed"
        ok = status == 200 and result["scored_items_exported"] and not used
    else:
        ok = status == 200 and bool(used) and all(0 < u <= t for (_, u), (_, t) in zip(used, total))
    if not ok:
        raise StepFailed(result, "the worker's /metrics does not export GPU memory as expected")
    return result


def train(ctx) -> dict:
    cfg = ctx.cfg
    runs, skipped = [], []
    env = dict(ctx.env, DFSCAN_LOG="info", NO_COLOR="1")
    for dtype in cfg["train_dtypes"]:
        out = ctx.work / f"trained-{dtype}"
        cmd = [ctx.dfscan, "train", "--base", ctx.train_base, "--data", ctx.train_data,
               "--output", out, "--device", cfg["device"], "--dtype", dtype,
               "--epochs", cfg["train_epochs"], "--batch-size", cfg["train_batch"], "--lr", "1e-3",
               "--warmup", "4", "--rotation", "15", "--crop-scale", "0.8", "--seed", "7",
               "--patience", "0", "--log-steps", "100000"]
        if cfg["device"] == "cpu":
            cmd += ["--threads", "1", "--decode-threads", "2"]  # deterministic on CPU
        p = run(cmd, ctx.deadline.cap(240), ctx.work / f"train-{dtype}.log", env=env, check=False)
        if p.returncode != 0 and cfg["device"] == "cpu" and "needs a CUDA device" in p.log:
            skipped.append(f"{dtype} on CPU: " + ANSI.sub("", p.log).strip().splitlines()[-1])
            continue
        if p.returncode != 0:
            raise StepFailed({"runs": runs}, f"train {dtype} exited {p.returncode}: {p.log[-1500:]}")
        report = json.loads((out / "training_report.json").read_text())
        history = report["history"]
        losses = [e["train_loss"] for e in history]
        per_epoch = -(-cfg["train_per_class"] * 2 // cfg["train_batch"])
        val = ctx.train_data / "val"
        s = run([ctx.dfscan, "score", "--model", out, "--device", cfg["device"], "--dtype", dtype,
                 "--format", "jsonl", val], ctx.deadline.cap(120), ctx.work / f"reload-{dtype}.log",
                env=env, check=False)
        scored = [json.loads(line) for line in s.stdout.splitlines() if line.strip()]
        row = {
            "dtype": dtype, "epochs": len(history), "steps": per_epoch * len(history),
            "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
            "losses_fell": losses[-1] < losses[0],
            "images_per_s": round(statistics.fmean(e["images_per_second"] for e in history[1:] or
                                                   history), 1),
            "best_eval": history[report["best_epoch"] - 1].get("eval"),
            "reload_exit": s.returncode, "reload_scored": sum(1 for r in scored if not r.get("error")),
            "val_images": 2 * cfg["val_per_class"], "seconds": round(p.seconds, 1),
        }
        runs.append(row)
        ctx.save()
    result = {"runs": runs, "skipped": skipped}
    bad = [r for r in runs if not r["losses_fell"] or r["reload_exit"] != 0
           or r["reload_scored"] != r["val_images"]]
    if bad or not runs:
        raise StepFailed(result, f"training checks failed: {bad or 'nothing trained'}")
    return result


def targets(report: dict) -> list[dict]:
    """The issue's targets against this run's figures (met, missed, or not measurable)."""
    runs = report["steps"].get("score", {}).get("result", {}).get("runs", [])
    batch = report["config"]["target_batch"]
    bf16 = [r for r in runs if r["dtype"] == "bf16" and r.get("images_per_s")]
    at = next((r for r in bf16 if r["batch"] == batch), None)
    best = max(bf16, key=lambda r: r["images_per_s"], default=None)
    out = []
    parity = report["steps"].get("parity", {}).get("result", {}).get("checks", [])
    f32 = [c for c in parity if c["dtype"] == "f32"]
    out.append({"target": "f32 parity on the device within the CPU bounds",
                "result": (f"worst {max(c['max_abs_diff'] / c['bound'] for c in f32):.2f} of its bound"
                           if f32 else "not measured"),
                "met": all(c["ok"] for c in f32) if f32 else None})
    # Rates are judged on a GPU only: the dry run's are of a tiny model on a CPU.
    gpu = report["config"]["device"] != "cpu"
    ratio = at.get("over_pipeline") if at else None
    out.append({"target": f"bf16 dfscan >= {TARGET_RATIO:g}x the bf16 pipeline at batch {batch}",
                "result": f"{ratio}x" if ratio else "not measured",
                "met": ratio >= TARGET_RATIO if ratio and gpu else None})
    out.append({"target": f"stretch: >= {TARGET_STRETCH:,.0f} images/s bf16 (ViT-B/16, H200)",
                "result": f"{best['images_per_s']:,.0f} images/s at batch {best['batch']}" if best else "not measured",
                "met": (best["images_per_s"] >= TARGET_STRETCH) if best and gpu else None})
    share = best.get("decode_share") if best else None
    out.append({"target": f"decoding <= {TARGET_DECODE_SHARE:.0%} of the time at that rate",
                "result": f"{share:.0%}" if share is not None else "not measured",
                "met": (share <= TARGET_DECODE_SHARE) if share is not None and gpu else None})
    return out


# --- the report ---------------------------------------------------------------------------


def fmt(v, spec=""):
    return "–" if v is None else format(v, spec)


def markdown(r: dict) -> str:
    f, s = r["facts"].get("result", {}), r["steps"]
    smi = f.get("nvidia_smi") or {}
    lines = [f"### GPU check, {r['started'][:10]} ({'dry run: CPU, small sizes' if r['mode'] == 'dry' else 'GPU'})", ""]
    gpu = (f"{smi.get('gpu')} ({smi.get('memory_total')}), driver {smi.get('driver')}, CUDA {smi.get('cuda')}"
           if smi else "no GPU (no nvidia-smi)")
    bundle = f.get("bundle") or {}
    lines += [f"Machine: {gpu}; {f.get('cpu')}, {f.get('cpu_count')} cores; torch {f.get('torch')} "
              f"(CUDA {f.get('torch_cuda')}), transformers {f.get('transformers')}; {f.get('dfscan')}"
              f", commit {bundle.get('commit') or f.get('commit')}. "
              f"Command: `scripts/gpu-check.sh{' --dry-run' if r['mode'] == 'dry' else ''}`, "
              f"{r.get('wall_s', 0):.0f} s.", ""]
    lines += ["| step | status | seconds |", "|---|---|---|"]
    for name, step in s.items():
        lines.append(f"| {name} | {step['status']}{': ' + step['error'][:160].replace('|', '/').replace(chr(10), ' ') if step.get('error') else ''} | {step.get('seconds', 0):.1f} |")
    lines.append("")
    par = s.get("parity", {}).get("result")
    if par:
        lines += ["Parity on the device against transformers' float32 (CPU) references:", "",
                  "| dtype | check | max abs diff | bound | ok |", "|---|---|---|---|---|"]
        lines += [f"| {c['dtype']} | {c['check']} | {c['max_abs_diff']:.2e} | {c['bound']:g} | {'yes' if c['ok'] else 'NO'} |"
                  for c in par["checks"]]
        lines.append("")
    sc = s.get("score", {}).get("result")
    if sc:
        lines += [f"`dfscan score` vs `transformers.pipeline`, {r['config']['preset']} checkpoint, "
                  f"{r['config']['image_size']}x{r['config']['image_size']} JPEGs "
                  f"({r['config']['score_images']} for dfscan, {r['config']['pipeline_images']} for the pipeline), "
                  f"{r['config']['device']}; the pipeline's image processor: "
                  f"{', '.join(sc.get('pipeline_processor', [])) or '–'}:", "",
                  "| dtype | batch | pipeline img/s | dfscan img/s | dfscan / pipeline | dfscan / pipeline f32 "
                  "| decoding share | model-wait share | GPU util (mean) | GPU memory added | pipeline GPU util | pipeline GPU memory added |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in sc["runs"]:
            p = row.get("pipeline", {})
            if "error" in row:
                lines.append(f"| {row['dtype']} | {row['batch']} | {fmt(p.get('images_per_s'), '.1f')} | skipped | | | | | | | | |")
                continue
            lines.append(
                f"| {row['dtype']} | {row['batch']} | {fmt(p.get('images_per_s'), '.1f')} | {fmt(row['images_per_s'], '.1f')} "
                f"| {fmt(row.get('over_pipeline'), '.2f')}x | {fmt(row.get('over_pipeline_f32'), '.2f')}x "
                f"| {row['decode_share']:.0%} | {row['model_wait_share']:.0%} | {fmt(row.get('gpu_util_mean_pct'))}% "
                f"| {fmt(row.get('gpu_mem_added_mib'))} MiB | {fmt(p.get('gpu_util_mean_pct'))}% | {fmt(p.get('gpu_mem_added_mib'))} MiB |")
        for skip in sc.get("skipped", []):
            lines.append(f"\nSkipped: {skip.splitlines()[-1] if skip else skip}")
        lines.append("")
    cl = s.get("cluster", {}).get("result")
    if cl:
        hist = ", ".join(f"≤{b['le'].replace('.0', '')}: {b['batches']}" for b in cl["batch_size_histogram"])
        lines += [f"Worker (`dfscan worker` {cl['worker_dtype']}, max batch {cl['max_batch']}, local redis-server): "
                  f"{cl['items']:,} items by one `dfscan submit` in {cl['seconds']:.1f} s = **{cl['items_per_s']:,.0f} items/s** "
                  f"(upload, scoring and results); {cl['batches']} batches, mean {cl['mean_batch']}; GPU util {fmt(cl.get('gpu_util_mean_pct'))}%. "
                  f"Batch-size histogram (`dfscan_worker_batch_size`, batches per bucket): {hist}.", ""]
    me = s.get("metrics", {}).get("result")
    if me:
        used = ", ".join(f"GPU {g}: {v / 2**20:,.0f} of {me['gpu_memory_total_bytes'].get(g, 0) / 2**20:,.0f} MiB"
                         for g, v in me["gpu_memory_used_bytes"].items())
        lines += [f"Worker /metrics GPU memory (`dfscan_worker_gpu_memory_used_bytes`): {used or me.get('note')}.", ""]
    tr = s.get("train", {}).get("result")
    if tr:
        lines += ["`dfscan train` (head-less tiny-a base, make_train_set.py images):", "",
                  "| dtype | epochs | steps | first epoch loss | last epoch loss | fell | img/s | reloaded and scored |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {t['dtype']} | {t['epochs']} | {t['steps']} | {t['first_loss']} | {t['last_loss']} "
                  f"| {'yes' if t['losses_fell'] else 'NO'} | {t['images_per_s']} | {t['reload_scored']}/{t['val_images']} |"
                  for t in tr["runs"]]
        lines += [f"\nSkipped: {x}" for x in tr.get("skipped", [])]
        lines.append("")
    if r.get("targets"):
        lines += ["| target | result | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['result']} | {'–' if t['met'] is None else ('yes' if t['met'] else 'no')} |"
                  for t in r["targets"]]
        lines.append("")
    return "\n".join(lines)


class Context:
    def __init__(self, args):
        self.args, self.mode, self.cfg = args, args.mode, MODES[args.mode]
        self.out, self.work = Path(args.out), Path(args.work)
        self.dfscan = args.dfscan
        self.deadline = Deadline(args.deadline_s)
        # The caller's own settings and hub cache stay out of the runs (as in the tests):
        # every dfscan process here is configured by its flags alone.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DFSCAN_", "HF_"))}
        self.env["HF_HUB_OFFLINE"] = "1"
        # These steps measure the classifier on whole images, as the pipeline
        # scores them; a GPU host has no converted face detector of its own.
        self.env["DFSCAN_FACES__MODE"] = "off"
        self.report = {"schema": 1, "mode": self.mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "config": self.cfg, "facts": {}, "steps": {}}
        self.t0 = time.monotonic()

    def save(self):
        self.report["wall_s"] = round(time.monotonic() - self.t0, 1)
        self.report["targets"] = targets(self.report)
        (self.out / "report.json").write_text(json.dumps(self.report, indent=1) + "\n")
        (self.out / "report.md").write_text(markdown(self.report) + "\n")


def main_run(args) -> int:
    ctx = Context(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    ctx.work.mkdir(parents=True, exist_ok=True)
    steps = [("facts", facts), ("assets", assets), ("parity", parity), ("score", score),
             ("cluster", cluster), ("metrics", metrics_check), ("train", train)]
    if args.steps:
        # A rerun of some steps (what a second window has time for); facts and assets
        # always run, and metrics reads what cluster scraped.
        wanted = {"facts", "assets", *args.steps.split(",")} | (
            {"cluster"} if "metrics" in args.steps.split(",") else set())
        unknown = wanted - {n for n, _ in steps}
        if unknown:
            raise SystemExit(f"unknown steps {sorted(unknown)}")
        steps = [(n, f) for n, f in steps if n in wanted]
    for name, step in steps:
        log(f"step {name} ({ctx.deadline.left():.0f} s left)")
        entry = {"status": "running"}
        (ctx.report if name == "facts" else ctx.report["steps"])[name] = entry
        started = time.monotonic()
        try:
            entry["result"] = step(ctx)
            entry["status"] = "ok"
        except StepFailed as e:
            entry.update(status="failed", result=e.result, error=str(e))
        except Exception as e:  # noqa: BLE001 - recorded; the next step still runs
            entry.update(status="failed", error=f"{type(e).__name__}: {e}")
            log(traceback.format_exc())
        entry["seconds"] = round(time.monotonic() - started, 1)
        log(f"step {name}: {entry['status']} in {entry['seconds']} s"
            + (f": {entry['error'][:300]}" if "error" in entry else ""))
        ctx.save()
        if name == "assets" and entry["status"] != "ok":
            for rest, _ in steps[steps.index((name, step)) + 1:]:
                ctx.report["steps"][rest] = {"status": "skipped", "error": "no assets"}
            break  # nothing after this has its inputs
    failed = [n for n, e in ctx.report["steps"].items() if e["status"] != "ok"]
    ctx.report["ok"] = not failed and ctx.report["facts"]["status"] == "ok"
    ctx.save()
    print(markdown(ctx.report))
    return 0 if ctx.report["ok"] else 1


def main_pipeline(args) -> int:
    """transformers' pipeline over the same JPEGs for each dtype and batch size, timed as
    benches/pipeline_reference.py times it: the wall clock from the list of paths to the list
    of results (reading, decoding and preprocessing included) after one warm-up batch."""
    from pipeline_reference import _quiet, list_images

    _quiet()
    import torch
    import transformers
    from transformers import pipeline

    paths = list_images(Path(args.images))
    kinds = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    runs, sampler = [], GpuSampler()
    for dtype in args.dtypes.split(","):
        try:
            pipe = pipeline("image-classification", model=args.model, dtype=kinds[dtype],
                            device=0 if args.device == "cuda" else -1)
            pipe(paths[: max(int(b) for b in args.batches.split(","))], batch_size=32)  # warm-up
        except Exception as e:  # noqa: BLE001 - e.g. a dtype this device cannot run
            runs += [{"dtype": dtype, "batch": int(b), "error": f"{type(e).__name__}: {e}"[:500]}
                     for b in args.batches.split(",")]
            continue
        for b in map(int, args.batches.split(",")):
            sampler.start()
            t0 = time.perf_counter()
            results = pipe(paths, batch_size=b)
            seconds = time.perf_counter() - t0
            assert len(results) == len(paths)
            runs.append({"dtype": dtype, "batch": b, "images": len(paths), "seconds": round(seconds, 3),
                         "images_per_s": round(len(paths) / seconds, 2),
                         # Which image processor the pipeline chose (PIL's or torchvision's).
                         "processor": type(pipe.image_processor).__name__, **sampler.stop()})
        del pipe
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    Path(args.json).write_text(json.dumps({"torch": torch.__version__,
                                           "transformers": transformers.__version__, "runs": runs}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--mode", choices=sorted(MODES), required=True)
    for flag in ("--out", "--work", "--dfscan", "--parity", "--fixtures", "--redis-server"):
        r.add_argument(flag, required=True)
    r.add_argument("--deadline-s", type=float, default=420)
    r.add_argument("--steps", help="comma-separated: parity,score,cluster,metrics,train (all)")
    p = sub.add_parser("pipeline")
    for flag in ("--model", "--images", "--device", "--dtypes", "--batches", "--json"):
        p.add_argument(flag, required=True)
    args = ap.parse_args()
    return main_run(args) if args.cmd == "run" else main_pipeline(args)


if __name__ == "__main__":
    sys.exit(main())
