"""The one use case every entry calls: image bytes → decode → parse → render → result files and summary.

The HTTP app (``POST /parse``), the S3 trigger and the CLI all go through ``parse_image``; so a new output
format is a change in ``rendering.py`` reached from here, a new entry point is a thin adapter that calls this,
and a new model is a new ``Parser`` handed in. Engine-agnostic: it knows the ``Parser`` protocol only."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from humanparse.config import Settings
from humanparse.engine.types import Parser, ParseResult
from humanparse.observability import span
from humanparse.pipeline.imageio import MAX_DECODE_MEGABYTES, MAX_JPEG_SCANS, MAX_OUTPUT_MEGAPIXELS, decode_image
from humanparse.pipeline.rendering import render_all


@dataclass(frozen=True)
class ParseOptions:
    max_megapixels: float = 100.0  # refused before any pixel is decoded
    max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS  # decoded (JPEG: DCT-scaled) and delivered at most this
    max_decode_megabytes: float = MAX_DECODE_MEGABYTES  # decoded pixels x bytes per pixel, checked before decoding
    max_jpeg_scans: int = MAX_JPEG_SCANS  # progressive-JPEG CPU bombs
    parse_time_budget_s: float | None = 60.0  # a parse past this fails with parse_timeout
    overlay_alpha: float = 0.6  # weight of the colour map in overlay.jpg

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseOptions:
        return cls(max_megapixels=settings.max_megapixels, max_output_megapixels=settings.max_output_megapixels,
                   max_decode_megabytes=settings.max_decode_megabytes, max_jpeg_scans=settings.max_jpeg_scans,
                   parse_time_budget_s=settings.parse_time_budget_s, overlay_alpha=settings.overlay_alpha)


@dataclass(frozen=True)
class ParseOutput:
    """One parsed image. ``files`` maps each name of ``rendering.ARTIFACTS`` to its bytes (``result.json`` is
    ``summary`` serialised); ``timings`` are seconds for ``decode``, ``parse``, ``render`` and ``total``;
    ``rgb`` the (H, W, 3) uint8 decoded pixels that were parsed (the try-on outputs are drawn on them)."""

    result: ParseResult
    summary: dict[str, Any]
    files: dict[str, bytes]
    timings: dict[str, float] = field(default_factory=dict)
    rgb: npt.NDArray[np.uint8] | None = None

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """(H, W) uint8 CIHP ids 0..19 at the input's (EXIF-rotated) resolution."""
        return self.result.label_map

    @property
    def persons(self) -> npt.NDArray[np.uint8]:
        """(H, W) uint8 person ids, 0 = nobody, k = ``result.persons[k-1]``."""
        return self.result.person_map


def parse_image(data: bytes, parser: Parser, options: ParseOptions = ParseOptions(), *,
                extra: dict[str, Any] | None = None) -> ParseOutput:
    """Parse the raw file bytes ``data`` (JPEG/PNG/WebP) with ``parser``. ``extra`` is merged into the JSON
    summary (a job id, a source path). Raises an ``InputError`` subclass for input it will not parse."""
    t0 = time.perf_counter()
    with span("decode"):
        decoded = decode_image(data, max_megapixels=options.max_megapixels,
                               max_output_megapixels=options.max_output_megapixels,
                               max_decode_megabytes=options.max_decode_megabytes,
                               max_jpeg_scans=options.max_jpeg_scans)
    t1 = time.perf_counter()
    budget = options.parse_time_budget_s
    with span("parse"):
        result = parser.parse(decoded.rgb, deadline=None if budget is None else time.monotonic() + budget)
    t2 = time.perf_counter()
    doc_extra: dict[str, Any] = {"input": {"format": decoded.format, "mode": decoded.original_mode,
                                           "frames": decoded.frames, "exif_rotated": decoded.exif_rotated}}
    doc_extra.update(extra or {})
    with span("render"):
        files = render_all(result, decoded.rgb, alpha=options.overlay_alpha, extra=doc_extra)
    t3 = time.perf_counter()
    summary: dict[str, Any] = json.loads(files["result.json"])
    return ParseOutput(result, summary, files,
                       {"decode": t1 - t0, "parse": t2 - t1, "render": t3 - t2, "total": t3 - t0}, decoded.rgb)
