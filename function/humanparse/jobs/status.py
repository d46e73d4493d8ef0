"""The one shape of a job's status: what ``results/<job>/status.json`` holds and what ``GET /jobs/{id}`` answers.

Every writer (the S3 trigger, the result cache, video jobs, an overdue job's reader) builds a ``JobStatus`` and
stores ``dump()``; every reader (the job store's answer, the try-on route, the cache, the local runner's resume)
parses one with ``JobStatus.model_validate``. The document keeps exactly the fields a writer set
(``exclude_unset``), so the JSON is what it was before the model existed, and a document written by an older
version still parses (its ``reason`` reads as ``detail``, and the page still reads ``reason`` from an older
server's answer; fields it does not know are ignored).

One model for both kinds of job: a photo job has no ``kind`` in its document (it reads as ``"image"``), a video
job says ``"video"`` and carries its progress (``frames_total``/``frames_done``; a split job ``chunks``/``plan``).
Fields marked ``x-stored-only`` in the schema live in ``status.json`` and are never part of an API answer;
``results``, ``original`` and ``key`` exist only in answers. ``python -m humanparse.jobs.status`` prints the
JSON Schema the page's reading of a job is checked against (``frontend/job-status.schema.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from humanparse.exceptions import HumanParseError

JobState = Literal["pending", "running", "done", "failed"]
STORED_ONLY: JsonDict = {"x-stored-only": True}


def _stored(description: str) -> Any:
    """A field ``status.json`` holds but no answer shows (the job store's view leaves it out)."""
    return Field(default=None, description=description, json_schema_extra=STORED_ONLY)


class JobSource(BaseModel):
    """Where a job's input came from: an upload (bucket, key and the stored object's identity, which the trigger's
    skip rules compare) or an API call that stored no upload (``api``: ``POST /parse``; ``via``: ``POST
    /uploads`` answered from the cache)."""

    model_config = ConfigDict(extra="ignore")

    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    api: str | None = None
    via: str | None = None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class JobStatus(BaseModel):
    """A job: ``pending`` (its upload arrived, nothing written yet), ``running`` (a video), ``done`` or
    ``failed`` (``error`` code + ``detail`` in plain words, as every error answer)."""

    model_config = ConfigDict(extra="ignore", title="JobStatus")

    job_id: str | None = Field(default=None, description="32 hex digits")
    status: JobState
    kind: Literal["image", "video"] = Field(default="image", description="absent for a photo job")
    error: str | None = Field(default=None, description="failed: the error code (as in every error answer)")
    detail: str | None = Field(default=None, description="failed: what went wrong, in plain words")
    reason: str | None = Field(default=None, deprecated=True,
                               description="failed, from older versions: what `detail` says now (read as `detail`)")
    results: dict[str, str] | None = Field(default=None, description="done: signed GET URL by result file name")
    model: str | None = Field(default=None, description="done: the model kind that parsed it")
    width: int | None = Field(default=None, description="done: the input's width in pixels")
    height: int | None = Field(default=None, description="done: the input's height in pixels")
    person_count: int | None = Field(default=None, description="done: persons found (a video: tracks)")
    elapsed_ms: float | None = Field(default=None, description="done: from the job's start to its results")
    cached: bool | None = Field(default=None, description="done: the result of an earlier job of the same bytes")
    frames_total: int | None = Field(default=None, description="video: frames to parse (null until probed)")
    frames_done: int | None = Field(default=None, description="video: frames parsed so far")
    original: str | None = Field(default=None, description="video: signed GET URL of the uploaded clip")
    key: str | None = Field(default=None, description="GET /jobs?key=: the upload's key, as asked")
    source: JobSource | None = _stored("the input: upload identity, or the API call that made the job")
    files: list[str] | None = _stored("done: the result files stored beside status.json")
    sha256: str | None = _stored("done photo: SHA-256 (hex) of the parsed bytes; the cache checks it")
    fps: float | None = _stored("done video: the sampled frame rate")
    chunks: int | None = _stored("running video: how many invocations share the frames")
    plan: list[list[int]] | None = _stored("running split video: [start, end) frame range of each chunk")
    started: float | None = _stored("running split video: epoch seconds at the split")
    deadline: float | None = _stored("running video: epoch seconds after which a reader fails the job")

    @model_validator(mode="before")
    @classmethod
    def _older_documents(cls, data: Any) -> Any:
        """A failed status written by an older version said ``reason`` where ``detail`` is now."""
        if isinstance(data, dict) and "reason" in data and "detail" not in data:
            data = {**data, "detail": data["reason"]}
        return data

    @classmethod
    def failure(cls, exc: HumanParseError, **fields: Any) -> JobStatus:
        """A ``failed`` status saying ``exc`` (its code and plain words), with ``fields`` (job_id, kind, source)."""
        return cls(status="failed", **fields, error=exc.code, detail=exc.detail)

    @property
    def is_final(self) -> bool:
        return self.status in ("done", "failed")

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    def dump(self) -> dict[str, Any]:
        """The JSON document: exactly the fields set (a writer's, or those an older document held)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def set_fields(self, names: tuple[str, ...]) -> dict[str, Any]:
        """``{name: value}`` of those of ``names`` this status has set (for building another status from it)."""
        return {n: getattr(self, n) for n in names if n in self.model_fields_set}


def stored_only_fields() -> frozenset[str]:
    """The fields no API answer carries (the page must not read them)."""
    return frozenset(n for n, f in JobStatus.model_fields.items() if f.json_schema_extra == STORED_ONLY)


def json_schema() -> dict[str, Any]:
    """The model's JSON Schema, as committed in ``frontend/job-status.schema.json``."""
    return JobStatus.model_json_schema()


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m humanparse.jobs.status [path]: print or write the schema
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(schema_text(), encoding="utf-8")
    else:
        sys.stdout.write(schema_text())
