"""The client's view of the API's messages: plain dataclasses with Python
types (dicts, ``None`` for absent values, job states as lowercase strings).

Each keeps the message it came from as ``raw``; a field the dataclass does
not declare (one added to the proto after this wrapper was written) is read
from ``raw``, so regenerating the stubs is enough to reach it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

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


def json_line(record: Dict[str, Any]) -> str:
    """``record`` (an :meth:`ItemResult.to_dict`) as the JSON line ``dfscan``
    writes for it, without the newline: compact, UTF-8 rather than ``\\u``
    escapes, and floats (all float32 scores) as :func:`f32_text`."""

    def encode(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ",".join(f"{encode(k)}:{encode(v)}" for k, v in value.items()) + "}"
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


@dataclass
class ItemResult(_FromRaw):
    """One item's result: a score, or an ``error`` saying why it has none."""

    id: str
    #: Position of the item in the upload, from 0.
    index: int
    #: Position of this result in the job's result stream, from 1: pass the
    #: last one seen as ``after_cursor`` to resume.
    cursor: int
    #: The most probable label; None when ``error`` is set.
    label: Optional[str]
    #: Every label's probability, in the model's label order (empty on
    #: error). Scores are float32s, given as the shortest decimal that
    #: reads back as the same float32 (``0.1``, not ``0.10000000149011612``),
    #: the digits ``dfscan`` writes.
    scores: Dict[str, float]
    #: Probability of the model's fake label; None when ``error`` is set.
    fake_score: Optional[float]
    #: The weights that scored the item; for an error recorded before any
    #: weights saw it, the job's model with an empty sha256.
    model: ModelIdentity
    #: Why the item has no score (unreadable image, "job cancelled", ...);
    #: None on success.
    error: Optional[str]
    #: The job policy's verdict ("flag", "review", ...); None without a
    #: policy or on error.
    verdict: Optional[str] = None
    #: The item's metadata as submitted.
    metadata: Dict[str, str] = field(default_factory=dict)
    raw: Optional[pb.ItemResult] = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the item was scored."""
        return self.error is None

    @classmethod
    def from_pb(cls, message: pb.ItemResult, job_model: str = "") -> "ItemResult":
        """``job_model``: the model of the result's job, named by results the
        API gives no model identity (as ``dfscan submit`` does)."""
        failed = bool(message.error)
        return cls(
            id=message.id,
            index=message.index,
            cursor=message.cursor,
            label=None if failed else message.label,
            scores={s.label: _f32_value(s.score) for s in message.scores},
            fake_score=_f32_value(message.fake_score) if message.HasField("fake_score") else None,
            model=ModelIdentity.from_pb(message.model) if message.HasField("model") else ModelIdentity(job_model, ""),
            error=message.error or None,
            verdict=message.verdict or None,
            metadata=dict(sorted(message.metadata.items())),
            raw=message,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The result record (docs/result-record.schema.json) ``dfscan
        submit`` writes for this result, keys in its order."""
        return {
            "id": self.id,
            "path": self.id,
            "label": self.label,
            "scores": None if self.error else dict(self.scores),
            "fake_score": self.fake_score,
            "model": {"name": self.model.name, "sha256": self.model.sha256},
            "error": self.error,
            **({"verdict": self.verdict} if self.verdict else {}),
            **({"metadata": dict(self.metadata)} if self.metadata else {}),
        }

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
