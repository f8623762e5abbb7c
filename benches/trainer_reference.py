#!/usr/bin/env python3
"""The Hugging Face side of `dfscan train`'s benchmark: fine-tune a ViT with the transformers
`Trainer` (CPU, or CUDA with --device cuda) and report the training throughput.

    trainer_reference.py --base DIR --data DIR [--max-steps N] [--batch-size 32] [--lr 1e-6]
                         [--weight-decay 0.01] [--warmup 0] [--threads N] [--workers N]
                         [--skip-steps 2] [--seed 0] [--no-augment] [--device cpu|cuda]

DATA/train/<label>/ holds the training images (one subfolder per label; .png, .jpg, ... at
any depth below it).  The sorted subfolder names are the class indices (id2label/label2id).
BASE is a checkpoint directory, head-less (google/vit-base-patch16-224-in21k,
make_checkpoint.py --headless) or fine-tuned, with a preprocessor_config.json; it is loaded
with
    ViTForImageClassification.from_pretrained(BASE, num_labels=len(labels), id2label=...,
                                              label2id=..., ignore_mismatched_sizes=True)
(a new classifier where BASE has none or one of another size; the script fails if any
backbone weight is missing).

The training recipe is the one of the prithivMLmods/Deep-Fake-Detector-Model card, done on
PIL images in a torch Dataset exactly as torchvision would do it on PIL (without
torchvision; random draws from torch's global RNG, in torchvision's order):
    a. load RGB (open, convert("RGB")), resize to the processor's size with its resample
       (bilinear): img.resize((W, H), resample)
    b. RandomResizedCrop((H, W), scale=(0.5, 1.0), ratio=(3/4, 4/3), bilinear): 10 tries,
       then the centre-crop fallback; crop, then resize((W, H), BILINEAR)
    c. RandomRotation(90): angle ~ U(-90, 90),
       img.rotate(angle, resample=NEAREST, expand=False, fillcolor=(0, 0, 0))
    d. RandomAdjustSharpness(2, p=0.5): ImageEnhance.Sharpness(img).enhance(2) if
       torch.rand(1) < 0.5
    e. ToTensor (float32 CHW / 255) and Normalize(processor mean, processor std)
--no-augment keeps only a and e.

TrainingArguments: per_device_train_batch_size, learning_rate, weight_decay, warmup_steps,
lr_scheduler_type="linear", max_steps, optim="adamw_torch", seed, dataloader_num_workers
(--workers, default 1; persistent workers when > 0, so that short epochs do not restart
them inside the timed window), dataloader_drop_last=True (every step sees exactly
--batch-size images), use_cpu unless --device cuda, no evaluation, no checkpoints, no logging, report_to=[],
other values the Trainer defaults (max_grad_norm 1.0, adam betas/eps, no grad accumulation).
--max-steps defaults to one epoch (len(train) // batch size).

Throughput: a TrainerCallback takes the wall clock at the end of step --skip-steps (with 0:
at the beginning of step 1) and at the end of the last step;
    images_per_second = (steps - skip_steps) * batch_size / seconds.
stdout gets ONE JSON line:
    {"images_per_second": float, "steps": int (optimizer steps run), "batch_size": int,
     "seconds": float (the timed window), "final_loss": float (loss of the last step),
     "torch": str, "transformers": str, "threads": int (torch.get_num_threads()),
     "skip_steps": int}
Everything else (load report, the Trainer's own final metrics, a summary) goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tools"))
from make_checkpoint import _quiet_transformers  # noqa: E402

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def processor_class():
    """The slow/PIL ViT image processor (what the pipeline uses without torchvision); the same
    choice as tests/tools/make_checkpoint.processor_class()."""
    import transformers

    cls = getattr(transformers, "ViTImageProcessorPil", None)
    return cls if cls is not None else transformers.ViTImageProcessor


def list_training_images(train_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    labels = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    items = []
    for idx, label in enumerate(labels):
        files = sorted(
            f for f in (train_dir / label).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
        )
        items.extend((str(f), idx) for f in files)
    return labels, items


# --- torchvision's transforms on PIL, re-implemented (same RNG draws, same PIL calls) ---


def random_resized_crop_params(width: int, height: int, scale, ratio) -> tuple[int, int, int, int]:
    """torchvision.transforms.RandomResizedCrop.get_params: (top, left, h, w)."""
    import torch

    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))  # float32, as torchvision
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            return i, j, h, w
    # fallback to a central crop
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:  # whole image
        w = width
        h = height
    i = (height - h) // 2
    j = (width - w) // 2
    return i, j, h, w


class TrainSet:
    """torch-style map Dataset: {"pixel_values": f32 [3,H,W], "labels": int}."""

    def __init__(self, items, size_hw, resample, mean, std, augment: bool):
        import torch

        self.items = items
        self.size_hw = size_hw
        self.resample = resample
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.items)

    def transform(self, img):
        import numpy as np
        import torch
        from PIL import Image, ImageEnhance

        h, w = self.size_hw
        img = img.resize((w, h), self.resample)  # a. Resize((H, W))
        if self.augment:
            # b. RandomResizedCrop((H, W), scale=(0.5, 1.0), ratio=(3/4, 4/3), bilinear)
            top, left, ch, cw = random_resized_crop_params(img.width, img.height, (0.5, 1.0), (3 / 4, 4 / 3))
            img = img.crop((left, top, left + cw, top + ch))
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            # c. RandomRotation(90): nearest, no expand, fill 0
            angle = float(torch.empty(1).uniform_(-90.0, 90.0).item())
            img = img.rotate(angle, resample=Image.Resampling.NEAREST, expand=False, fillcolor=(0, 0, 0))
            # d. RandomAdjustSharpness(sharpness_factor=2, p=0.5)
            if torch.rand(1).item() < 0.5:
                img = ImageEnhance.Sharpness(img).enhance(2)
        # e. ToTensor + Normalize
        x = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).view(img.height, img.width, 3)
        x = x.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        return x.sub_(self.mean).div_(self.std)

    def __getitem__(self, idx: int) -> dict:
        from PIL import Image

        path, label = self.items[idx]
        with Image.open(path) as im:
            img = im.convert("RGB")
        return {"pixel_values": self.transform(img), "labels": label}


def load_base(base: str, labels: list[str]):
    import torch
    from transformers import ViTForImageClassification

    id2label = {i: name for i, name in enumerate(labels)}
    label2id = {name: i for i, name in enumerate(labels)}
    try:
        base_cfg = json.loads((Path(base) / "config.json").read_text())
    except (OSError, ValueError):
        base_cfg = {}
    old = base_cfg.get("id2label")
    if old and "ViTForImageClassification" in (base_cfg.get("architectures") or []):
        old_names = [old[k] for k in sorted(old, key=int)]
        if old_names != labels:
            log(f"warning: BASE's classes {old_names} differ from the data's {labels}")
    model, info = ViTForImageClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=id2label,
        label2id=label2id,
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
        output_loading_info=True,
    )
    report = {k: sorted(map(str, v)) for k, v in info.items() if v}
    log(f"load report: {json.dumps(report) if report else 'all weights loaded'}")
    backbone_missing = [k for k in report.get("missing_keys", []) if not k.startswith("classifier.")]
    if backbone_missing or info.get("error_msgs"):
        raise SystemExit(f"trainer_reference: BASE {base} lacks backbone weights: {backbone_missing}")
    return model


def run(args) -> dict:
    _quiet_transformers()
    import torch
    import transformers
    from PIL import Image
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    if args.threads:
        torch.set_num_threads(args.threads)

    train_dir = Path(args.data) / "train"
    if not train_dir.is_dir():
        raise SystemExit(f"trainer_reference: {train_dir} is not a directory")
    labels, items = list_training_images(train_dir)
    if len(labels) < 2:
        raise SystemExit(f"trainer_reference: need at least 2 label folders in {train_dir}, found {labels}")
    if len(items) < args.batch_size:
        raise SystemExit(f"trainer_reference: {len(items)} training images < batch size {args.batch_size}")
    steps_per_epoch = len(items) // args.batch_size
    max_steps = args.max_steps if args.max_steps is not None else steps_per_epoch
    if max_steps <= args.skip_steps:
        raise SystemExit(f"trainer_reference: --max-steps ({max_steps}) must exceed --skip-steps ({args.skip_steps})")

    processor = processor_class().from_pretrained(args.base)
    size = processor.size
    size_hw = (int(size["height"]), int(size["width"])) if "height" in size else (int(size["shortest_edge"]),) * 2
    resample = Image.Resampling(int(processor.resample))
    if processor.do_rescale and abs(processor.rescale_factor - 1 / 255) > 1e-12:
        raise SystemExit(f"trainer_reference: rescale_factor {processor.rescale_factor} is not 1/255")
    mean = list(processor.image_mean) if processor.do_normalize else [0.0, 0.0, 0.0]
    std = list(processor.image_std) if processor.do_normalize else [1.0, 1.0, 1.0]
    dataset = TrainSet(items, size_hw, resample, mean, std, augment=not args.no_augment)

    set_seed(args.seed)  # the new classifier's init
    model = load_base(args.base, labels)

    class LossRecorder(Trainer):
        last_loss = None

        def compute_loss(self, model, inputs, *a, **kw):
            out = super().compute_loss(model, inputs, *a, **kw)
            loss = out[0] if isinstance(out, tuple) else out
            self.last_loss = loss.detach()
            return out

    class Clock(TrainerCallback):
        def __init__(self, skip: int):
            self.skip = skip
            self.t0 = self.t_end = None
            self.last_step = 0

        def on_step_begin(self, args, state, control, **kw):
            if self.skip == 0 and self.t0 is None:
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            if state.global_step == self.skip and self.skip > 0:
                self.t0 = now
            elif state.global_step > self.skip:
                self.t_end, self.last_step = now, state.global_step

    out_dir = tempfile.mkdtemp(prefix="trainer_reference-")
    try:
        targs = TrainingArguments(
            output_dir=out_dir,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup,
            lr_scheduler_type="linear",
            max_steps=max_steps,
            optim="adamw_torch",
            seed=args.seed,
            dataloader_num_workers=args.workers,
            dataloader_persistent_workers=args.workers > 0,
            dataloader_drop_last=True,
            dataloader_pin_memory=False,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            log_level="error",
            disable_tqdm=True,
            use_cpu=args.device == "cpu",
            remove_unused_columns=False,
        )
        clock = Clock(args.skip_steps)
        trainer = LossRecorder(model=model, args=targs, train_dataset=dataset, callbacks=[clock])
        log(
            f"training: {len(items)} images, labels {labels}, {max_steps} steps of {args.batch_size} "
            f"({steps_per_epoch} per epoch), augment={not args.no_augment}, workers={args.workers}, "
            f"threads={torch.get_num_threads()}, input {size_hw[0]}x{size_hw[1]}"
        )
        t_all = time.perf_counter()
        result = trainer.train()
        t_all = time.perf_counter() - t_all
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    if clock.t0 is None or clock.t_end is None:
        raise SystemExit("trainer_reference: the timing callback saw no steps after --skip-steps")
    seconds = clock.t_end - clock.t0
    timed_steps = clock.last_step - args.skip_steps
    out = {
        "images_per_second": timed_steps * args.batch_size / seconds,
        "steps": int(result.global_step),
        "batch_size": args.batch_size,
        "seconds": seconds,
        "final_loss": float(trainer.last_loss),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "skip_steps": args.skip_steps,
    }
    log(f"timed {timed_steps} steps in {seconds:.3f} s; whole train() {t_all:.3f} s, "
        f"mean loss {result.training_loss:.4f}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="checkpoint dir (head-less or fine-tuned)")
    ap.add_argument("--data", required=True, help="dataset dir with train/<label>/ subfolders")
    ap.add_argument("--max-steps", type=int, help="optimizer steps (default: one epoch)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    ap.add_argument("--skip-steps", type=int, default=2, help="steps excluded from the timing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--no-augment", action="store_true", help="resize + normalize only")
    args = ap.parse_args(argv)
    if args.batch_size < 1 or args.workers < 0 or args.skip_steps < 0 or args.warmup < 0:
        ap.error("--batch-size must be >= 1; --workers, --skip-steps and --warmup >= 0")
    if args.max_steps is not None and args.max_steps < 1:
        ap.error("--max-steps must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")

    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its final metrics
        out = run(args)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
