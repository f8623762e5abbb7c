"""Drives dfscan's KServe v2 endpoint with Triton's own Python client
library (tritonclient.grpc), unchanged, and prints what it saw as JSON.

    triton_client.py --url HOST:PORT --model NAME --descriptors FILE \
        --face-image FILE --faceless-image FILE [--video FILE] IMAGE...

Checks on the way (an AssertionError fails the run):
- every message and RPC of dfscan's proto/inference/grpc_service.proto
  (read from the descriptor set in FILE) has the name, number, type and
  label it has in tritonclient's own grpc_service.proto/model_config.proto;
- the metadata calls answer as Triton's would;
- a request with an undecodable image, a wrong datatype, an unknown
  model and bad face parameters get the status codes the protocol
  prescribes.
It also asks for the FACES output of an image with a face and one without,
with the face parameters `faces` = auto (the workers' default), require
and off, and reports the documents; with --video, the same outputs of
one call holding the video and the image with a face. The probabilities,
faces and timeline themselves are compared with `dfscan score` by the
caller (tests/kserve.rs).
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import tritonclient.grpc as triton
from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2
from tritonclient.utils import InferenceServerException


def theirs(full_name):
    name = full_name.lstrip(".").removeprefix("inference.")
    pool = service_pb2.DESCRIPTOR.pool
    return pool.FindMessageTypeByName("inference." + name)


def check_message(ours, prefix):
    full = f"{prefix}.{ours.name}"
    ref = theirs(full)
    ref_fields = {f.name: f for f in ref.fields}
    for field in ours.field:
        assert field.name in ref_fields, f"{full}.{field.name}: not in Triton's proto"
        r = ref_fields[field.name]
        assert field.number == r.number, f"{full}.{field.name}: number {field.number} != {r.number}"
        assert field.type == r.type, f"{full}.{field.name}: type {field.type} != {r.type}"
        repeated = field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
        assert repeated == r.is_repeated, f"{full}.{field.name}: repeated differs"
        if field.type_name:
            ref_type = (r.message_type or r.enum_type).full_name
            assert field.type_name.lstrip(".") == ref_type, (
                f"{full}.{field.name}: type {field.type_name} != {ref_type}"
            )
    for nested in ours.nested_type:
        if not nested.options.map_entry:
            check_message(nested, full)


def check_proto(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    (ours,) = [f for f in fds.file if f.name == "inference/grpc_service.proto"]
    assert ours.package == "inference"
    for message in ours.message_type:
        check_message(message, "inference")
    for enum in ours.enum_type:
        ref = model_config_pb2.DESCRIPTOR.enum_types_by_name[enum.name]
        assert {v.name: v.number for v in enum.value} == {
            v.name: v.number for v in ref.values
        }, f"enum {enum.name} differs"
    (service,) = ours.service
    ref = service_pb2.DESCRIPTOR.services_by_name[service.name]
    for method in service.method:
        r = ref.methods_by_name[method.name]
        assert method.input_type.lstrip(".") == r.input_type.full_name, method.name
        assert method.output_type.lstrip(".") == r.output_type.full_name, method.name
    return {
        "messages": len(ours.message_type),
        "rpcs": [m.name for m in service.method],
    }


def status_of(call):
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    raise AssertionError("the call succeeded")


def with_faces(client, model, images, parameters):
    """PROBABILITIES, LABEL and FACES of `images` (file contents) in one
    call: per image its row (NaN as None: JSON has no NaN), label and
    parsed FACES document."""
    tensor = triton.InferInput("IMAGE", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    outputs = [triton.InferRequestedOutput(name) for name in ["PROBABILITIES", "LABEL", "FACES"]]
    result = client.infer(model, [tensor], outputs=outputs, parameters=parameters)
    assert [o.name for o in result.get_response().outputs] == ["PROBABILITIES", "LABEL", "FACES"]
    faces = result.as_numpy("FACES")
    assert faces.shape == (len(images),)
    return [
        {
            "probabilities": [None if math.isnan(p) else p for p in row.tolist()],
            "label": label.decode(),
            "faces": json.loads(document),
        }
        for row, label, document in zip(
            result.as_numpy("PROBABILITIES"), result.as_numpy("LABEL"), faces
        )
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--descriptors", required=True)
    parser.add_argument("--face-image", required=True, help="an image with one face")
    parser.add_argument("--faceless-image", required=True, help="an image without a face")
    parser.add_argument("--video", help="a video, sent as IMAGE's first element")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    report = {"proto": check_proto(args.descriptors)}

    client = triton.InferenceServerClient(url=args.url)
    assert client.is_server_live()
    assert client.is_server_ready()
    # The worker registers just after the port opens.
    deadline = time.monotonic() + 30
    while not client.is_model_ready(args.model):
        assert time.monotonic() < deadline, f"{args.model} never became ready"
        time.sleep(0.1)
    report["server"] = client.get_server_metadata(as_json=True)
    report["metadata"] = client.get_model_metadata(args.model, as_json=True)
    report["config"] = client.get_model_config(args.model, as_json=True)["config"]
    report["index"] = client.get_model_repository_index(as_json=True)

    images = [open(p, "rb").read() for p in args.images]
    data = np.array(images, dtype=np.object_)
    image = triton.InferInput("IMAGE", [len(images)], "BYTES")
    image.set_data_from_numpy(data)
    outputs = [
        triton.InferRequestedOutput("PROBABILITIES"),
        triton.InferRequestedOutput("LABEL"),
    ]
    result = client.infer(args.model, [image], outputs=outputs, request_id="req-1")
    probabilities = result.as_numpy("PROBABILITIES")
    labels = result.as_numpy("LABEL")
    assert probabilities.dtype == np.float32 and probabilities.shape[0] == len(images)
    assert labels.shape == (len(images),)
    assert result.get_response().id == "req-1"
    report["results"] = [
        {"path": path, "probabilities": row.tolist(), "label": label.decode()}
        for path, row, label in zip(args.images, probabilities, labels)
    ]

    # The same images as a [N, 1] tensor, the shape Triton's config implies.
    column = triton.InferInput("IMAGE", [len(images), 1], "BYTES")
    column.set_data_from_numpy(data.reshape(-1, 1))
    again = client.infer(args.model, [column])
    assert again.as_numpy("LABEL").shape == (len(images), 1)
    # Naming no output: the two a client that knows nothing of faces expects.
    report["default_outputs"] = [o.name for o in again.get_response().outputs]
    # Another call may be batched with other work: equal up to float32
    # rounding, never bit for bit.
    np.testing.assert_allclose(again.as_numpy("PROBABILITIES"), probabilities, rtol=0, atol=1e-5)

    bad = triton.InferInput("IMAGE", [2], "BYTES")
    bad.set_data_from_numpy(np.array([images[0], b"not an image"], dtype=np.object_))
    report["bad_image"] = status_of(lambda: client.infer(args.model, [bad]))
    wrong = triton.InferInput("IMAGE", [1], "FP32")
    wrong.set_data_from_numpy(np.zeros([1], dtype=np.float32))
    report["wrong_datatype"] = status_of(lambda: client.infer(args.model, [wrong]))
    report["unknown_model"] = status_of(lambda: client.infer("no-such-model", [image]))
    report["unknown_output"] = status_of(
        lambda: client.infer(
            args.model, [image], outputs=[triton.InferRequestedOutput("SCORES")]
        )
    )

    face_images = [open(p, "rb").read() for p in [args.face_image, args.faceless_image]]
    report["faces"] = {
        mode: with_faces(client, args.model, face_images, parameters)
        for mode, parameters in [
            ("default", None),
            ("require", {"faces": "require"}),
            ("off", {"faces": "off"}),
        ]
    }
    if args.video:
        video = open(args.video, "rb").read()
        report["video"] = with_faces(client, args.model, [video, face_images[0]], None)
    one = [face_images[0]]
    report["bad_faces"] = status_of(
        lambda: with_faces(client, args.model, one, {"faces": "sometimes"})
    )
    report["bad_max_faces"] = status_of(
        lambda: with_faces(client, args.model, one, {"faces": "auto", "max_faces": 0})
    )
    report["unknown_face_parameter"] = status_of(
        lambda: with_faces(client, args.model, one, {"face_mode": "off"})
    )
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
