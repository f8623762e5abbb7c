#!/usr/bin/env python3
"""Make a small labelled image folder for testing `dfscan eval`.

    make_eval_set.py OUT_DIR --n-per-class N [--size 64] [--seed 0]

Writes OUT_DIR/Real/real_000.png ... and OUT_DIR/Fake/fake_000.png ... (RGB PNG, deterministic).
Real images are smooth synthetic scenes (gradient, shapes, stripes, noise, see
make_fixtures.synth_rgb).  Fake images are made the same way and then carry an obvious
artifact: one or two bright, saturated Gaussian blobs alpha-blended in, plus a faint
high-frequency checkerboard, so the two classes are easy to tell apart (a trivial brightness
or blob detector separates them; a random-weight model will not, which is the point of
testing the metrics code with both kinds of models).

Prints a JSON summary (counts, paths).  Runs in well under a second for N=50.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import synth_rgb  # noqa: E402


def fake_artifact(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = img.shape
    out = img.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
        sigma = rng.uniform(0.12, 0.22) * min(h, w)
        a = 0.85 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))[..., None]
        color = np.array([255.0, rng.uniform(200, 255), rng.uniform(0, 80)])[rng.permutation(3)]
        out = out * (1 - a) + color * a
    checker = ((np.indices((h, w)).sum(0) % 2) * 2 - 1).astype(np.float32)[..., None]
    out += 6 * checker
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_eval_set(out_dir: str | Path, n_per_class: int, size: int = 64, seed: int = 0) -> dict:
    from PIL import Image

    out = Path(out_dir)
    counts = {}
    for cls in ("Real", "Fake"):
        d = out / cls
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob(f"{cls.lower()}_*.png"):
            old.unlink()
        for i in range(n_per_class):
            s = seed * 1_000_003 + i * 2 + (cls == "Fake")
            img = synth_rgb(size, size, 7919 * s + 13, noise=6.0)
            if cls == "Fake":
                img = fake_artifact(img, np.random.default_rng(s + 99_991))
            Image.fromarray(img, "RGB").save(d / f"{cls.lower()}_{i:03d}.png")
        counts[cls] = n_per_class
    return {"out": str(out), "counts": counts, "size": size, "seed": seed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Make a labelled Real/Fake folder for dfscan eval.")
    ap.add_argument("out_dir")
    ap.add_argument("--n-per-class", type=int, required=True)
    ap.add_argument("--size", type=int, default=64, help="square image side in pixels (default 64)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.n_per_class < 0 or args.size < 1:
        ap.error("--n-per-class must be >= 0 and --size >= 1")
    print(json.dumps(make_eval_set(args.out_dir, args.n_per_class, args.size, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
