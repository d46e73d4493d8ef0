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


class TooManyScans(InputError):
    """A progressive JPEG with far more scans than any camera writes: each scan re-decodes the whole image
    (measured: a 583 KB file of ~7000 scans took 33 s), so it is refused from its markers."""

    code = "too_many_scans"
    http_status = 422


class ParseTimeout(InputError):
    """The parse ran past its time budget (``Settings.parse_time_budget_s``); not retried."""

    code = "parse_timeout"
    http_status = 422
