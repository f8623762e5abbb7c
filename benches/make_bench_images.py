#!/usr/bin/env python3
"""Write N benchmark JPEGs, 256x256, quality 90, varied content (deterministic).

    make_bench_images.py OUT_DIR --n N [--seed 0] [--size 256]

Like the face crops of the model card's dataset: 256x256 colour JPEGs (4:2:0, quality 90) of
a few tens of KB each.  Content is synthetic (gradient, shapes, stripes, noise; a face-like
ellipse with darker "eyes" is added to most) so decoding cost resembles real photos rather
than flat images.  Files are named img_00000.jpg, ...; existing img_*.jpg in OUT_DIR are
replaced.  Prints a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "tools"))
from make_fixtures import synth_rgb  # noqa: E402


def face_like(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFilter

    h, w, _ = img.shape
    im = Image.fromarray(img, "RGB")
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    skin = tuple(int(v) for v in rng.uniform([150, 100, 80], [240, 190, 160])) + (235,)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.45, 0.6)
    rx, ry = w * rng.uniform(0.22, 0.3), h * rng.uniform(0.3, 0.38)
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    eye = (int(rng.integers(20, 70)),) * 3 + (255,)
    for sx in (-1, 1):
        ex, ey = cx + sx * rx * 0.4, cy - ry * 0.2
        d.ellipse([ex - rx * 0.12, ey - ry * 0.06, ex + rx * 0.12, ey + ry * 0.06], fill=eye)
    d.line([cx - rx * 0.3, cy + ry * 0.45, cx + rx * 0.3, cy + ry * 0.45], fill=(140, 50, 50, 255), width=3)
    layer = layer.filter(ImageFilter.GaussianBlur(1.5))
    im = Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")
    return np.asarray(im)


def make_bench_images(out_dir: str | Path, n: int, seed: int = 0, size: int = 256) -> dict:
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("img_*.jpg"):
        old.unlink()
    t0 = time.time()
    total = 0
    for i in range(n):
        s = seed * 1_000_003 + i
        img = synth_rgb(size, size, 104_729 * s + 7, noise=float(np.random.default_rng(s).uniform(3, 12)))
        rng = np.random.default_rng(s + 555)
        if rng.uniform() < 0.8:
            img = face_like(img, rng)
        p = out / f"img_{i:05d}.jpg"
        Image.fromarray(img, "RGB").save(p, "JPEG", quality=90, subsampling=2)
        total += p.stat().st_size
    return {
        "out": str(out),
        "images": n,
        "size": size,
        "mean_bytes": round(total / max(n, 1)),
        "seconds": round(time.time() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write N 256x256 quality-90 benchmark JPEGs.")
    ap.add_argument("out_dir")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    print(json.dumps(make_bench_images(args.out_dir, args.n, args.seed, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
