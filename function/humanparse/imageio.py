"""Decode untrusted image bytes into a normalised RGB array, with bounded time and memory.

Contract of ``decode_image``: returns ``uint8`` array of shape ``(H, W, 3)``, RGB, EXIF orientation applied,
alpha composited over white, 16-bit/float scaled to 8 bits, CMYK/palette/grey converted, first frame of an
animation. Raises an ``InputError`` subclass for anything it will not parse.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from .exceptions import (
    EmptyInput,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TruncatedImage,
    UnsupportedFormat,
)

# Formats a browser or phone produces. Others (PSD, EPS, ICO...) widen the attack surface for nothing.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
MIN_SIDE = 16


@dataclass(frozen=True)
class DecodedImage:
    rgb: npt.NDArray[np.uint8]  # (H, W, 3) uint8 RGB
    format: str
    original_mode: str
    frames: int
    exif_rotated: bool

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK" or mode == "YCbCr" or mode == "LAB" or mode == "HSV":
        return img.convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


def decode_image(data: bytes, *, max_megapixels: float = 40.0) -> DecodedImage:
    """Decode ``data`` (the raw file bytes). ``max_megapixels`` bounds width*height before any pixel is
    decoded, which is what stops decompression bombs (a 30000x30000 PNG is tiny on disk)."""
    if not data:
        raise EmptyInput("the file is empty")
    max_pixels = int(max_megapixels * 1_000_000)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise NotAnImage("the file is not an image this service can read (JPEG, PNG, WebP)") from exc
        raise ImageTooLarge(f"image exceeds the {max_megapixels:g} megapixel limit") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for hostile headers
        raise NotAnImage(f"the file could not be opened as an image ({type(exc).__name__})") from exc
    fmt = (img.format or "").upper()
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedFormat(f"image format {fmt or 'unknown'} is not accepted (JPEG, PNG, WebP)")
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLarge(
            f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {max_megapixels:g}"
        )
    if min(w, h) < MIN_SIDE:
        raise ImageTooSmall(f"image is {w}x{h}; each side must be at least {MIN_SIDE} pixels")
    frames = int(getattr(img, "n_frames", 1) or 1)
    original_mode = img.mode
    try:
        if frames > 1:
            img.seek(0)
        img.load()
        orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
        rotated: Image.Image = ImageOps.exif_transpose(img) or img
        rgb = _to_rgb(rotated)
        arr = np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise TruncatedImage(f"the image data is truncated or corrupt ({exc})") from exc
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise NotAnImage("decoded image has an unexpected shape")
    return DecodedImage(
        rgb=np.ascontiguousarray(arr),
        format=fmt,
        original_mode=original_mode,
        frames=frames,
        exif_rotated=orientation not in (1, None),
    )


def load_image_file(path: str, *, max_megapixels: float = 40.0, max_bytes: int | None = None) -> DecodedImage:
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1) if max_bytes else fh.read()
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageTooLarge(f"file is larger than {max_bytes} bytes")
    return decode_image(data, max_megapixels=max_megapixels)
