"""The client's view of the API's messages: plain dataclasses with Python
types (dicts, ``None`` for absent values, job states as lowercase strings).

Each keeps the message it came from as ``raw``; a field the dataclass does
not declare (one added to the proto after this wrapper was written) is read
from ``raw``, so regenerating the stubs is enough to reach it.
:class:`FaceOptions` goes the other way: a job's face settings, turned into
the ``JobHeader.faces`` message.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Union

from ._proto.dfscan.v1 import scoring_pb2 as pb

_STATE_PREFIX = "JOB_STATE_"


def _to_f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _reads_back(digits: int, exp10: int, x: float) -> bool:
    """``digits × 10^exp10`` parses to the float32 ``x``."""
    try:
        return _to_f32(float(f"{digits}e{exp10}")) == x
    except OverflowError:  # beyond float32's range
        return False


def f32_text(x: float) -> str:
    """``x`` as a float32, written as ``dfscan`` writes one (Rust's
    serde_json, i.e. Ryu): the shortest decimal that reads back as the same
    float32, the closest to it among equally short ones; ``0.1``, ``1.0``,
    ``0.000032``, ``1e-7``. Python's own repr works on float64, where the
    float32 0.1 is ``0.10000000149011612``."""
    x = _to_f32(x)
    if x == 0:
        return "-0.0" if struct.pack("<f", x)[3] & 0x80 else "0.0"
    sign, x = ("-" if x < 0 else ""), abs(x)
    # The correctly rounded decimal of each length in turn. At a power of
    # two the float32s below are closer together than those above, so the
    # shortest decimal that reads back may be the rounded one's neighbour.
    for precision in range(9):
        mantissa, exponent = f"{x:.{precision}e}".split("e")
        rounded, exp10 = int(mantissa.replace(".", "")), int(exponent) - precision
        found = next((d for d in (rounded, rounded + 1, rounded - 1) if _reads_back(d, exp10, x)), None)
        if found is not None:
            break
    digits = str(found).rstrip("0")
    exp10 += len(str(found)) - len(digits)
    n = len(digits)
    kk = n + exp10  # 10^(kk-1) <= x < 10^kk
    # Ryu's layout for float32: plain notation for 1e-6 <= x < 1e13.
    if n <= kk <= 13:
        text = digits + "0" * (kk - n) + ".0"
    elif 0 < kk <= 13:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif n == 1:
        text = f"{digits}e{kk - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + text


def _f32_value(x: float) -> float:
    """The float whose repr is :func:`f32_text`'s digits: the decimal a
    float32 score is written as, which converts back to the same float32."""
    return float(f32_text(x))


class F64(float):
    """A float64 in a record (a video's times and duration), written as the
    shortest decimal that reads back as the same float64, as serde_json
    writes an f64."""


def f64_text(x: float) -> str:
    """``x`` as serde_json (Ryu) writes an f64: Python's shortest repr, with
    Ryu's exponent form (``1e-7``, not ``1e-07``)."""
    text = repr(float(x))
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    return text


def json_line(record: Dict[str, Any]) -> str:
    """``record`` (an :meth:`ItemResult.to_dict`) as the JSON line ``dfscan``
    writes for it, without the newline: compact, UTF-8 rather than ``\\u``
    escapes, and floats (all float32s: scores, face boxes and landmarks) as
    :func:`f32_text`; ints (face crops) as they are."""

    def encode(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ",".join(f"{encode(k)}:{encode(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ",".join(encode(v) for v in value) + "]"
        if isinstance(value, F64):
            return f64_text(value)
        if isinstance(value, float):
            return f32_text(value)
        # Strings: json escapes the characters serde_json does, alike.
        return json.dumps(value, ensure_ascii=False)

    return encode(record)


def state_name(value: int) -> str:
    """``JOB_STATE_RUNNING`` → ``"running"``; an unknown value as its number."""
    try:
        return pb.JobState.Name(value)[len(_STATE_PREFIX) :].lower()
    except ValueError:
        return str(value)


def state_value(name: str) -> int:
    """``"running"`` → ``JOB_STATE_RUNNING``; raises ValueError for unknown names."""
    try:
        return pb.JobState.Value(_STATE_PREFIX + name.upper())
    except ValueError:
        known = [n[len(_STATE_PREFIX) :].lower() for n in pb.JobState.keys()]
        raise ValueError(f"unknown job state {name!r}; one of {known}") from None


class _FromRaw:
    """Falls back to the wrapped message for attributes not declared."""

    def __getattr__(self, name: str) -> Any:
        raw = self.__dict__.get("raw")
        if name.startswith("_") or raw is None:
            raise AttributeError(name)
        try:
            return getattr(raw, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights produced a score: the model's name and the sha256 of its
    weight files."""

    name: str
    sha256: str

    @classmethod
    def from_pb(cls, message: pb.ModelIdentity) -> "ModelIdentity":
        return cls(name=message.name, sha256=message.sha256)


@dataclass(frozen=True)
class FaceOptions:
    """How a job's images are turned into face crops (``JobHeader.faces``).
    Every field left None takes the workers' configuration (``faces.*``);
    the coordinator refuses values no worker could honour
    (:class:`~dfscan_client.InvalidArgument`)."""

    #: "auto" (score each face; none found: the whole image, outcome
    #: "whole_image"), "require" (none found: outcome "no_face", no score) or
    #: "off" (the whole image, no detector).
    mode: Optional[str] = None
    #: The crop is the square of ``scale`` × the box's longer side, 1 to 4.
    scale: Optional[float] = None
    #: Five-point aligned crops instead of squares.
    align: Optional[bool] = None
    #: Detector score a face must pass, in [0, 1).
    threshold: Optional[float] = None
    #: Faces whose longer side is shorter (pixels) are dropped.
    min_size: Optional[float] = None
    #: At most this many faces per image, the largest; 1 to 64.
    max_faces: Optional[int] = None
    #: The detector sees the image with its longer side at most this many
    #: pixels, 32 to 2048.
    working_size: Optional[int] = None
    #: How the image's score comes from its faces': "max" (the most fake
    #: face) or "mean".
    aggregation: Optional[str] = None

    @classmethod
    def of(cls, value: "FaceOptionsLike") -> "FaceOptions":
        """``value`` as FaceOptions: a mode name (``"require"``), a mapping
        of these fields (unknown names raise TypeError), or FaceOptions."""
        if isinstance(value, FaceOptions):
            return value
        if isinstance(value, str):
            return cls(mode=value)
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"faces: expected a mode name, a mapping or FaceOptions, not {type(value).__name__}")

    def to_pb(self) -> pb.FaceOptions:
        """The message, with only the fields that are set."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        return pb.FaceOptions(**{name: value for name, value in given.items() if value is not None})


#: What ``Client.submit(faces=...)`` takes.
FaceOptionsLike = Union[str, Mapping[str, Any], FaceOptions]


@dataclass
class Job(_FromRaw):
    """A job as the coordinator reports it."""

    job_id: str
    #: "uploading", "running", "completed" or "cancelled".
    state: str
    model: str
    #: Items uploaded (final once the upload is complete).
    total: int
    #: Items with a score.
    completed: int
    #: Items with an error instead.
    failed: int
    created_unix_ms: int
    #: 0 until the job is finished.
    finished_unix_ms: int
    metadata: Dict[str, str]
    idempotency_key: str
    #: Every item has its result.
    finished: bool
    #: Only from submit(): the idempotency key matched this existing job.
    deduplicated: bool = False
    raw: Optional[pb.Job] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, message: pb.Job, deduplicated: bool = False) -> "Job":
        return cls(
            job_id=message.job_id,
            state=state_name(message.state),
            model=message.model,
            total=message.total,
            completed=message.completed,
            failed=message.failed,
            created_unix_ms=message.created_unix_ms,
            finished_unix_ms=message.finished_unix_ms,
            metadata=dict(message.metadata),
            idempotency_key=message.idempotency_key,
            finished=message.finished,
            deduplicated=deduplicated,
            raw=message,
        )


def _f32_values(xs: Iterable[float]) -> List[float]:
    return [_f32_value(x) for x in xs]


@dataclass
class FaceResult(_FromRaw):
    """One face of an image and its score. Coordinates are pixels of the
    EXIF-oriented image; floats are float32s given as the decimal ``dfscan``
    writes (see :attr:`ItemResult.scores`)."""

    #: ``[x0, y0, x1, y1]`` as the detector found it.
    box: List[float]
    detector_score: float
    #: ``[x, y]`` of the left eye, right eye, nose, left and right mouth
    #: corner.
    landmarks: List[List[float]]
    #: ``[left, top, right, bottom]``: exactly the region handed to the
    #: classifier, as PIL's ``Image.crop`` cuts it (zero outside the image);
    #: with alignment, the bounding square of the aligned crop.
    crop: List[int]
    #: The crop's most probable label.
    label: str
    #: Every label's probability for the crop, in the model's label order.
    scores: Dict[str, float]
    #: Probability of the model's fake label for the crop.
    fake_score: float
    raw: Optional[pb.FaceResult] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, message: pb.FaceResult) -> "FaceResult":
        points = _f32_values(message.landmarks)
        return cls(
            box=_f32_values(message.box),
            detector_score=_f32_value(message.detector_score),
            landmarks=[points[i : i + 2] for i in range(0, len(points), 2)],
            crop=list(message.crop),
            label=message.label,
            scores={s.label: _f32_value(s.score) for s in message.scores},
            fake_score=_f32_value(message.fake_score),
            raw=message,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The face's object in the result record, keys in its order."""
        return {
            "box": list(self.box),
            "detector_score": self.detector_score,
            "landmarks": [list(p) for p in self.landmarks],
            "crop": list(self.crop),
            "label": self.label,
            "scores": dict(self.scores),
            "fake_score": self.fake_score,
        }


#: Outcomes that come with a score.
_SCORED_OUTCOMES = ("scored", "whole_image")


def _outcome(outcome: str, error: Optional[str]) -> str:
    """``outcome``, or for a result without one (a coordinator older than
    faces) "error" when ``error`` is set, else "scored"."""
    return outcome or ("error" if error else "scored")


@dataclass
class ItemResult(_FromRaw):
    """One item's result: a score, no face where one was required, or an
    ``error`` saying why it has none."""

    id: str
    #: Position of the item in the upload, from 0.
    index: int
    #: Position of this result in the job's result stream, from 1: pass the
    #: last one seen as ``after_cursor`` to resume.
    cursor: int
    #: The most probable label; None without a score (``ok`` false).
    label: Optional[str]
    #: Every label's probability, in the model's label order (empty without
    #: a score). Scores are float32s, given as the shortest decimal that
    #: reads back as the same float32 (``0.1``, not ``0.10000000149011612``),
    #: the digits ``dfscan`` writes.
    scores: Dict[str, float]
    #: Probability of the model's fake label; None without a score.
    fake_score: Optional[float]
    #: The weights that scored the item; for an error recorded before any
    #: weights saw it, the job's model with an empty sha256.
    model: ModelIdentity
    #: Why the item has no score (unreadable image, "job cancelled", ...);
    #: None on success and for "no_face".
    error: Optional[str]
    #: The job policy's verdict ("flag", "review", ...); None without a
    #: policy or without a score.
    verdict: Optional[str] = None
    #: The item's metadata as submitted.
    metadata: Dict[str, str] = field(default_factory=dict)
    #: "scored" (faces found and scored, or faces off), "whole_image" (no
    #: face found, mode "auto": the whole image was scored), "no_face" (none
    #: found, mode "require": no score) or "error". Empty (a coordinator
    #: older than faces): "error" when ``error`` is set, else "scored".
    outcome: str = ""
    #: The faces scored, largest first; empty when none was found or faces
    #: were not looked for.
    faces: List[FaceResult] = field(default_factory=list)
    #: The detector that looked for faces; None when faces were off.
    face_detector: Optional[ModelIdentity] = None
    raw: Optional[pb.ItemResult] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.outcome = _outcome(self.outcome, self.error)

    @property
    def ok(self) -> bool:
        """True when the item has a score (outcome "scored" or
        "whole_image"); false for "no_face" and errors."""
        return self.outcome in _SCORED_OUTCOMES

    @classmethod
    def from_pb(cls, message: pb.ItemResult, job_model: str = "") -> "ItemResult":
        """``job_model``: the model of the result's job, named by results the
        API gives no model identity (as ``dfscan submit`` does)."""
        outcome = _outcome(message.outcome, message.error)
        scored = outcome in _SCORED_OUTCOMES
        return cls(
            id=message.id,
            index=message.index,
            cursor=message.cursor,
            label=message.label if scored else None,
            scores={s.label: _f32_value(s.score) for s in message.scores} if scored else {},
            fake_score=_f32_value(message.fake_score) if scored and message.HasField("fake_score") else None,
            model=ModelIdentity.from_pb(message.model) if message.HasField("model") else ModelIdentity(job_model, ""),
            error=message.error or None,
            verdict=message.verdict or None,
            metadata=dict(sorted(message.metadata.items())),
            outcome=outcome,
            faces=[FaceResult.from_pb(f) for f in message.faces],
            face_detector=ModelIdentity.from_pb(message.face_detector) if message.HasField("face_detector") else None,
            raw=message,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The result record (docs/result-record.schema.json) ``dfscan
        submit`` writes for this result, keys in its order: ``face_detector``
        and ``faces`` only where faces were looked for."""
        video = self.raw is not None and self.raw.media == "video"
        looked_for_faces: Dict[str, Any] = {}
        if self.face_detector is not None:
            looked_for_faces = {
                "face_detector": {"name": self.face_detector.name, "sha256": self.face_detector.sha256},
            }
            if not video:
                looked_for_faces["faces"] = [f.to_dict() for f in self.faces]
        timeline: Dict[str, Any] = {}
        if video:
            timeline = {"frames": self._frames(), "tracks": self._tracks()}
        return {
            "id": self.id,
            "path": self.id,
            # What the worker said the item was; a result from before
            # videos is an image, an error's input may be anything.
            "media": (self.raw.media if self.raw is not None and self.raw.media else None)
            or (None if self.outcome == "error" else "image"),
            **({"duration_s": F64(self.raw.duration_s)} if video else {}),
            "label": self.label,
            "scores": dict(self.scores) if self.ok else None,
            "fake_score": self.fake_score,
            "model": {"name": self.model.name, "sha256": self.model.sha256},
            **looked_for_faces,
            **timeline,
            "outcome": self.outcome,
            **({"partial": self.raw.partial} if video and self.raw.partial else {}),
            "error": self.error,
            **({"verdict": self.verdict} if self.verdict else {}),
            **({"metadata": dict(self.metadata)} if self.metadata else {}),
        }

    def _frames(self) -> List[Dict[str, Any]]:
        """A video's sampled frames as the record writes them."""
        frames = []
        for f in self.raw.frames:
            frame: Dict[str, Any] = {"t": F64(f.t)}
            if f.HasField("fake_score"):
                frame.update(label=f.label, scores={s.label: _f32_value(s.score) for s in f.scores},
                             fake_score=_f32_value(f.fake_score))
            if self.face_detector is not None:
                frame["faces"] = [FaceResult.from_pb(face).to_dict() for face in f.faces]
            frame["outcome"] = f.outcome
            frames.append(frame)
        return frames

    def _tracks(self) -> List[Dict[str, Any]]:
        """A video's face tracks as the record writes them."""
        return [
            {"id": t.id, "frames": t.frames, "start_t": F64(t.start_t), "end_t": F64(t.end_t),
             "fake_score": _f32_value(t.fake_score)}
            for t in self.raw.tracks
        ]

    def to_json(self) -> str:
        """The JSON line ``dfscan submit`` writes for this result, byte for
        byte (without the newline)."""
        return json_line(self.to_dict())


@dataclass
class Model(_FromRaw):
    """A model jobs can name: configured on the coordinator or served by a
    live worker."""

    name: str
    #: Live workers serving it.
    workers: int
    #: Weights the live workers loaded (several during a rollout).
    identities: List[ModelIdentity]
    #: Items waiting or in progress for this model.
    queued_items: int
    raw: Optional[pb.Model] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, message: pb.Model) -> "Model":
        return cls(
            name=message.name,
            workers=message.workers,
            identities=[ModelIdentity.from_pb(i) for i in message.identities],
            queued_items=message.queued_items,
            raw=message,
        )


@dataclass
class Worker(_FromRaw):
    """A live worker and what it is doing."""

    worker_id: str
    model: str
    identity: Optional[ModelIdentity]
    host: str
    pid: int
    device: str
    dtype: str
    max_batch: int
    started_unix_ms: int
    heartbeat_unix_ms: int
    items_scored: int
    batches: int
    #: Stopping: no new tasks, finishing the ones in hand.
    draining: bool
    raw: Optional[pb.Worker] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_pb(cls, message: pb.Worker) -> "Worker":
        return cls(
            worker_id=message.worker_id,
            model=message.model,
            identity=ModelIdentity.from_pb(message.identity) if message.HasField("identity") else None,
            host=message.host,
            pid=message.pid,
            device=message.device,
            dtype=message.dtype,
            max_batch=message.max_batch,
            started_unix_ms=message.started_unix_ms,
            heartbeat_unix_ms=message.heartbeat_unix_ms,
            items_scored=message.items_scored,
            batches=message.batches,
            draining=message.draining,
            raw=message,
        )
