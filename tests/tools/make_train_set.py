#!/usr/bin/env python3
"""Make a small two-class training set for `dfscan train` tests and benchmarks.

    make_train_set.py OUT_DIR [--train-per-class 64] [--val-per-class 16] [--size 48] [--seed 0]

Writes OUT_DIR/train/{Real,Fake}/*.png and OUT_DIR/val/{Real,Fake}/*.png (RGB PNG,
deterministic).  Every image is a synthetic "face": a skin-toned shaded ellipse with eyes and
a mouth on a smooth noisy background.  Fake images carry a synthetic face-swap blending
artifact: the inner face is replaced by a differently toned patch with a high-frequency
texture, alpha-blended in with a soft elliptical seam, as a swap pastes a face onto a head.
The artifact covers the middle of the image, so random crops and rotations keep it: the
classes are visually separable and a tiny ViT learns them in a few epochs.

Prints a JSON summary.  Runs in about a second for the defaults.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def face(rng: np.random.Generator, size: int, fake: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * np.pi)
    t = (np.cos(theta) * (xx - 0.5) + np.sin(theta) * (yy - 0.5) + 0.5).clip(0, 1)[..., None]
    img = c0 * (1 - t) + c1 * t
    cx, cy = rng.uniform(0.42, 0.58, 2)
    rx, ry = rng.uniform(0.22, 0.3), rng.uniform(0.3, 0.38)
    d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    skin = np.array([rng.uniform(150, 235), rng.uniform(110, 180), rng.uniform(80, 150)])
    shade = (1.1 - 0.3 * d).clip(0.6, 1.1)[..., None]
    inside = (d < 1)[..., None]
    img = np.where(inside, skin * shade, img)
    for ex in (-0.4, 0.4):  # eyes
        e = ((xx - cx - ex * rx) / (0.12 * rx)) ** 2 + ((yy - cy + 0.3 * ry) / (0.1 * ry)) ** 2 < 1
        img[e] = [40, 30, 30]
    mouth = (np.abs(yy - cy - 0.45 * ry) < 0.04 * ry + 0.5 / size) & (np.abs(xx - cx) < 0.4 * rx)
    img[mouth] = [150, 50, 60]
    if fake:
        swap = np.array([rng.uniform(150, 235), rng.uniform(110, 180), rng.uniform(80, 150)])
        period = int(rng.integers(3, 5))
        texture = ((np.indices((size, size)).sum(0) // period) % 2 * 2 - 1)[..., None]
        patch = swap + 45 * texture
        alpha = (1.3 - 1.3 * d).clip(0, 1)[..., None] ** 0.5  # soft seam
        img = img * (1 - alpha) + patch * alpha
    img = img + rng.normal(0, 4, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_split(out: Path, n: int, size: int, rng: np.random.Generator) -> dict:
    for label in ("Real", "Fake"):
        d = out / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(face(rng, size, label == "Fake")).save(d / f"{label.lower()}_{i:03d}.png")
    return {"Real": n, "Fake": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--train-per-class", type=int, default=64)
    ap.add_argument("--val-per-class", type=int, default=16)
    ap.add_argument("--size", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    summary = {
        "out": str(args.out),
        "train": write_split(args.out / "train", args.train_per_class, args.size, rng),
        "val": write_split(args.out / "val", args.val_per_class, args.size, rng),
        "size": args.size,
        "seed": args.seed,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
