"""Serialise a ParseResult into the files we publish (bytes, no I/O): label PNG, colour PNG, overlay,
per-person view, legend and JSON. Used identically by the CLI, the S3 trigger and the HTTP app."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from .colormap import legend_entries, legend_image, overlay
from .engine.types import ParseResult
from .labels import PERSON_PALETTE, palette_array

# name → MIME type of every artefact, in the order they are written (the JSON summary last).
ARTIFACTS: dict[str, str] = {
    "label.png": "image/png",
    "color.png": "image/png",
    "overlay.png": "image/png",
    "persons.png": "image/png",
    "legend.png": "image/png",
    "result.json": "application/json",
}


def png_bytes(arr: npt.NDArray[np.uint8], *, palette: npt.NDArray[np.uint8] | None = None) -> bytes:
    if palette is None:
        img = Image.fromarray(arr)
    else:  # pixel values are kept as palette indices (ids), so the PNG reads back as the id array
        img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        img.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    # level 1: several times faster than the default for a few % more bytes (palette maps: 1 byte a pixel)
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _person_palette() -> npt.NDArray[np.uint8]:
    lut = np.zeros((256, 3), dtype=np.uint8)
    for k in range(1, 256):
        lut[k] = PERSON_PALETTE[(k - 1) % len(PERSON_PALETTE)]
    return lut


def result_document(result: ParseResult, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = result.summary()
    doc["legend"] = legend_entries(result.label_map)
    if extra:
        doc.update(extra)
    return doc


def render_all(result: ParseResult, rgb: npt.NDArray[np.uint8], *, alpha: float = 0.6,
               extra: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every artefact of ``ARTIFACTS`` as bytes. ``label.png`` is a palette PNG whose pixel values are the
    CIHP ids (read it back with ``np.asarray(Image.open(...))``) and which displays in the part colours;
    ``color.png`` is the same palette image (kept for old readers); ``persons.png`` holds person ids.
    ``rgb`` must have the maps' size (``decode_image`` bounds both by ``max_output_megapixels``)."""
    doc = result_document(result, extra=extra)
    return {
        "label.png": png_bytes(result.label_map, palette=palette_array()),
        # the same ids with the part colours as palette: displays as the colour map at a third of the bytes/time
        "color.png": png_bytes(result.label_map, palette=palette_array()),
        "overlay.png": png_bytes(overlay(rgb, result.label_map, alpha)),
        "persons.png": png_bytes(result.person_map, palette=_person_palette()),
        "legend.png": png_bytes(legend_image(doc["legend"])),
        "result.json": json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8"),
    }
