"""The wrapper against an in-process fake of the Scoring service: batching
and laziness of uploads, resumption of broken result streams, error
mapping. No dfscan server needed."""

from __future__ import annotations

import json
import struct
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Iterator, List, Optional

import grpc
import jsonschema
import pytest

import dfscan_client
from dfscan_client import Client, pb, pb_grpc
from dfscan_client.client import _target
from dfscan_client.records import f32_text
from dfscan_client.sources import batches, images_under, iter_items
from conftest import SCHEMA, assert_record

JOB_ID = "ab" * 16


def result(k: int) -> pb.ItemResult:
    """The k-th result (cursor k + 1) of the fake job."""
    return pb.ItemResult(
        id=f"item-{k}",
        index=k,
        cursor=k + 1,
        label="Real",
        scores=[pb.LabelScore(label="Real", score=0.75), pb.LabelScore(label="Fake", score=0.25)],
        fake_score=0.25,
        model=pb.ModelIdentity(name="m", sha256="00"),
    )


class FakeScoring(pb_grpc.ScoringServicer):
    def __init__(self, total: int = 0) -> None:
        self.results = [result(k) for k in range(total)]
        #: Per StreamResults call, how many results to send before failing
        #: with UNAVAILABLE (None: all of them, then end).
        self.breaks: List[Optional[int]] = []
        self.stream_requests: List[int] = []
        self.get_jobs = 0
        self.headers: List[pb.JobHeader] = []
        self.batch_sizes: List[int] = []
        self.items: List[pb.Item] = []
        self.submits_completed = 0
        self.submit_error: Optional[grpc.StatusCode] = None
        #: Called with the number of items received so far, on each message.
        self.on_batch = lambda received: None
        self.lock = threading.Lock()

    def StreamResults(self, request, context):
        self.stream_requests.append(request.after_cursor)
        if request.job_id != JOB_ID:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
        limit = self.breaks.pop(0) if self.breaks else None
        rest = self.results[request.after_cursor :]
        send = rest if limit is None else rest[:limit]
        for start in range(0, len(send), 2):
            yield pb.StreamResultsResponse(results=send[start : start + 2])
        if limit is not None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the coordinator is shutting down")

    def SubmitJob(self, request_iterator, context):
        header = None
        items = []
        for request in request_iterator:
            if request.HasField("header"):
                header = request.header
                continue
            self.batch_sizes.append(len(request.items.items))
            items.extend(request.items.items)
            self.on_batch(len(items))
        if self.submit_error is not None:
            context.abort(self.submit_error, "refused")
        # grpc's server ends the request iteration quietly when the client
        # cancels, and learns of the cancellation a moment later: a real
        # server (tonic) sees a reset stream, an error, at once.
        time.sleep(0.05)
        if not context.is_active():
            return pb.SubmitJobResponse()
        with self.lock:
            self.headers.append(header)
            self.items = items
            self.submits_completed += 1
        job = pb.Job(job_id=JOB_ID, state=pb.JOB_STATE_RUNNING, model=header.model or "m", total=len(items))
        job.metadata.update(header.metadata)
        return pb.SubmitJobResponse(job=job)

    def GetJob(self, request, context):
        self.get_jobs += 1
        if request.job_id != JOB_ID:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such job")
        return pb.Job(job_id=JOB_ID, state=pb.JOB_STATE_COMPLETED, model="m", finished=True, metadata={"k": "v"})

    def CancelJob(self, request, context):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the job is finished")

    def ListModels(self, request, context):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")


@pytest.fixture
def fake() -> Iterator[FakeScoring]:
    service = FakeScoring()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.http2.bdp_probe", 0)])
    pb_grpc.add_ScoringServicer_to_server(service, server)
    service.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service
    server.stop(grace=None)


def connect(fake: FakeScoring, **kwargs) -> Client:
    return Client(f"http://127.0.0.1:{fake.port}", **kwargs)


# -- results ---------------------------------------------------------------


def test_results_resume_after_broken_streams(fake: FakeScoring) -> None:
    fake.results = [result(k) for k in range(10)]
    fake.breaks = [3, 0, 4]  # three broken streams, one with nothing sent
    with connect(fake) as client:
        got = list(client.results(JOB_ID))
    assert [r.cursor for r in got] == list(range(1, 11))
    assert [r.id for r in got] == [f"item-{k}" for k in range(10)]
    # Each resumption starts after the last cursor received.
    assert fake.stream_requests == [0, 3, 3, 7]
    first = got[0]
    assert first.ok and first.label == "Real" and first.scores == {"Real": 0.75, "Fake": 0.25}
    assert first.fake_score == 0.25 and first.model == dfscan_client.ModelIdentity("m", "00")


def test_results_after_cursor(fake: FakeScoring) -> None:
    fake.results = [result(k) for k in range(5)]
    with connect(fake) as client:
        assert [r.cursor for r in client.results(JOB_ID, after_cursor=2)] == [3, 4, 5]
        assert list(client.results(JOB_ID, after_cursor=5)) == []
    assert fake.stream_requests == [2, 5]


def test_results_give_up_without_progress(fake: FakeScoring) -> None:
    fake.breaks = [0] * 1000
    with connect(fake, resume_for_s=0.5) as client:
        start = time.monotonic()
        with pytest.raises(dfscan_client.Unavailable) as raised:
            list(client.results(JOB_ID))
    assert 0.5 <= time.monotonic() - start < 10
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(raised.value.__cause__, grpc.RpcError)
    assert len(fake.stream_requests) > 1


def test_results_refuse_a_gap_in_cursors(fake: FakeScoring) -> None:
    fake.results = [result(0), result(2)]
    with connect(fake) as client, pytest.raises(dfscan_client.ProtocolError, match="expected result cursor 2, got 3"):
        list(client.results(JOB_ID))


def test_results_unknown_job(fake: FakeScoring) -> None:
    with connect(fake) as client, pytest.raises(dfscan_client.JobNotFound):
        next(client.results("cd" * 16))


def test_error_results() -> None:
    message = pb.ItemResult(id="x", index=3, cursor=4, error="unsupported image format")
    r = dfscan_client.ItemResult.from_pb(message, job_model="m")
    assert not r.ok
    assert (r.label, r.fake_score, r.scores) == (None, None, {})
    # No weights saw the item: the job's model, no sha256.
    assert r.model == dfscan_client.ModelIdentity("m", "")
    assert r.to_json() == (
        '{"id":"x","path":"x","media":null,"label":null,"scores":null,"fake_score":null,'
        '"model":{"name":"m","sha256":""},"outcome":"error","error":"unsupported image format"}'
    )
    assert assert_record(r.to_json()) == r.to_dict()


def test_records_as_dfscan_writes_them() -> None:
    """Float32 scores as their shortest decimal, metadata sorted, strings
    escaped as serde_json escapes them; the line dfscan submit writes."""
    message = pb.ItemResult(
        id="dir/é.png",
        label="Fake",
        scores=[pb.LabelScore(label="Real", score=0.1), pb.LabelScore(label="Fake", score=0.9)],
        fake_score=0.9,
        model=pb.ModelIdentity(name="m", sha256="ab" * 32),
        verdict="flag",
        metadata={"z": "last", "a": 'quote " and \\ \x01\n'},
    )
    r = dfscan_client.ItemResult.from_pb(message)
    # The float32 0.1 is 0.10000000149011612 as a Python float.
    assert message.scores[0].score != 0.1 and r.scores == {"Real": 0.1, "Fake": 0.9} and r.fake_score == 0.9
    assert r.to_json() == (
        '{"id":"dir/é.png","path":"dir/é.png","media":"image","label":"Fake","scores":{"Real":0.1,"Fake":0.9},"fake_score":0.9,'
        f'"model":{{"name":"m","sha256":"{"ab" * 32}"}},"outcome":"scored","error":null,"verdict":"flag",'
        '"metadata":{"a":"quote \\" and \\\\ \\u0001\\n","z":"last"}}'
    )
    assert json.loads(r.to_json()) == r.to_dict()
    assert list(assert_record(r.to_json())) == list(r.to_dict())


DETECTOR = pb.ModelIdentity(name="scrfd", sha256="cd" * 32)


def face(fake: float, x: float = 10.5) -> pb.FaceResult:
    return pb.FaceResult(
        box=[x, 20.1, 50.0, 70.25],
        detector_score=0.9,
        landmarks=[20.0, 30.0, 40.0, 30.5, 30.0, 45.0, 22.0, 55.0, 38.0, 55.1],
        crop=[-3, 0, 70, 73],
        label="Fake" if fake > 0.5 else "Real",
        scores=[pb.LabelScore(label="Real", score=1 - fake), pb.LabelScore(label="Fake", score=fake)],
        fake_score=fake,
    )


def test_face_records_as_dfscan_writes_them() -> None:
    """Faces looked for and found: the detector, each face (float32s as
    dfscan writes them, landmarks as points, the crop as integers), the
    outcome, in the schema's key order."""
    message = pb.ItemResult(
        id="a.png",
        label="Fake",
        scores=[pb.LabelScore(label="Real", score=0.3), pb.LabelScore(label="Fake", score=0.7)],
        fake_score=0.7,
        model=pb.ModelIdentity(name="m", sha256="ab" * 32),
        faces=[face(0.7), face(0.1, x=1.0)],
        outcome="scored",
        face_detector=DETECTOR,
        verdict="review",
    )
    r = dfscan_client.ItemResult.from_pb(message)
    assert r.ok and r.outcome == "scored" and r.face_detector == dfscan_client.ModelIdentity("scrfd", "cd" * 32)
    first = r.faces[0]
    assert isinstance(first, dfscan_client.FaceResult)
    assert first.box == [10.5, 20.1, 50.0, 70.25] and first.detector_score == 0.9
    assert first.landmarks == [[20.0, 30.0], [40.0, 30.5], [30.0, 45.0], [22.0, 55.0], [38.0, 55.1]]
    assert first.crop == [-3, 0, 70, 73] and first.scores == {"Real": 0.3, "Fake": 0.7}
    face_json = (
        '{"box":[%s,20.1,50.0,70.25],"detector_score":0.9,'
        '"landmarks":[[20.0,30.0],[40.0,30.5],[30.0,45.0],[22.0,55.0],[38.0,55.1]],"crop":[-3,0,70,73],'
        '"label":"%s","scores":{"Real":%s,"Fake":%s},"fake_score":%s}'
    )
    assert r.to_json() == (
        '{"id":"a.png","path":"a.png","media":"image","label":"Fake","scores":{"Real":0.3,"Fake":0.7},"fake_score":0.7,'
        f'"model":{{"name":"m","sha256":"{"ab" * 32}"}},"face_detector":{{"name":"scrfd","sha256":"{"cd" * 32}"}},'
        '"faces":['
        + face_json % ("10.5", "Fake", "0.3", "0.7", "0.7")
        + ","
        + face_json % ("1.0", "Real", "0.9", "0.1", "0.1")
        + '],"outcome":"scored","error":null,"verdict":"review"}'
    )
    assert assert_record(r.to_json()) == r.to_dict()


def test_whole_image_records() -> None:
    """Faces looked for, none found, mode "auto": the whole image's score,
    an empty list of faces."""
    message = pb.ItemResult(
        id="b.png",
        label="Real",
        scores=[pb.LabelScore(label="Real", score=0.75), pb.LabelScore(label="Fake", score=0.25)],
        fake_score=0.25,
        model=pb.ModelIdentity(name="m", sha256="ab" * 32),
        outcome="whole_image",
        face_detector=DETECTOR,
    )
    r = dfscan_client.ItemResult.from_pb(message)
    assert r.ok and r.faces == [] and r.fake_score == 0.25
    assert r.to_json() == (
        '{"id":"b.png","path":"b.png","media":"image","label":"Real","scores":{"Real":0.75,"Fake":0.25},"fake_score":0.25,'
        f'"model":{{"name":"m","sha256":"{"ab" * 32}"}},"face_detector":{{"name":"scrfd","sha256":"{"cd" * 32}"}},'
        '"faces":[],"outcome":"whole_image","error":null}'
    )
    assert assert_record(r.to_json()) == r.to_dict()


def test_no_face_records() -> None:
    """None found, mode "require": no score, and no error either."""
    message = pb.ItemResult(
        id="c.png",
        model=pb.ModelIdentity(name="m", sha256="ab" * 32),
        outcome="no_face",
        face_detector=DETECTOR,
        metadata={"k": "v"},
    )
    r = dfscan_client.ItemResult.from_pb(message)
    assert not r.ok and r.error is None
    assert (r.label, r.scores, r.fake_score, r.faces) == (None, {}, None, [])
    assert r.to_json() == (
        '{"id":"c.png","path":"c.png","media":"image","label":null,"scores":null,"fake_score":null,'
        f'"model":{{"name":"m","sha256":"{"ab" * 32}"}},"face_detector":{{"name":"scrfd","sha256":"{"cd" * 32}"}},'
        '"faces":[],"outcome":"no_face","error":null,"metadata":{"k":"v"}}'
    )
    assert assert_record(r.to_json()) == r.to_dict()


def test_error_records_with_faces_looked_for() -> None:
    message = pb.ItemResult(id="d.png", error="truncated image", outcome="error", face_detector=DETECTOR)
    r = dfscan_client.ItemResult.from_pb(message, job_model="m")
    assert not r.ok and r.outcome == "error"
    assert r.to_json() == (
        '{"id":"d.png","path":"d.png","media":null,"label":null,"scores":null,"fake_score":null,"model":{"name":"m","sha256":""},'
        f'"face_detector":{{"name":"scrfd","sha256":"{"cd" * 32}"}},'
        '"faces":[],"outcome":"error","error":"truncated image"}'
    )
    assert assert_record(r.to_json()) == r.to_dict()


def test_records_schema_refuses_inconsistent_outcomes() -> None:
    """The schema ties the outcome to what comes with it."""
    no_face = json.loads(
        dfscan_client.ItemResult.from_pb(pb.ItemResult(id="e", outcome="no_face", face_detector=DETECTOR)).to_json()
    )
    scored = json.loads(dfscan_client.ItemResult.from_pb(result(0)).to_json())
    scored["model"] = no_face["model"] = {"name": "m", "sha256": "ab" * 32}
    detector = {"face_detector": no_face["face_detector"]}
    assert_record(json.dumps(no_face))
    assert_record(json.dumps(scored))
    refused = [
        {**no_face, "outcome": "scored"},  # no score
        {**no_face, "outcome": "whole_image"},
        {**no_face, "outcome": "error"},  # no error
        {**no_face, "outcome": "sometimes"},
        {**no_face, "verdict": "pass"},
        {k: v for k, v in no_face.items() if k != "faces"},
        {k: v for k, v in no_face.items() if k != "face_detector"},
        {k: v for k, v in scored.items() if k != "outcome"},
        {**scored, **detector, "faces": []},  # "scored" on faces: some faces
        {**scored, "outcome": "whole_image"},  # no detector
    ]
    for record in refused:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(SCHEMA).validate(record)


def test_results_without_an_outcome() -> None:
    """A coordinator older than faces sends no outcome: "error" with an
    error, "scored" otherwise; the outcome of a result built by hand alike."""
    assert dfscan_client.ItemResult.from_pb(result(0)).outcome == "scored"
    assert dfscan_client.ItemResult.from_pb(pb.ItemResult(id="x", error="bad")).outcome == "error"
    made = dfscan_client.ItemResult("x", 0, 1, None, {}, None, dfscan_client.ModelIdentity("m", ""), "bad")
    assert made.outcome == "error" and not made.ok


def f32_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def test_float32_text_is_serde_jsons() -> None:
    # What Rust's serde_json (Ryu) writes for these float32s.
    cases = [
        (0.1, "0.1"),
        (0.10000000149011612, "0.1"),
        (1.0, "1.0"),
        (0.25, "0.25"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (0.000032, "0.000032"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123456.0, "123456.0"),
        (1e13, "1e13"),
        (0.3333333333, "0.33333334"),
        (f32_bits(1), "1e-45"),
        (f32_bits(0x7F7FFFFF), "3.4028235e38"),
        # 2^-96: the float32s below a power of two are closer together
        # than those above, and the shortest decimal is not the rounded one.
        (f32_bits(260046848), "1.2621775e-29"),
    ]
    for value, text in cases:
        assert f32_text(value) == text, value
        assert struct.pack("<f", float(text)) == struct.pack("<f", value), value


def test_error_records_name_the_jobs_model(fake: FakeScoring) -> None:
    fake.results = [result(0), pb.ItemResult(id="bad", index=1, cursor=2, error="unsupported image format")]
    fake.results += [pb.ItemResult(id="bad2", index=2, cursor=3, error="job cancelled")]
    with connect(fake) as client:
        got = list(client.results(JOB_ID))
        # Asked once, at the first result without a model identity.
        assert fake.get_jobs == 1
        asked = dfscan_client.ModelIdentity("m", "")
        assert [r.model for r in got] == [dfscan_client.ModelIdentity("m", "00"), asked, asked]
        # Not asked where every result has its model.
        fake.results = fake.results[:1]
        assert len(list(client.results(JOB_ID))) == 1 and fake.get_jobs == 1


def test_undeclared_fields_come_from_the_message() -> None:
    job = dfscan_client.Job.from_pb(pb.Job(job_id=JOB_ID, state=pb.JOB_STATE_CANCELLED))
    assert job.state == "cancelled"
    assert job.ByteSize() == job.raw.ByteSize()
    with pytest.raises(AttributeError):
        job.no_such_field  # noqa: B018


# -- submit ----------------------------------------------------------------


def test_submit_batches_by_items_and_bytes(fake: FakeScoring) -> None:
    seen = []
    with connect(fake, upload_batch_items=4, upload_batch_bytes=2500) as client:
        job = client.submit(
            [(f"a{i}", b"x" * 10) for i in range(10)],
            model="m2",
            metadata={"k": "v"},
            idempotency_key="key",
            task_size=7,
            progress=lambda items, size: seen.append(items),
        )
        assert job.job_id == JOB_ID and job.total == 10 and job.metadata == {"k": "v"}
        assert fake.batch_sizes == [4, 4, 2]
        assert seen == [4, 8, 10]
        header = fake.headers[0]
        assert (header.model, header.idempotency_key, dict(header.metadata), header.task_size) == (
            "m2",
            "key",
            {"k": "v"},
            7,
        )
        # 1000-byte items: a message is sent once it reaches 2500 bytes.
        fake.batch_sizes = []
        client.submit([(f"b{i}", b"y" * 1000) for i in range(7)])
        assert fake.batch_sizes == [3, 3, 1]
    assert [i.id for i in fake.items] == [f"b{i}" for i in range(7)]


def test_submit_face_options(fake: FakeScoring) -> None:
    """``faces`` becomes JobHeader.faces with only the fields given: a
    mode, a mapping, FaceOptions or the message itself."""
    FaceOptions = dfscan_client.FaceOptions
    with connect(fake) as client:
        client.submit([("a", b"x")])
        client.submit([("a", b"x")], faces="require")
        client.submit([("a", b"x")], faces={"mode": "auto", "max_faces": 4, "align": False})
        client.submit(
            [("a", b"x")],
            faces=FaceOptions(scale=1.3, threshold=0.5, min_size=0.0, working_size=640, aggregation="mean"),
        )
        client.submit([("a", b"x")], faces=pb.FaceOptions(mode="off"))
        with pytest.raises(TypeError):
            client.submit([("a", b"x")], faces={"mode": "auto", "maximum_faces": 4})
        with pytest.raises(TypeError):
            client.submit([("a", b"x")], faces=3)
    unset, required, mapped, options, message = fake.headers
    assert not unset.HasField("faces")
    assert required.faces == pb.FaceOptions(mode="require")
    assert mapped.faces == pb.FaceOptions(mode="auto", max_faces=4, align=False)
    # Set to their zero values, yet present: not the workers' configuration.
    assert mapped.faces.HasField("align") and not mapped.faces.HasField("scale")
    assert options.faces.mode == "" and options.faces.aggregation == "mean"
    assert options.faces.HasField("min_size") and options.faces.min_size == 0.0
    assert (f32_text(options.faces.scale), f32_text(options.faces.threshold), options.faces.working_size) == (
        "1.3",
        "0.5",
        640,
    )
    assert not options.faces.HasField("align") and not options.faces.HasField("max_faces")
    assert message.faces == pb.FaceOptions(mode="off")


def test_submit_reads_lazily(fake: FakeScoring) -> None:
    """grpc pulls the source as messages go out, not the whole job ahead:
    what is read but not yet received is bounded by the HTTP/2 flow-control
    window (kept at its initial size here, without BDP probing)."""
    pulled = 0
    ahead = []

    def source():
        nonlocal pulled
        for i in range(5000):
            pulled += 1
            yield (f"i{i}", bytes(1000))

    fake.on_batch = lambda received: ahead.append(pulled - received)
    with connect(fake, upload_batch_items=10, options=[("grpc.http2.bdp_probe", 0)]) as client:
        assert client.submit(source()).total == 5000
    assert len(ahead) == 500
    assert max(ahead) <= 1000, max(ahead)


def test_submit_pass_through_items(fake: FakeScoring, tmp_path: Path) -> None:
    (tmp_path / "f.png").write_bytes(b"png")
    items = [dfscan_client.item("u", uri="file:///data/u.jpg"), dfscan_client.item("d", b"abc"), tmp_path / "f.png"]
    with connect(fake) as client:
        client.submit(items)
    assert [(i.id, i.WhichOneof("source")) for i in fake.items] == [
        ("u", "uri"),
        ("d", "data"),
        (str(tmp_path / "f.png"), "data"),
    ]
    with pytest.raises(ValueError):
        dfscan_client.item("x")


def test_submit_unreadable_file_abandons_the_upload(fake: FakeScoring, tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.png" for i in range(600)]
    for p in paths[:-1]:
        p.write_bytes(b"png")
    with connect(fake, upload_batch_items=10) as client:
        with pytest.raises(FileNotFoundError):
            client.submit(paths)
        time.sleep(0.2)
        assert fake.submits_completed == 0
        # Skipped and reported instead, when asked.
        skipped = []
        job = client.submit(paths, on_unreadable=lambda id, e: skipped.append(id))
        assert job.total == 599 and skipped == [str(paths[-1])]


def test_submit_oversized_file(fake: FakeScoring, tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(bytes(200 << 10))
    with connect(fake, max_message_bytes=128 << 10) as client, pytest.raises(OSError, match="larger than"):
        client.submit(tmp_path)


def test_submit_refused(fake: FakeScoring) -> None:
    fake.submit_error = grpc.StatusCode.RESOURCE_EXHAUSTED
    with connect(fake) as client, pytest.raises(dfscan_client.QueueFull):
        client.submit([("a", b"x")])


def test_submit_nothing(fake: FakeScoring, tmp_path: Path) -> None:
    with connect(fake) as client, pytest.raises(ValueError, match="nothing to submit"):
        client.submit(tmp_path)
    with connect(fake) as client, pytest.raises(TypeError):
        client.submit(b"bytes")


# -- other calls -----------------------------------------------------------


def test_status_codes_map_to_exceptions(fake: FakeScoring) -> None:
    with connect(fake) as client:
        assert client.get_job(JOB_ID).metadata == {"k": "v"}
        with pytest.raises(dfscan_client.JobNotFound):
            client.get_job("cd" * 16)
        with pytest.raises(dfscan_client.FailedPrecondition):
            client.cancel_job(JOB_ID)
        with pytest.raises(dfscan_client.QueueFull):
            client.models()
        with pytest.raises(ValueError, match="unknown job state"):
            client.list_jobs(state="sleeping")
    with Client("127.0.0.1:1", timeout=5) as down, pytest.raises(dfscan_client.Unavailable):
        down.get_job(JOB_ID)


def test_addresses() -> None:
    assert _target("http://h:1") == ("h:1", False)
    assert _target("https://h:1/") == ("h:1", True)
    assert _target("h:1") == ("h:1", False)
    assert _target("unix:/tmp/s") == ("unix:/tmp/s", False)


# -- sources ---------------------------------------------------------------


def test_folders_are_searched_like_dfscan(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "sub/c.webp", "sub/notes.txt", ".hidden/d.png", "sub/.e.png", "z.tiff"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    expected = ["a.jpg", "b.PNG", "sub/c.webp", "z.tiff"]
    assert [p.relative_to(tmp_path).as_posix() for p in images_under(tmp_path)] == expected
    items = list(iter_items(tmp_path, 1 << 20))
    assert [i.id for i in items] == [f"{tmp_path}/{e}" for e in expected] and items[0].data == b"a.jpg"
    # Folders in a list of paths too.
    ids = [i.id for i in iter_items([tmp_path / "sub", str(tmp_path / "sub/notes.txt")], 1 << 20)]
    assert ids == [str(tmp_path / "sub/c.webp"), str(tmp_path / "sub/notes.txt")]


def test_ids_are_paths_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As dfscan submit names them: the folder as given (not normalised)
    joined with the path under it."""
    (tmp_path / "photos/sub").mkdir(parents=True)
    for name in ["photos/a.png", "photos/sub/b.png"]:
        (tmp_path / name).write_bytes(b"png")
    monkeypatch.chdir(tmp_path)
    ids = lambda source: [i.id for i in iter_items(source, 1 << 20)]  # noqa: E731
    assert ids("photos") == ids("photos/") == ["photos/a.png", "photos/sub/b.png"]
    assert ids("./photos") == ["./photos/a.png", "./photos/sub/b.png"]
    assert ids(["./photos/sub", "photos//a.png"]) == ["./photos/sub/b.png", "photos//a.png"]


def test_batches() -> None:
    items = [pb.Item(id=str(i), data=b"x" * 100) for i in range(9)]
    assert [len(b) for b in batches(items, 4, 1 << 20)] == [4, 4, 1]
    assert [len(b) for b in batches(items, 100, 250)] == [3, 3, 3]
    assert list(batches([], 4, 100)) == []


def test_video_records() -> None:
    """A video's record: its timeline and tracks, times as float64s."""
    face = pb.FaceResult(box=[1.5, 2.0, 30.0, 41.0], detector_score=0.875, landmarks=[1.0, 2.0] * 5,
                         crop=[-4, -3, 35, 36], label="Fake",
                         scores=[pb.LabelScore(label="Real", score=0.25), pb.LabelScore(label="Fake", score=0.75)],
                         fake_score=0.75)
    frame = pb.FrameResult(t=0.28, label="Fake", scores=face.scores, fake_score=0.75, faces=[face], outcome="scored")
    message = pb.ItemResult(
        id="clip.mp4", label="Fake", scores=face.scores, fake_score=0.75, outcome="scored", media="video",
        duration_s=4.0, frames=[frame], tracks=[pb.TrackResult(id=0, frames=1, start_t=0.28, end_t=0.28, fake_score=0.75)],
        model=pb.ModelIdentity(name="m", sha256="ab" * 32), face_detector=DETECTOR,
    )
    r = dfscan_client.ItemResult.from_pb(message)
    line = r.to_json()
    assert line == (
        '{"id":"clip.mp4","path":"clip.mp4","media":"video","duration_s":4.0,"label":"Fake",'
        '"scores":{"Real":0.25,"Fake":0.75},"fake_score":0.75,'
        f'"model":{{"name":"m","sha256":"{"ab" * 32}"}},"face_detector":{{"name":"scrfd","sha256":"{"cd" * 32}"}},'
        '"frames":[{"t":0.28,"label":"Fake","scores":{"Real":0.25,"Fake":0.75},"fake_score":0.75,'
        '"faces":[{"box":[1.5,2.0,30.0,41.0],"detector_score":0.875,"landmarks":[[1.0,2.0],[1.0,2.0],[1.0,2.0],'
        '[1.0,2.0],[1.0,2.0]],"crop":[-4,-3,35,36],"label":"Fake","scores":{"Real":0.25,"Fake":0.75},'
        '"fake_score":0.75}],"outcome":"scored"}],'
        '"tracks":[{"id":0,"frames":1,"start_t":0.28,"end_t":0.28,"fake_score":0.75}],"outcome":"scored","error":null}'
    )
    assert assert_record(line) == r.to_dict()
    assert dfscan_client.records.f64_text(1e-7) == "1e-7" and dfscan_client.records.f64_text(0.1) == "0.1"
