"""The one error family. Every error this package raises on purpose is a ``HumanParseError`` with one
``code`` (stable, machine-readable), one ``http_status`` and one plain ``message`` (what a person reads when no
more specific detail is given). Rendered the same way everywhere — HTTP answers, a failed job's ``status.json``,
the CLI summary — as ``{"error": code, "detail": str(exc)}`` (see ``HumanParseError.to_dict``).

``InputError`` subclasses are the caller's fault (HTTP 4xx, a ``failed`` status beside the upload, never
retried); everything else is ours or transient."""

from __future__ import annotations

from typing import ClassVar


class HumanParseError(Exception):
    """Base of every error this package raises on purpose."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500
    message: ClassVar[str] = "something went wrong"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.message)

    @property
    def detail(self) -> str:
        return str(self)

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


# ------------------------------------------------------------------------------------------------- input
class InputError(HumanParseError):
    """The input is unusable. ``http_status`` is what the HTTP entry answers."""

    code = "bad_input"
    http_status = 400
    message = "the input is not usable"


class EmptyInput(InputError):
    code = "empty"
    message = "the file is empty"


class UploadMissing(InputError):
    """The uploaded object was deleted (or never written) before it could be parsed — not the same as empty."""

    code = "upload_missing"
    http_status = 404
    message = "the uploaded object no longer exists"


class FileUnreadable(InputError):
    """A local file (CLI input) that cannot be opened or read."""

    code = "unreadable"
    message = "the file could not be read"


class NotAnImage(InputError):
    code = "not_an_image"
    http_status = 415
    message = "the file is not an image this service can read (JPEG, PNG, WebP)"


class UnsupportedFormat(InputError):
    """A declared content type or a decoded image format we do not accept: one code for both."""

    code = "unsupported_format"
    http_status = 415
    message = "that file type is not accepted (JPEG, PNG, WebP)"


class TruncatedImage(InputError):
    code = "truncated"
    message = "the image data is truncated or corrupt"


class ImageTooLarge(InputError):
    code = "too_large"
    http_status = 413
    message = "the image is over the size limit"


class ImageTooSmall(InputError):
    code = "too_small"
    http_status = 422
    message = "the image is too small to parse"


# ----------------------------------------------------------------------------------------------- requests
class InvalidRequest(InputError):
    code = "invalid_request"
    http_status = 422
    message = "the request is not valid"


class RequestTooLarge(InputError):
    code = "request_too_large"
    http_status = 413
    message = "the request body is over the size limit"


class RequestTimeout(InputError):
    """The request body did not arrive within its time (a peer sending slowly holds a connection)."""

    code = "request_timeout"
    http_status = 408
    message = "the request body did not arrive in time"


class BadOutput(InputError):
    code = "bad_output"
    message = "output must be json, color, overlay, label, tryon, keypoints, atr or lip"


# --- try-on outputs: a request naming something the parse does not have
class UnknownCategory(InputError):
    code = "unknown_category"
    http_status = 422
    message = "unknown try-on category; choose upper_body, lower_body, dresses or full_body"


class UnknownPerson(InputError):
    code = "unknown_person"
    http_status = 422
    message = "no person with that id in this image"


class NoPerson(InputError):
    code = "no_person"
    http_status = 422
    message = "no person was found in the image, so there is nothing to mask"


class NothingToMask(InputError):
    """The person is there but shows none of the parts the category repaints (lower_body on a portrait)."""

    code = "nothing_to_mask"
    http_status = 422
    message = "the person shows none of the parts this try-on category repaints"


class UnknownLabelSet(InputError):
    code = "unknown_label_set"
    http_status = 422
    message = "unknown label set; choose cihp, lip or atr"


class BadJobId(InputError):
    code = "bad_job_id"
    message = "job ids are 32 lowercase hex characters"


class JobNotFound(InputError):
    code = "not_found"
    http_status = 404
    message = "no such job (or its upload has not arrived yet)"


class JobNotDone(InputError):
    """A job asked for something only a finished photo job has (its try-on images) while it is pending, running
    or failed, or whose photo is no longer the one its parse was made from."""

    code = "job_not_done"
    http_status = 409
    message = "the job has not finished; ask again when its status is done"


class ResponseTooLarge(InputError):
    code = "response_too_large"
    http_status = 413
    message = "result too large for a synchronous answer; use POST /uploads"


class Unauthorized(InputError):
    """An API call without the bearer token this deployment was started with (``serve --token``)."""

    code = "unauthorized"
    http_status = 401
    message = "this API needs an access token: send Authorization: Bearer <token>"
    headers = {"WWW-Authenticate": "Bearer"}


class ChecksumMismatch(InputError):
    """The stored upload's bytes are not the ones whose SHA-256 was declared when the upload was created."""

    code = "checksum_mismatch"
    message = "the uploaded bytes do not match the SHA-256 declared for them"


class EventFormatError(InputError, ValueError):
    """The payload is not an S3 notification (or backfill batch) we understand."""

    code = "bad_event"
    message = "not an S3 notification this function understands"


class ProcessingFailed(InputError):
    """Processing an upload raised an error that is not storage or network trouble (``is_transient``): the same
    bytes fail the same way on every try, so the job fails at once, never retried, dead-lettered or resumed."""

    code = "processing_failed"
    message = "the upload could not be processed"
    http_status = 422

    @classmethod
    def from_exception(cls, exc: BaseException) -> ProcessingFailed:
        return cls(f"the upload could not be processed ({type(exc).__name__}: {exc})"[:500])


def is_transient(exc: BaseException) -> bool:
    """Worth a retry: storage or network trouble (``OSError``, botocore's and urllib3's errors), memory (also
    PyTorch's ``RuntimeError: ... out of memory``), or one of our own service errors (busy, storage unavailable,
    model). Anything else raised while processing one upload (a decoder's, NumPy's or OpenCV's error on its
    bytes) would be raised again by the same bytes."""
    if isinstance(exc, InputError):
        return False
    if isinstance(exc, RuntimeError) and "memory" in str(exc).lower():
        return True
    roots = {c.__module__.split(".")[0] for c in type(exc).__mro__}
    if roots & {"av", "cv2", "numpy", "PIL"}:
        return False  # PyAV's errors derive from OSError too, but come from the file's bytes
    return isinstance(exc, (HumanParseError, OSError, MemoryError)) or bool(
        roots & {"botocore", "boto3", "urllib3", "s3transfer", "requests"})


# ----------------------------------------------------------------------------------------------- service
class JobTimedOut(HumanParseError):
    """A job still ``running`` past its ``deadline`` (its worker died, its message went to the dead-letter
    queue): failed by whoever reads its status next, so no job shows ``running`` forever."""

    code = "job_timeout"
    message = "the job ran past its time budget and was stopped"
    http_status = 500


class Busy(HumanParseError):
    code = "busy"
    http_status = 503
    message = "a parse is already running; retry shortly"
    headers = {"Retry-After": "2"}


class StorageUnavailable(HumanParseError):
    code = "storage_unavailable"
    http_status = 503
    message = "storage is unavailable; retry shortly"


class ModelError(HumanParseError):
    """A model folder is missing, incomplete or inconsistent."""

    code = "model_error"
    message = "the model could not be loaded"


class ModelNotFound(ModelError):
    code = "model_not_found"
    message = "no model folder was found"


class DownloadError(HumanParseError):
    code = "download_failed"
    message = "the download failed"


class TooManyScans(InputError):
    """A progressive JPEG with far more scans than any camera writes: each scan re-decodes the whole image
    (measured: a 583 KB file of ~7000 scans took 33 s), so it is refused from its markers."""

    code = "too_many_scans"
    message = "the JPEG has far more progressive scans than any camera writes"
    http_status = 422


class ParseTimeout(InputError):
    """The parse ran past its time budget (``Settings.parse_time_budget_s``); not retried."""

    code = "parse_timeout"
    message = "the parse ran past its time budget"
    http_status = 422


# --- video: one cause per class, raised by humanparse.video before any frame is parsed.


class NotAVideo(InputError):
    message = "the file is not a video this service can read"
    code = "not_a_video"
    http_status = 415


class AudioOnly(InputError):
    message = "the file holds sound but no video"
    code = "audio_only"
    http_status = 422


class UnsupportedCodec(InputError):
    message = "the video's codec cannot be decoded"
    code = "unsupported_codec"
    http_status = 415


class TruncatedVideo(InputError):
    message = "the video file is cut short"
    code = "truncated_video"


class NoFrames(InputError):
    message = "the video holds no frames"
    code = "no_frames"
    http_status = 422


class CorruptVideo(InputError):
    """More frames failed to decode than the caller tolerates (a few are skipped and reported instead)."""

    message = "too many of the video's frames are damaged"
    code = "corrupt_video"
    http_status = 422


class VideoTooLong(InputError):
    message = "the video is longer than the limit"
    code = "video_too_long"
    http_status = 413


class VideoTooLarge(InputError):
    message = "the video file is larger than the limit"
    code = "video_too_large"
    http_status = 413


class VideoChunkFailed(HumanParseError):
    """A step of a split video job (a chunk, or the join) kept failing after its retries: the job fails with
    this instead of waiting forever."""

    message = "part of the video could not be processed after several tries"
    code = "chunk_failed"
    http_status = 500
