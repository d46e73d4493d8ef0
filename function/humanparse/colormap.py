"""Colour maps ("拼图"): label map → palette colours, overlay on the photo, legend, per-person view.

All functions are vectorised numpy; inputs are never modified.
- ``label_map``: (H, W) uint8 CIHP ids 0..19.  ``person_map``: (H, W) uint8, 0 = none, k = person k.
- ``rgb``: (H, W, 3) uint8 RGB, same H, W.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from .labels import CIHP_LABELS, CIHP_PALETTE, PERSON_PALETTE, hex_color, palette_array

_LUT = palette_array()


def colorize(label_map: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W) ids → (H, W, 3) uint8 RGB palette colours (background black)."""
    return _LUT[label_map]


def overlay(rgb: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8], alpha: float = 0.6) -> npt.NDArray[np.uint8]:
    """Blend part colours over the photo with opacity ``alpha`` (0..1); background pixels keep the photo.
    uint8 arithmetic (cv2, rounded): at 12 MP the float32 version held ~0.6 GB of temporaries."""
    import cv2

    if rgb.shape[:2] != label_map.shape:
        raise ValueError(f"image {rgb.shape[:2]} and label map {label_map.shape} differ in size")
    a = float(np.clip(alpha, 0.0, 1.0))
    blended = cv2.addWeighted(rgb, 1.0 - a, _LUT[label_map], a, 0.0)
    return np.where((label_map > 0)[..., None], blended, rgb).astype(np.uint8)


def person_view(person_map: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """One colour per person, parts told apart by shading (70% person colour, 30% part colour)."""
    plut = np.zeros((256, 3), dtype=np.float32)
    for k in range(1, 256):
        plut[k] = PERSON_PALETTE[(k - 1) % len(PERSON_PALETTE)]
    base = plut[person_map]
    mixed = base * 0.7 + _LUT[label_map].astype(np.float32) * 0.3
    mixed[person_map == 0] = 0
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def legend_entries(label_map: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
    """Labels present (background excluded), largest first: id, name, colour hex, pixels, share of image."""
    counts = np.bincount(label_map.ravel(), minlength=len(CIHP_LABELS))
    total = float(label_map.size)
    rows = [{"id": i, "name": CIHP_LABELS[i], "color": hex_color(CIHP_PALETTE[i]), "pixels": int(counts[i]),
             "share": round(float(counts[i]) / total, 6)} for i in range(1, len(CIHP_LABELS)) if counts[i] > 0]
    return sorted(rows, key=lambda r: -r["pixels"])


def full_legend() -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "color": hex_color(CIHP_PALETTE[i])} for i, n in enumerate(CIHP_LABELS)]


def legend_image(entries: list[dict[str, Any]], *, width: int = 260, row: int = 22) -> npt.NDArray[np.uint8]:
    """Render legend rows (swatch, name, share %) as an (H, width, 3) uint8 RGB image on white."""
    h = max(1, len(entries)) * row + 8
    img = Image.new("RGB", (width, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for i, e in enumerate(entries):
        y = 4 + i * row
        color = tuple(int(e["color"][j:j + 2], 16) for j in (1, 3, 5))
        draw.rectangle([6, y + 2, 6 + row - 6, y + row - 4], fill=color, outline=(80, 80, 80))
        share = f"{100.0 * e['share']:.1f}%" if "share" in e else ""
        draw.text((row + 8, y + 4), f"{e['name']}  {share}", fill=(20, 20, 20), font=font)
    return np.asarray(img)
