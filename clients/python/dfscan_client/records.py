"""The client's view of the API's messages: plain dataclasses with Python
types (dicts, ``None`` for absent values, job states as lowercase strings).

Each keeps the message it came from as ``raw``; a field the dataclass does
not declare (one added to the proto after this wrapper was written) is read
from ``raw``, so regenerating the stubs is enough to reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ._proto.dfscan.v1 import scoring_pb2 as pb

_STATE_PREFIX = "JOB_STATE_"


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
    #: Every label's probability, in the model's label order (empty on error).
    scores: Dict[str, float]
    #: Probability of the model's fake label; None when ``error`` is set.
    fake_score: Optional[float]
    model: Optional[ModelIdentity]
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
    def from_pb(cls, message: pb.ItemResult) -> "ItemResult":
        failed = bool(message.error)
        return cls(
            id=message.id,
            index=message.index,
            cursor=message.cursor,
            label=None if failed else message.label,
            scores={s.label: s.score for s in message.scores},
            fake_score=message.fake_score if message.HasField("fake_score") else None,
            model=ModelIdentity.from_pb(message.model) if message.HasField("model") else None,
            error=message.error or None,
            verdict=message.verdict or None,
            metadata=dict(message.metadata),
            raw=message,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The JSON line ``dfscan submit`` writes for this result."""
        return {
            "id": self.id,
            "path": self.id,
            "label": self.label,
            "scores": None if self.error else dict(self.scores),
            "fake_score": self.fake_score,
            "model": {"name": self.model.name, "sha256": self.model.sha256} if self.model else None,
            "error": self.error,
            **({"verdict": self.verdict} if self.verdict else {}),
            **({"metadata": dict(self.metadata)} if self.metadata else {}),
        }


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
