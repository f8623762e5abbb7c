"""Reference crops for tests/crop.rs: what Pillow 13's `Image.crop` cuts.

Usage: crop_reference.py OUTDIR

Writes OUTDIR/image.bin (a random RGB image, raw), one OUTDIR/crop-N.bin per
case (Pillow's crop, raw RGB) and OUTDIR/manifest.json describing them:
integer regions inside, across and outside every edge of the image, and
the squares around face boxes computed in Python (`round`, half to even) as
`face_square` documents. Deterministic (fixed seed).
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
W, H = 37, 23
pixels = np.random.default_rng(15).integers(0, 256, (H, W, 3), dtype=np.uint8)
(OUT / "image.bin").write_bytes(pixels.tobytes())
image = Image.fromarray(pixels, "RGB")

REGIONS = [
    (0, 0, W, H),
    (3, 4, 20, 15),
    (-5, -3, 10, 8),
    (30, 18, 45, 30),
    (-10, 5, W + 10, 12),
    (4, -20, 9, H + 20),
    (40, 30, 50, 41),
    (-12, -12, -2, -1),
    (-100, -100, 100, 100),
    (5, 5, 6, 6),
]
# Faces (x0, y0, x1, y1) with the scale of their square; coordinates are
# exact in float32, so Python and Rust start from the same numbers.
FACES = [
    ((10.25, 6.5, 20.75, 19.0), 1.3),
    ((0.0, 0.0, 8.0, 12.0), 1.3),
    ((30.5, 15.5, 36.5, 22.5), 1.3),
    ((2.5, 3.5, 6.5, 7.5), 1.0),
    ((12.0, 9.0, 12.0, 9.0), 1.3),
    ((-4.0, 10.0, 5.0, 30.0), 2.0),
]

cases = []


def add(box, **extra):
    cut = image.crop(box)
    name = f"crop-{len(cases)}.bin"
    (OUT / name).write_bytes(cut.tobytes())
    cases.append({"file": name, "size": list(cut.size), **extra})


for region in REGIONS:
    add(region, region=list(region))
for face, scale in FACES:
    side = max(1, round(scale * max(face[2] - face[0], face[3] - face[1])))
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    # Rounding the float box's corners one by one could make the square
    # 9 x 10 (14.5 -> 14 but 23.5 -> 24), so the right and bottom edges are
    # the rounded left and top plus the side.
    left, top = round(cx - side / 2), round(cy - side / 2)
    region = (left, top, left + side, top + side)
    add(region, face=list(face), scale=scale, region=list(region))

(OUT / "manifest.json").write_text(json.dumps({"width": W, "height": H, "cases": cases}, indent=1))
