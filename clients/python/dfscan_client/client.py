"""The synchronous client of the ``dfscan.v1.Scoring`` API."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from typing import Callable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from . import errors
from ._proto.dfscan.v1 import scoring_pb2 as pb
from ._proto.dfscan.v1 import scoring_pb2_grpc as pb_grpc
from .records import FaceOptions, FaceOptionsLike, ItemResult, Job, Model, Worker, state_value
from .sources import OnUnreadable, Source, batches, iter_items

log = logging.getLogger("dfscan_client")

#: Codes after which a result stream is resumed: the coordinator or its
#: queue restarting, the connection dropping (as the Rust client does).
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)

class _AbandonUpload(Exception):
    """Raised in an upload's request iterator to make grpc reset the call."""


class _QuietAbandon(logging.Filter):
    """grpc logs exceptions raised by request iterators; an abandoned upload
    is reported by submit() itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is _AbandonUpload)


logging.getLogger("grpc._channel").addFilter(_QuietAbandon())

#: Room for the message framing around one image.
_FRAMING_BYTES = 64 << 10

#: Called from the upload thread with (items, bytes) uploaded so far.
Progress = Callable[[int, int], None]


class Client:
    """A connection to a dfscan coordinator.

    ``address`` is ``host:port``, ``http://host:port`` or ``https://host:port``
    (TLS with the system's roots, or pass ``credentials``), or any gRPC target
    (``unix:/path``, ``dns:///host:port``). The connection is opened lazily and
    shared by all calls; the client is thread-safe. Use it as a context
    manager, or call :meth:`close`.

    Uploads go in messages of at most ``upload_batch_items`` items or
    ``upload_batch_bytes`` bytes; result streams that break are resumed from
    the last cursor for as long as ``resume_for_s`` seconds pass without a new
    result. ``timeout`` bounds each call other than uploads and result
    streams. ``token`` is the API token (sent as ``authorization: Bearer``;
    default: the ``DFSCAN_CLIENT__TOKEN`` environment variable, as for the
    ``dfscan`` commands); ``call_metadata`` is sent with every call too.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        timeout: Optional[float] = 30.0,
        max_message_bytes: int = 65 << 20,
        upload_batch_bytes: int = 4 << 20,
        upload_batch_items: int = 256,
        resume_for_s: float = 300.0,
        credentials: Optional[grpc.ChannelCredentials] = None,
        call_metadata: Sequence[Tuple[str, str]] = (),
        options: Sequence[Tuple[str, object]] = (),
        token: Optional[str] = None,
    ) -> None:
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self.upload_batch_bytes = upload_batch_bytes
        self.upload_batch_items = upload_batch_items
        self.resume_for_s = resume_for_s
        token = token if token is not None else os.environ.get("DFSCAN_CLIENT__TOKEN")
        bearer = (("authorization", f"Bearer {token}"),) if token else ()
        self.call_metadata = bearer + tuple(call_metadata)
        target, secure = _target(address)
        channel_options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            *options,
        ]
        if credentials is None and secure:
            credentials = grpc.ssl_channel_credentials()
        if credentials is None:
            self.channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self.channel = grpc.secure_channel(target, credentials, options=channel_options)
        #: The generated stub, for anything this wrapper does not cover.
        self.stub = pb_grpc.ScoringStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------

    def submit(
        self,
        source: Source,
        *,
        model: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        idempotency_key: Optional[str] = None,
        task_size: Optional[int] = None,
        faces: Union[FaceOptionsLike, pb.FaceOptions, None] = None,
        on_unreadable: Optional[OnUnreadable] = None,
        progress: Optional[Progress] = None,
        **header: object,
    ) -> Job:
        """Uploads ``source`` as a job and returns it (state "running" once
        the upload is complete); read its results with :meth:`results`.

        ``source`` is a folder (searched recursively for images; ids are the
        folder as given joined with the path under it, ``photos/sub/a.png``,
        as ``dfscan submit`` names them), or an iterable of file paths (ids
        as given; folders among them are searched too), ``(id, bytes)``
        pairs or ``Item`` messages (:func:`dfscan_client.item`),
        consumed lazily as the upload proceeds. Unreadable files raise
        OSError (the upload is abandoned and nothing is created), unless
        ``on_unreadable(id, error)`` is given: they are then skipped.

        ``model`` is a name from :meth:`models` (None: the coordinator's
        default); ``metadata`` is kept with the job; a repeated
        ``idempotency_key`` returns the first job (``job.deduplicated``);
        ``task_size`` is items per queue task (None: the coordinator's).
        ``faces`` is how images are turned into face crops: a mode
        (``"auto"``, ``"require"``, ``"off"``), a :class:`FaceOptions` or a
        mapping of its fields (``{"mode": "require", "max_faces": 4}``), or
        a ``pb.FaceOptions``; None, and every field left unset: the
        workers' configuration. Other keyword arguments are set on the ``JobHeader`` message as they
        are, for header fields this wrapper does not name.

        Raises :class:`~dfscan_client.QueueFull` when the model's queue is
        full (retry later with backoff), :class:`~dfscan_client.InvalidArgument`
        for a refused header or item, ValueError when ``source`` is empty.
        """
        header_message = pb.JobHeader(
            model=model or "",
            idempotency_key=idempotency_key or "",
            metadata=dict(metadata or {}),
            task_size=task_size or 0,
            **header,
        )
        if faces is not None:
            header_message.faces.CopyFrom(faces if isinstance(faces, pb.FaceOptions) else FaceOptions.of(faces).to_pb())
        max_file = max(self.max_message_bytes - _FRAMING_BYTES, 1)
        items = iter_items(source, max_file, on_unreadable)
        first = next(items, None)
        if first is None:
            raise ValueError(f"nothing to submit in {source!r}")
        items = itertools.chain([first], items)

        # grpc pulls the requests on its own thread, one message at a time
        # (the next once the previous is handed to the transport). A failure
        # there (a file that cannot be read, a bad entry) or an interruption
        # here must abandon the call without the stream ending cleanly, which
        # would seal a job with the items sent so far. Raising in the request
        # iterator does that: grpc then resets the stream with an error. (A
        # plain cancel() is not enough: tonic, under dfscan's coordinator,
        # reads a request stream reset with CANCEL as its normal end.)
        failure: List[BaseException] = []
        abandon = threading.Event()

        def requests() -> Iterator[pb.SubmitJobRequest]:
            yield pb.SubmitJobRequest(header=header_message)
            sent_items = sent_bytes = 0
            try:
                for batch in batches(items, self.upload_batch_items, self.upload_batch_bytes):
                    if abandon.is_set():
                        raise _AbandonUpload()
                    message = pb.SubmitJobRequest(items=pb.ItemBatch(items=batch))
                    sent_items += len(batch)
                    sent_bytes += message.ByteSize()
                    yield message
                    if progress is not None:
                        progress(sent_items, sent_bytes)
            except _AbandonUpload:
                raise
            except Exception as e:  # noqa: BLE001 (re-raised by submit)
                failure.append(e)
                raise _AbandonUpload() from e
            if abandon.is_set():
                raise _AbandonUpload()

        future = self.stub.SubmitJob.future(requests(), metadata=self.call_metadata)
        try:
            response = future.result()
        except grpc.RpcError as e:
            if failure:
                raise failure[0] from None
            raise errors.from_rpc_error(e, "SubmitJob") from e
        except BaseException:
            # Interrupted (KeyboardInterrupt...): abandon at the next message;
            # cancel outright only if that does not come soon.
            abandon.set()
            try:
                future.exception(timeout=2.0)
            except BaseException:  # noqa: BLE001
                pass
            future.cancel()
            raise
        return Job.from_pb(response.job, deduplicated=response.deduplicated)

    def get_job(self, job_id: str) -> Job:
        """The job's state and counts. Raises :class:`~dfscan_client.JobNotFound`."""
        return Job.from_pb(self._unary("GetJob", pb.GetJobRequest(job_id=job_id)))

    def cancel_job(self, job_id: str) -> Job:
        """Cancels the job: items not yet scored get the error "job
        cancelled". Raises :class:`~dfscan_client.FailedPrecondition` when the
        job is already finished, :class:`~dfscan_client.JobNotFound`."""
        return Job.from_pb(self._unary("CancelJob", pb.CancelJobRequest(job_id=job_id)))

    def list_jobs(self, limit: int = 100, state: Optional[str] = None) -> List[Job]:
        """Jobs, newest first; ``state`` ("uploading", "running", "completed",
        "cancelled") keeps only those."""
        request = pb.ListJobsRequest(limit=limit, state=state_value(state) if state else 0)
        return [Job.from_pb(j) for j in self._unary("ListJobs", request).jobs]

    def wait(self, job_id: str, poll_s: float = 0.5, timeout: Optional[float] = None) -> Job:
        """Polls until the job is finished; returns it. Raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout} s")
            time.sleep(poll_s)

    # -- results -----------------------------------------------------------

    def results(
        self, job_id: str, after_cursor: int = 0, *, resume_for_s: Optional[float] = None
    ) -> Iterator[ItemResult]:
        """The job's results after ``after_cursor`` (0: all), in the order
        they were recorded, as they are produced; the iteration ends once
        every item has its result.

        Each result's ``cursor`` is one more than the previous one: keep the
        last one seen to resume later with ``results(job_id, cursor)``. A
        stream that breaks (coordinator restart, network, queue down) is
        resumed from the last cursor automatically, for as long as
        ``resume_for_s`` (default: the client's) passes without a new
        result. Raises :class:`~dfscan_client.JobNotFound` for an unknown job,
        :class:`~dfscan_client.ProtocolError` on a gap or repeat in cursors.
        """
        patience = self.resume_for_s if resume_for_s is None else resume_for_s
        after = after_cursor
        # Fetched for the first result without a model identity.
        job_model: Optional[str] = None
        last_progress = time.monotonic()
        backoff = 0.1
        while True:
            call = self.stub.StreamResults(
                pb.StreamResultsRequest(job_id=job_id, after_cursor=after), metadata=self.call_metadata
            )
            try:
                for message in call:
                    for result in message.results:
                        if result.cursor != after + 1:
                            raise errors.ProtocolError(
                                f"job {job_id}: expected result cursor {after + 1}, got {result.cursor}"
                            )
                        if job_model is None and not result.HasField("model"):
                            # An error recorded before any weights saw the
                            # item: its record names the job's model, as
                            # dfscan submit's does. Asked before the cursor
                            # moves on, so a failure resumes like the stream.
                            job_model = self.stub.GetJob(
                                pb.GetJobRequest(job_id=job_id), timeout=self.timeout, metadata=self.call_metadata
                            ).model
                        after = result.cursor
                        last_progress = time.monotonic()
                        backoff = 0.1
                        yield ItemResult.from_pb(result, job_model or "")
                return
            except grpc.RpcError as e:
                code = e.code() if isinstance(e, grpc.Call) else None
                if code not in TRANSIENT or time.monotonic() - last_progress > patience:
                    raise errors.from_rpc_error(e, "StreamResults") from e
                log.warning("job %s: result stream broke (%s); resuming after cursor %d", job_id, code, after)
            finally:
                call.cancel()
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    # -- the cluster -------------------------------------------------------

    def models(self) -> List[Model]:
        """Models jobs can name, with their live workers and queued items."""
        return [Model.from_pb(m) for m in self._unary("ListModels", pb.ListModelsRequest()).models]

    def workers(self) -> List[Worker]:
        """Live workers and what they are doing."""
        return [Worker.from_pb(w) for w in self._unary("ListWorkers", pb.ListWorkersRequest()).workers]

    def _unary(self, method: str, request: object) -> object:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout, metadata=self.call_metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, method) from e


def _target(address: str) -> Tuple[str, bool]:
    """The gRPC target for ``address`` and whether it asks for TLS."""
    for scheme, secure in (("http://", False), ("https://", True)):
        if address.startswith(scheme):
            return address[len(scheme) :].rstrip("/"), secure
    return address, False
