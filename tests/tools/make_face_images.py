#!/usr/bin/env python3
"""Images with faces at known places, for face scoring's parity test and benchmark.

    make_face_images.py parity OUT --astronaut FILE [--photo FILE ...]
    make_face_images.py bench OUT --astronaut FILE --n N [--seed 0]

The faces are the astronaut's (scikit-image's `astronaut.png`, the path that
`face_detector_reference.py paths` prints), cut as a square patch around her
face, scaled so that the face is a chosen height, sometimes mirrored or
tinted so that the faces of one image are not the same crop, and pasted on
deterministic noise or flat backgrounds.

`parity` (tests/faces.rs) writes a small set chosen to exercise each step of
`dfscan score --faces`:
  - the `--photo` files, copied as they are (scikit-image's photographs:
    greyscale, a cat, a cup; faces or none);
  - composites with 1 to 4 faces: PNG and JPEG, one larger than the
    detector's working size (coordinates mapped back through its resize),
    one with faces at the edges (crops that leave the image, zero-filled),
    one stored rotated with EXIF orientation 6 (faces reported in the
    oriented image);
  - `noface.png`: noise only (mode auto scores it whole, mode require gives
    it no score).
`bench` writes N JPEGs of 640x480 (quality 90) with 1 to 4 faces each, 48
to 160 px tall, not overlapping, placed by a seeded generator.

Both write OUT/manifest.json: {"images": {file name: {"size": [w, h],
"faces": [[x0, y0, x1, y1], ...]}}}, the pasted faces' boxes (eyebrows to
chin, as annotated on the astronaut) in the pixels of the image as
`ImageOps.exif_transpose` orients it; of the copied photos, only the
astronaut's own is annotated (the others list none).
Deterministic: the same inputs and versions give the same files.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# The astronaut's face in astronaut.png, as crates/model/tests/face_detector.rs
# annotates it (eyebrows to chin, cheek to cheek).
ASTRONAUT_FACE = (180.0, 60.0, 270.0, 178.0)
# The patch pasted: a square of this many times the face's longer side around
# its centre, so that the detector sees some hair and neck.
PATCH_SCALE = 1.6


class FaceSource:
    """The astronaut's face patch, and where the face lies in it."""

    def __init__(self, astronaut: Path):
        self.path = astronaut.resolve()
        image = Image.open(astronaut).convert("RGB")
        x0, y0, x1, y1 = ASTRONAUT_FACE
        side = int(PATCH_SCALE * max(x1 - x0, y1 - y0))
        left, top = int((x0 + x1 - side) / 2), int((y0 + y1 - side) / 2)
        self.patch = image.crop((left, top, left + side, top + side))
        # The face in patch pixels.
        self.face = (x0 - left, y0 - top, x1 - left, y1 - top)

    def paste(self, canvas: Image.Image, height: float, x: int, y: int, variant: int = 0) -> list[float]:
        """Pastes the patch scaled so that the face is `height` px tall, its
        top-left corner at (x, y); `variant` mirrors (odd) and tints (by
        variant // 2) it. Returns the face's box in the canvas."""
        k = height / (self.face[3] - self.face[1])
        size = round(self.patch.width * k)
        k = size / self.patch.width
        patch = self.patch.resize((size, size), Image.BILINEAR)
        x0, y0, x1, y1 = self.face
        if variant % 2:
            patch = ImageOps.mirror(patch)
            x0, x1 = self.patch.width - x1, self.patch.width - x0
        tint = variant // 2 % 4
        if tint:
            gains = [(1.15, 1.0, 0.85), (0.8, 0.9, 1.1), (1.0, 1.2, 1.0)][tint - 1]
            pixels = np.asarray(patch, dtype=np.float32) * np.asarray(gains, dtype=np.float32)
            patch = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        canvas.paste(patch, (x, y))
        return [x + x0 * k, y + y0 * k, x + x1 * k, y + y1 * k]


def noise(width: int, height: int, base: int, amplitude: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = base + rng.integers(-amplitude, amplitude + 1, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def flat(width: int, height: int, value: int) -> Image.Image:
    return Image.new("RGB", (width, height), (value, value, value))


# name -> (background, [(face height, x, y, variant)]): a patch is a square
# of 1.6 times the face's height, (x, y) its top-left corner, which may lie
# outside the canvas (Pillow's paste clips).
PARITY_LAYOUTS = {
    "one-face.png": (lambda: noise(640, 480, 120, 35, 11), [(120, 250, 130, 0)]),
    "two-faces.jpg": (lambda: noise(640, 480, 90, 25, 12), [(160, 40, 60, 0), (80, 420, 250, 3)]),
    "three-faces-800x600.png": (
        lambda: flat(800, 600, 165),
        [(140, 40, 40, 0), (100, 420, 80, 5), (60, 300, 420, 2)],
    ),
    # Each face 5 px from two edges (its patch cut off there), so that its
    # crop of 1.3 x the box reaches past them.
    "four-faces-at-edges.png": (
        lambda: noise(640, 480, 140, 30, 13),
        [(110, -41, -28, 0), (90, 529, -22, 1), (80, -28, 372, 4), (100, 517, 346, 7)],
    ),
    "large-1600x1200.jpg": (lambda: noise(1600, 1200, 100, 30, 14), [(300, 150, 200, 0), (200, 1000, 600, 6)]),
}

# Stored rotated (EXIF orientation 6): the oriented image is this composite.
EXIF_ROTATED = ("two-faces-exif6.jpg", lambda: noise(480, 640, 110, 30, 15), [(100, 40, 40, 0), (130, 200, 380, 1)])


def compose(source: FaceSource, background, placements) -> tuple[Image.Image, list[list[float]]]:
    canvas = background()
    faces = [source.paste(canvas, h, x, y, v) for h, x, y, v in placements]
    return canvas, faces


def save(image: Image.Image, path: Path, **options) -> None:
    if path.suffix == ".jpg":
        image.save(path, quality=90, **options)
    else:
        image.save(path, **options)


def parity(out: Path, source: FaceSource, photos: list[Path]) -> dict:
    manifest = {}
    for photo in photos:
        shutil.copyfile(photo, out / photo.name)
        faces = [list(ASTRONAUT_FACE)] if photo.resolve() == source.path else []
        manifest[photo.name] = {"size": list(Image.open(photo).size), "faces": faces}
    for name, (background, placements) in PARITY_LAYOUTS.items():
        image, faces = compose(source, background, placements)
        save(image, out / name)
        manifest[name] = {"size": list(image.size), "faces": faces}
    name, background, placements = EXIF_ROTATED
    image, faces = compose(source, background, placements)
    exif = Image.Exif()
    exif[0x0112] = 6
    # exif_transpose applies ROTATE_270 for orientation 6: store the inverse.
    save(image.transpose(Image.Transpose.ROTATE_90), out / name, exif=exif.tobytes())
    oriented = ImageOps.exif_transpose(Image.open(out / name))
    assert oriented.size == image.size, (oriented.size, image.size)
    manifest[name] = {"size": list(image.size), "faces": faces}
    image = noise(512, 384, 128, 40, 16)
    save(image, out / "noface.png")
    manifest["noface.png"] = {"size": list(image.size), "faces": []}
    return manifest


def overlaps(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Whether two (x, y, side) squares overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[2] and b[1] < a[1] + a[2]


def bench(out: Path, source: FaceSource, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    width, height = 640, 480
    manifest = {}
    for i in range(n):
        canvas = noise(width, height, int(rng.integers(60, 190)), 30, seed * 100_003 + i)
        placed, faces = [], []
        for _ in range(int(rng.integers(1, 5))):
            # Rejection sampling: a few tries for a free spot, else fewer faces.
            for _ in range(50):
                face_height = int(rng.integers(48, 161))
                side = round(source.patch.width * face_height / (source.face[3] - source.face[1]))
                square = (int(rng.integers(0, width - side)), int(rng.integers(0, height - side)), side)
                if not any(overlaps(square, other) for other in placed):
                    placed.append(square)
                    faces.append(source.paste(canvas, face_height, square[0], square[1], int(rng.integers(0, 8))))
                    break
        name = f"bench-{i:04d}.jpg"
        save(canvas, out / name)
        manifest[name] = {"size": [width, height], "faces": faces}
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["parity", "bench"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--astronaut", type=Path, required=True, help="scikit-image's astronaut.png")
    ap.add_argument("--photo", type=Path, action="append", default=[], help="parity: a photo to copy")
    ap.add_argument("--n", type=int, default=96, help="bench: number of images")
    ap.add_argument("--seed", type=int, default=0, help="bench: the placements' seed")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    source = FaceSource(args.astronaut)
    if args.mode == "parity":
        images = parity(args.out, source, args.photo)
    else:
        images = bench(args.out, source, args.n, args.seed)
    (args.out / "manifest.json").write_text(json.dumps({"images": images}, indent=1) + "\n")


if __name__ == "__main__":
    main()
