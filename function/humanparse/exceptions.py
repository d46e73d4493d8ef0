"""Named errors. ``InputError`` subclasses are the caller's fault (HTTP 4xx, a ``failed`` object beside
the upload, never retried); everything else is ours or transient."""

from __future__ import annotations


class HumanParseError(Exception):
    """Base of every error this package raises on purpose."""

    code = "error"


class InputError(HumanParseError):
    """The input is unusable. ``http_status`` is what the HTTP entry answers."""

    code = "bad_input"
    http_status = 400


class EmptyInput(InputError):
    code = "empty"


class NotAnImage(InputError):
    code = "not_an_image"
    http_status = 415


class UnsupportedFormat(InputError):
    code = "unsupported_format"
    http_status = 415


class TruncatedImage(InputError):
    code = "truncated"


class ImageTooLarge(InputError):
    code = "too_large"
    http_status = 413


class ImageTooSmall(InputError):
    code = "too_small"
    http_status = 422


class ModelError(HumanParseError):
    """A model folder is missing, incomplete or inconsistent."""

    code = "model_error"


class ModelNotFound(ModelError):
    code = "model_not_found"


class DownloadError(HumanParseError):
    code = "download_failed"


# --- video (issue #16): one cause per class, raised by humanparse.video before any frame is parsed.


class NotAVideo(InputError):
    code = "not_a_video"
    http_status = 415


class AudioOnly(InputError):
    code = "audio_only"
    http_status = 422


class UnsupportedCodec(InputError):
    code = "unsupported_codec"
    http_status = 415


class TruncatedVideo(InputError):
    code = "truncated_video"


class NoFrames(InputError):
    code = "no_frames"
    http_status = 422


class CorruptVideo(InputError):
    """More frames failed to decode than the caller tolerates (a few are skipped and reported instead)."""

    code = "corrupt_video"
    http_status = 422


class VideoTooLong(InputError):
    code = "video_too_long"
    http_status = 413


class VideoTooLarge(InputError):
    code = "video_too_large"
    http_status = 413
