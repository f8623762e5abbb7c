from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_UPLOADING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_COMPLETED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_UPLOADING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_CANCELLED: JobState

class SubmitJobRequest(_message.Message):
    __slots__ = ("header", "items")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    header: JobHeader
    items: ItemBatch
    def __init__(self, header: _Optional[_Union[JobHeader, _Mapping]] = ..., items: _Optional[_Union[ItemBatch, _Mapping]] = ...) -> None: ...

class JobHeader(_message.Message):
    __slots__ = ("model", "idempotency_key", "metadata", "task_size", "policy", "callback", "faces")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TASK_SIZE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    model: str
    idempotency_key: str
    metadata: _containers.ScalarMap[str, str]
    task_size: int
    policy: VerdictPolicy
    callback: Callback
    faces: FaceOptions
    def __init__(self, model: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., task_size: _Optional[int] = ..., policy: _Optional[_Union[VerdictPolicy, _Mapping]] = ..., callback: _Optional[_Union[Callback, _Mapping]] = ..., faces: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class FaceOptions(_message.Message):
    __slots__ = ("mode", "scale", "align", "threshold", "min_size", "max_faces", "working_size", "aggregation")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    ALIGN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    WORKING_SIZE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    mode: str
    scale: float
    align: bool
    threshold: float
    min_size: float
    max_faces: int
    working_size: int
    aggregation: str
    def __init__(self, mode: _Optional[str] = ..., scale: _Optional[float] = ..., align: _Optional[bool] = ..., threshold: _Optional[float] = ..., min_size: _Optional[float] = ..., max_faces: _Optional[int] = ..., working_size: _Optional[int] = ..., aggregation: _Optional[str] = ...) -> None: ...

class VerdictPolicy(_message.Message):
    __slots__ = ("thresholds", "otherwise")
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    OTHERWISE_FIELD_NUMBER: _ClassVar[int]
    thresholds: _containers.RepeatedCompositeFieldContainer[VerdictThreshold]
    otherwise: str
    def __init__(self, thresholds: _Optional[_Iterable[_Union[VerdictThreshold, _Mapping]]] = ..., otherwise: _Optional[str] = ...) -> None: ...

class VerdictThreshold(_message.Message):
    __slots__ = ("verdict", "min_fake_score")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    MIN_FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    verdict: str
    min_fake_score: float
    def __init__(self, verdict: _Optional[str] = ..., min_fake_score: _Optional[float] = ...) -> None: ...

class Callback(_message.Message):
    __slots__ = ("url", "item_verdicts")
    URL_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    url: str
    item_verdicts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., item_verdicts: _Optional[_Iterable[str]] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "data", "uri", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    data: bytes
    uri: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., data: _Optional[bytes] = ..., uri: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ItemBatch(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "deduplicated")
    JOB_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    deduplicated: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., deduplicated: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "state", "model", "total", "completed", "failed", "created_unix_ms", "finished_unix_ms", "metadata", "idempotency_key", "finished", "policy", "callback", "verdicts", "faces")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class VerdictsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    model: str
    total: int
    completed: int
    failed: int
    created_unix_ms: int
    finished_unix_ms: int
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    finished: bool
    policy: VerdictPolicy
    callback: Callback
    verdicts: _containers.ScalarMap[str, int]
    faces: FaceOptions
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., model: _Optional[str] = ..., total: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., finished: _Optional[bool] = ..., policy: _Optional[_Union[VerdictPolicy, _Mapping]] = ..., callback: _Optional[_Union[Callback, _Mapping]] = ..., verdicts: _Optional[_Mapping[str, int]] = ..., faces: _Optional[_Union[FaceOptions, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "state")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    state: JobState
    def __init__(self, limit: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class StreamResultsRequest(_message.Message):
    __slots__ = ("job_id", "after_cursor")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_cursor: int
    def __init__(self, job_id: _Optional[str] = ..., after_cursor: _Optional[int] = ...) -> None: ...

class StreamResultsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ModelIdentity(_message.Message):
    __slots__ = ("name", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("id", "index", "cursor", "label", "scores", "fake_score", "model", "error", "verdict", "metadata", "faces", "outcome", "face_detector", "media", "duration_s", "frames", "tracks", "partial")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FACE_DETECTOR_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    index: int
    cursor: int
    label: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    fake_score: float
    model: ModelIdentity
    error: str
    verdict: str
    metadata: _containers.ScalarMap[str, str]
    faces: _containers.RepeatedCompositeFieldContainer[FaceResult]
    outcome: str
    face_detector: ModelIdentity
    media: str
    duration_s: float
    frames: _containers.RepeatedCompositeFieldContainer[FrameResult]
    tracks: _containers.RepeatedCompositeFieldContainer[TrackResult]
    partial: str
    def __init__(self, id: _Optional[str] = ..., index: _Optional[int] = ..., cursor: _Optional[int] = ..., label: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., fake_score: _Optional[float] = ..., model: _Optional[_Union[ModelIdentity, _Mapping]] = ..., error: _Optional[str] = ..., verdict: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., faces: _Optional[_Iterable[_Union[FaceResult, _Mapping]]] = ..., outcome: _Optional[str] = ..., face_detector: _Optional[_Union[ModelIdentity, _Mapping]] = ..., media: _Optional[str] = ..., duration_s: _Optional[float] = ..., frames: _Optional[_Iterable[_Union[FrameResult, _Mapping]]] = ..., tracks: _Optional[_Iterable[_Union[TrackResult, _Mapping]]] = ..., partial: _Optional[str] = ...) -> None: ...

class FrameResult(_message.Message):
    __slots__ = ("t", "label", "scores", "fake_score", "faces", "outcome")
    T_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    t: float
    label: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    fake_score: float
    faces: _containers.RepeatedCompositeFieldContainer[FaceResult]
    outcome: str
    def __init__(self, t: _Optional[float] = ..., label: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., fake_score: _Optional[float] = ..., faces: _Optional[_Iterable[_Union[FaceResult, _Mapping]]] = ..., outcome: _Optional[str] = ...) -> None: ...

class TrackResult(_message.Message):
    __slots__ = ("id", "frames", "start_t", "end_t", "fake_score")
    ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    START_T_FIELD_NUMBER: _ClassVar[int]
    END_T_FIELD_NUMBER: _ClassVar[int]
    FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    id: int
    frames: int
    start_t: float
    end_t: float
    fake_score: float
    def __init__(self, id: _Optional[int] = ..., frames: _Optional[int] = ..., start_t: _Optional[float] = ..., end_t: _Optional[float] = ..., fake_score: _Optional[float] = ...) -> None: ...

class FaceResult(_message.Message):
    __slots__ = ("box", "detector_score", "landmarks", "crop", "label", "scores", "fake_score")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    box: _containers.RepeatedScalarFieldContainer[float]
    detector_score: float
    landmarks: _containers.RepeatedScalarFieldContainer[float]
    crop: _containers.RepeatedScalarFieldContainer[int]
    label: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    fake_score: float
    def __init__(self, box: _Optional[_Iterable[float]] = ..., detector_score: _Optional[float] = ..., landmarks: _Optional[_Iterable[float]] = ..., crop: _Optional[_Iterable[int]] = ..., label: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., fake_score: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "workers", "identities", "queued_items")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    QUEUED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    workers: int
    identities: _containers.RepeatedCompositeFieldContainer[ModelIdentity]
    queued_items: int
    def __init__(self, name: _Optional[str] = ..., workers: _Optional[int] = ..., identities: _Optional[_Iterable[_Union[ModelIdentity, _Mapping]]] = ..., queued_items: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Worker(_message.Message):
    __slots__ = ("worker_id", "model", "identity", "host", "pid", "device", "dtype", "max_batch", "started_unix_ms", "heartbeat_unix_ms", "items_scored", "batches", "draining", "labels")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SCORED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    model: str
    identity: ModelIdentity
    host: str
    pid: int
    device: str
    dtype: str
    max_batch: int
    started_unix_ms: int
    heartbeat_unix_ms: int
    items_scored: int
    batches: int
    draining: bool
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., model: _Optional[str] = ..., identity: _Optional[_Union[ModelIdentity, _Mapping]] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., max_batch: _Optional[int] = ..., started_unix_ms: _Optional[int] = ..., heartbeat_unix_ms: _Optional[int] = ..., items_scored: _Optional[int] = ..., batches: _Optional[int] = ..., draining: _Optional[bool] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ...) -> None: ...
