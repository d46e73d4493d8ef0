"""Video jobs in the job flow: the use case the S3 trigger calls for a video upload, and the chunk /
join / fail messages of a split job. S3 is reached only through the ``JobStore``; the fan-out (Step Functions on
AWS, the local runner's queue) is passed in.

- A clip whose plan (``plan_chunks``: frame count x seconds per frame against one invocation's budget) is one
  range, or any clip when no fan-out is configured, runs here in one go: probe → chunk(s) → join → every output
  under ``results/<job>/``, ``status.json`` last, ``frames_done``/``frames_total`` in ``status.json`` meanwhile.
- A longer clip: ``status.json`` says ``running`` with the plan, and one ``chunk`` message per frame range goes
  out. Each chunk stores ``results/<job>/work/chunk-NNNN.zip`` (its label/person PNGs + chunk.json) and a
  ``.progress`` count; then ``join`` (Step Functions' next state, or locally the chunk that sees every zip
  present) tracks across all frames, writes the outputs and removes the work objects.
- A chunk or join that raises a transient error (storage, network: ``is_transient``) is retried (queue
  redelivery / Step Functions Retry); the third failure of the same step writes ``failed`` (``chunk_failed``)
  instead of raising again. Bad input (``InputError``) and any other error on the clip's own bytes
  (``processing_failed``) fail the job at once, in every path, so no retry, dead letter or restart runs it again.
- A whole-clip run is started at most ``MAX_ATTEMPTS`` times (redeliveries, restarts after a crash): then it fails.
- ``running`` carries a ``deadline`` (epoch seconds): past it, whoever reads the status fails the job
  (``job_timeout``, ``JobStore.job_view``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from humanparse.config import Settings
from humanparse.engine.registry import lookup
from humanparse.engine.types import Parser
from humanparse.exceptions import (
    InputError,
    ProcessingFailed,
    UploadMissing,
    VideoChunkFailed,
    VideoTooLarge,
    is_transient,
)
from humanparse.jobs.keys import is_job_id, is_video_key, is_video_type
from humanparse.jobs.status import JobSource, JobStatus
from humanparse.jobs.store import JobStore, StoredObject
from humanparse.observability import record_failure, record_frames
from humanparse.video.limits import VideoLimits, looks_like_video

log = logging.getLogger("humanparse.video")

MESSAGE_KEY = "humanparse_video"
MAX_ATTEMPTS = 3
# Seconds per sampled frame of a parser of no registered kind (a stub), when Settings gives none: M2FP's figure.
# A registered kind says its own (``ModelKind.seconds_per_frame``, engine/registry.py).
UNREGISTERED_SECONDS_PER_FRAME = 2.0


def is_video_message(event: Any) -> bool:
    return isinstance(event, dict) and event.get(MESSAGE_KEY) in ("chunk", "join", "fail")


def is_video_upload(key: str, stored: StoredObject | None, head: bytes = b"") -> bool:
    """By the stored content type, else the key's suffix, else the container's leading bytes."""
    ct = stored.content_type if stored else None
    if is_video_type(ct) or is_video_key(key):
        return True
    return bool(head) and looks_like_video(head)


class FanOut(Protocol):
    """Where a split job's chunk messages go. ``join_when_done``: the last chunk triggers the join itself."""

    join_when_done: bool

    def dispatch(self, job_id: str, source: dict[str, Any], plan: list[list[int]], pending: list[int]) -> None: ...

    def send(self, message: dict[str, Any]) -> None: ...


def chunk_message(job_id: str, source: dict[str, Any], plan: list[list[int]], index: int) -> dict[str, Any]:
    start, end = plan[index]
    return {MESSAGE_KEY: "chunk", "job_id": job_id, "source": source, "index": index, "start": start, "end": end,
            "count": len(plan)}


def join_message(job_id: str, source: dict[str, Any], count: int) -> dict[str, Any]:
    return {MESSAGE_KEY: "join", "job_id": job_id, "source": source, "count": count}


@dataclass
class QueueFanOut:
    """The local runner: chunk and join messages on its SQS queue, dispatched by the worker like any event."""

    sqs: Any
    queue_url: str
    join_when_done: bool = True

    def send(self, message: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))

    def dispatch(self, job_id: str, source: dict[str, Any], plan: list[list[int]], pending: list[int]) -> None:
        for i in pending:
            self.send(chunk_message(job_id, source, plan, i))
        if not pending:
            self.send(join_message(job_id, source, len(plan)))


@dataclass
class StepFunctionsFanOut:
    """AWS: one execution of the video state machine per upload version (the name makes redelivery harmless)."""

    sfn: Any
    state_machine_arn: str
    join_when_done: bool = False

    def send(self, message: dict[str, Any]) -> None:  # the state machine itself joins
        return None

    def dispatch(self, job_id: str, source: dict[str, Any], plan: list[list[int]], pending: list[int]) -> None:
        name = f"{job_id}-{(source.get('etag') or 'x')[:32]}"[:80]
        doc = {"job_id": job_id, "source": source, "count": len(plan),
               "chunks": [chunk_message(job_id, source, plan, i) for i in range(len(plan))]}
        try:
            self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(doc))
        except self.sfn.exceptions.ExecutionAlreadyExists:
            log.info("job %s: video execution %s already started", job_id, name)


class _Throttle:
    def __init__(self, interval_s: float) -> None:
        self.interval_s, self.last = interval_s, 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return False
        self.last = now
        return True


class VideoJobs:
    def __init__(self, parser: Parser, store: JobStore, settings: Settings, fan_out: FanOut | None = None) -> None:
        self.parser, self.store, self.settings, self.fan_out = parser, store, settings, fan_out
        self.layout = store.layout
        self.limits = VideoLimits(max_bytes=settings.video_max_bytes, max_seconds=settings.video_max_seconds,
                                  max_frames=settings.video_max_frames,
                                  max_corrupt_share=settings.video_max_corrupt_share,
                                  max_frame_megapixels=settings.video_max_frame_megapixels)
        self.fps = settings.video_sample_fps or None

    @property
    def seconds_per_frame(self) -> float:
        kind = lookup(self.parser.info.kind)
        return self.settings.video_seconds_per_frame or (kind.seconds_per_frame if kind is not None
                                                         else UNREGISTERED_SECONDS_PER_FRAME)

    # ------------------------------------------------------------------------------------------- status
    def _status(self, job_id: str, source: dict[str, Any], status: str, **extra: Any) -> None:
        self.store.write_status(job_id, JobStatus.model_validate(
            {"status": status, "kind": "video", "job_id": job_id, "source": source, **extra}))

    def _fail(self, job_id: str, source: dict[str, Any], exc: InputError | VideoChunkFailed) -> str:
        self._forget_attempts(job_id)
        self._status(job_id, source, "failed", error=exc.code, detail=exc.detail)
        log.warning("job failed", extra={"job_id": job_id, "kind": "video", "error": exc.code, "detail": str(exc)})
        record_failure(exc.code)
        return "failed"

    def _fetch(self, source: dict[str, Any], dest: Path) -> Path:
        path = dest / "upload.bin"
        if not self.store.download_upload(source["bucket"], source["key"], path, source.get("version_id")):
            raise UploadMissing()
        return path

    # -------------------------------------------------------------------------------------------- start
    def start(self, job_id: str, identity: JobSource, stored: StoredObject | None, prior: JobStatus | None) -> str:
        """A new (or redelivered, or resumed) video upload. Returns "done", "failed" or "running"."""
        # here, not at the top: PyAV and OpenCV load only when a video comes (limits.py)
        from humanparse.video.chunks import check_join_budget, plan_chunks
        from humanparse.video.decode import probe

        t0 = time.perf_counter()
        source = identity.dump()  # as chunk and join messages carry it
        try:
            if stored is None:
                raise UploadMissing()
            if stored.size > self.settings.video_max_bytes:
                raise VideoTooLarge(f"video is {stored.size / 2**20:.1f} MiB; the limit is "
                                    f"{self.settings.video_max_bytes / 2**20:.0f} MiB")
            if (prior and prior.status == "running" and prior.plan and prior.source is not None
                    and prior.source.etag == identity.etag and self.fan_out is not None):
                self._resume_split(job_id, prior.source.dump(), prior.plan)  # redelivered or restarted: go on
                return "running"
            if self._attempts(job_id, "start") > MAX_ATTEMPTS:
                raise ProcessingFailed(f"the clip was started {MAX_ATTEMPTS} times without finishing "
                                       "(the runner stopped or crashed each time)")
            with tempfile.TemporaryDirectory(prefix="hp-video-") as tmp:
                video = self._fetch(source, Path(tmp))
                info = probe(video, fps=self.fps, limits=self.limits)
                check_join_budget(info, self.settings.video_join_budget_s)  # before any chunk: a join never overruns
                plan = [list(r) for r in plan_chunks(info.frames, self.seconds_per_frame,
                                                     timeout_s=self.settings.video_timeout_s,
                                                     max_chunk_frames=self.settings.video_chunk_frames)]
                if len(plan) > 1 and self.fan_out is not None:
                    # chunks of an earlier upload under this job id must not count as this one's
                    self.store.delete_keys(self.store.list_keys(self.layout.work_prefix(job_id)))
                    self._status(job_id, source, "running", frames_total=info.frames, frames_done=0,
                                 chunks=len(plan), plan=plan, started=time.time(),
                                 deadline=self._deadline(len(plan) + 1))
                    self._resume_split(job_id, source, plan)
                    return "running"
                return self._run_whole(job_id, source, video, Path(tmp), info.frames, t0)
        except InputError as exc:
            return self._fail(job_id, source, exc)
        except Exception as exc:
            if is_transient(exc):
                raise  # retried by the queue; the attempt count above ends a loop of them
            log.exception("video processing failed on the clip itself", extra={"job_id": job_id})
            return self._fail(job_id, source, ProcessingFailed.from_exception(exc))

    def _deadline(self, invocations: int) -> float:
        """When a job of this many invocations (chunks + join, run one after another at worst) is overdue."""
        return time.time() + invocations * self.settings.video_timeout_s + 60.0

    def _resume_split(self, job_id: str, source: dict[str, Any], plan: list[list[int]]) -> None:
        assert self.fan_out is not None
        have = set(self.store.list_keys(self.layout.work_prefix(job_id)))
        pending = [i for i in range(len(plan)) if self.layout.chunk_key(job_id, i) not in have]
        self.fan_out.dispatch(job_id, source, plan, pending)

    def _run_whole(self, job_id: str, source: dict[str, Any], video: Path, tmp: Path, total: int,
                   t0: float) -> str:
        from humanparse.video.chunks import process_video

        throttle = _Throttle(self.settings.video_progress_interval_s)
        deadline = self._deadline(1)

        def progress(done: int, frames: int) -> None:
            if throttle.due():
                self._status(job_id, source, "running", frames_total=frames, frames_done=done, chunks=1,
                             deadline=deadline)

        self._status(job_id, source, "running", frames_total=total, frames_done=0, chunks=1, deadline=deadline)
        result = process_video(self.parser, video, tmp / "work", tmp / "out", fps=self.fps, limits=self.limits,
                               max_chunk_frames=self.settings.video_chunk_frames,
                               seconds_per_frame=self.seconds_per_frame, on_progress=progress,
                               parse_budget_s=self.settings.parse_time_budget_s, alpha=self.settings.overlay_alpha)
        return self._publish(job_id, source, tmp / "out", result, t0)

    def _publish(self, job_id: str, source: dict[str, Any], out: Path, result: dict[str, Any], t0: float) -> str:
        from humanparse.video.chunks import OUTPUTS

        files = [name for name in OUTPUTS if (out / name).exists()]
        for name in files:  # result.json last of the outputs, status.json after all of them
            self.store.put_result_file(job_id, name, out / name, OUTPUTS[name])
        elapsed_ms = round(1000 * (time.perf_counter() - t0), 1)
        self._forget_attempts(job_id)
        self._status(job_id, source, "done", files=files, model=result.get("model"), width=result["width"],
                     height=result["height"], person_count=result["person_count"], frames_total=result["frames"],
                     frames_done=result["frames"], fps=result["fps"], elapsed_ms=elapsed_ms)
        # "video parsed", not "parsed": that line counts image parses (tests and log queries count it)
        log.info("video parsed", extra={"job_id": job_id, "s3_key": source.get("key"), "model": result.get("model"),
                                        "frames": result["frames"], "persons": result["person_count"],
                                        "parse_ms": round(1000 * float(result["timings"]["parse_s"]), 1),
                                        "elapsed_ms": elapsed_ms})
        record_frames(int(result["frames"]))
        return "done"

    # ----------------------------------------------------------------------------------------- messages
    def _refusal(self, job_id: str, source: dict[str, Any]) -> str | None:
        """Why a chunk/join/fail message cannot be ours (defence in depth: only the trigger and the state machine
        send them, but the queue or an execution input could be written by someone else), else None."""
        if not is_job_id(job_id):
            return "not a job id"
        if source.get("bucket") != self.settings.upload_bucket:
            return "not the upload bucket"
        key = source.get("key")
        if not isinstance(key, str) or not self.layout.in_uploads(key):
            return "not an upload under the uploads prefix"
        if self.layout.job_id_for_key(key) != job_id:
            return "the key belongs to another job"
        return None

    def handle_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        kind, job_id = msg[MESSAGE_KEY], str(msg.get("job_id"))
        source = dict(msg["source"]) if isinstance(msg.get("source"), dict) else {}
        refusal = self._refusal(job_id, source)
        if refusal:
            log.warning("video message ignored: %s", refusal,
                        extra={"step": kind, "job_id": job_id[:80], "s3_key": str(source.get("key"))[:300]})
            return {"job_id": None, "step": kind, "status": "ignored", "reason": refusal}
        prior = self.store.read_job(job_id)
        if prior and prior.is_final:
            return {"job_id": job_id, "step": kind, "status": "skipped", "reason": "job already finished"}
        if prior and (prior.source or JobSource()).etag != source.get("etag"):
            return {"job_id": job_id, "step": kind, "status": "skipped", "reason": "the upload was replaced"}
        if kind == "fail":
            err = msg.get("error") or {}
            detail = str(err.get("Cause") or err.get("Error") or "a step kept failing")[:500]
            return {"job_id": job_id, "step": kind,
                    "status": self._fail(job_id, source, VideoChunkFailed(detail))}
        step = f"chunk-{int(msg['index']):04d}" if kind == "chunk" else "join"
        try:
            status = self._chunk(job_id, source, msg) if kind == "chunk" else \
                self._join(job_id, source, msg, (prior.started if prior else None) or time.time())
        except InputError as exc:
            status = self._fail(job_id, source, exc)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("video %s failed on the clip itself", step, extra={"job_id": job_id})
                return {"job_id": job_id, "step": kind,
                        "status": self._fail(job_id, source, ProcessingFailed.from_exception(exc))}
            if self._attempts(job_id, step) < MAX_ATTEMPTS:
                raise  # retried: queue redelivery, or the state machine's Retry
            status = self._fail(job_id, source, VideoChunkFailed(
                f"{step} failed {MAX_ATTEMPTS} times; last error: {type(exc).__name__}: {exc}"[:500]))
        return {"job_id": job_id, "step": kind, "status": status}

    def _attempts(self, job_id: str, step: str) -> int:
        """Count this failure in ``work/<step>.attempts``; returns failures so far."""
        key = f"{self.layout.work_prefix(job_id)}{step}.attempts"
        with tempfile.TemporaryDirectory(prefix="hp-video-") as tmp:
            path = Path(tmp) / "n"
            n = int(path.read_text() or "0") + 1 if self.store.get_object_to(key, path) else 1
            path.write_text(str(n))
            self.store.put_object(key, path, "text/plain")
        return n

    def _forget_attempts(self, job_id: str) -> None:
        """A finished job's start count goes (a new upload under the same key starts from zero)."""
        key = f"{self.layout.work_prefix(job_id)}start.attempts"
        if key in self.store.list_keys(key):
            self.store.delete_keys([key])

    def _put_progress(self, job_id: str, index: int, done: int, tmp: Path) -> None:
        path = tmp / "progress"
        path.write_text(str(done))
        self.store.put_object(self.layout.chunk_key(job_id, index).replace(".zip", ".progress"), path, "text/plain")

    def _chunk(self, job_id: str, source: dict[str, Any], msg: dict[str, Any]) -> str:
        from humanparse.video.chunks import process_chunk

        index, start, end, count = int(msg["index"]), int(msg["start"]), int(msg["end"]), int(msg["count"])
        key = self.layout.chunk_key(job_id, index)
        have = set(self.store.list_keys(self.layout.work_prefix(job_id)))
        if key not in have:
            with tempfile.TemporaryDirectory(prefix="hp-video-") as name:
                tmp = Path(name)
                video = self._fetch(source, tmp)
                throttle = _Throttle(self.settings.video_progress_interval_s)

                def progress(done: int, _total: int) -> None:
                    if throttle.due():
                        self._put_progress(job_id, index, done, tmp)

                process_chunk(self.parser, video, start, end, tmp / "chunk", fps=self.fps, limits=self.limits,
                              on_progress=progress, parse_budget_s=self.settings.parse_time_budget_s)
                _zip_dir(tmp / "chunk", tmp / "chunk.zip")
                self._put_progress(job_id, index, end - start, tmp)
                self.store.put_object(key, tmp / "chunk.zip", "application/zip")  # the chunk's marker
            have.add(key)
        if self.fan_out is not None and self.fan_out.join_when_done and \
                all(self.layout.chunk_key(job_id, i) in have for i in range(count)):
            self.fan_out.send(join_message(job_id, source, count))
        return "chunk_done"

    def _join(self, job_id: str, source: dict[str, Any], msg: dict[str, Any], started: float) -> str:
        from humanparse.video.chunks import join_chunks

        t0 = time.perf_counter() - (time.time() - started)  # elapsed_ms: from the split, not from the join
        count = int(msg["count"])
        prefix = self.layout.work_prefix(job_id)
        with tempfile.TemporaryDirectory(prefix="hp-video-") as name:
            tmp = Path(name)
            video = self._fetch(source, tmp)
            dirs = []
            for i in range(count):
                zpath = tmp / f"chunk-{i:04d}.zip"
                if not self.store.get_object_to(self.layout.chunk_key(job_id, i), zpath):
                    raise RuntimeError(f"chunk {i} of {count} has no stored result")
                with zipfile.ZipFile(zpath) as z:
                    z.extractall(tmp / f"chunk-{i:04d}")
                dirs.append(tmp / f"chunk-{i:04d}")
            result = join_chunks(video, dirs, tmp / "out", fps=self.fps, limits=self.limits,
                                 alpha=self.settings.overlay_alpha)
            status = self._publish(job_id, source, tmp / "out", result, t0)
        self.store.delete_keys(self.store.list_keys(prefix))
        return status


def _zip_dir(src: Path, dest: Path) -> None:
    """PNGs are compressed already: stored, not deflated."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(src).as_posix())
