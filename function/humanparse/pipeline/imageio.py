"""Decode untrusted image bytes into a normalised RGB array, with bounded time and memory.

Contract of ``decode_image``: returns ``uint8`` array of shape ``(H, W, 3)``, RGB, EXIF orientation applied, at
most ``max_output_megapixels`` (larger photos are decoded DCT-scaled (JPEG) or shrunk, aspect kept),
alpha composited over white, 16-bit/float scaled to 8 bits, CMYK/palette/grey converted, first frame of an
animation. Raises an ``InputError`` subclass for anything it will not parse.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from humanparse.exceptions import (
    EmptyInput,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TooManyScans,
    TruncatedImage,
    UnsupportedFormat,
)

# The formats the API promises (MPO: a phone JPEG carrying a second, depth or preview, frame). GIF, BMP and TIFF
# are refused: nobody uploads a photo that way and each widens what a hostile file can make the decoder do.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "MPO"})
MIN_SIDE = 16
MAX_OUTPUT_MEGAPIXELS = 12.5  # Settings.max_output_megapixels: a 4032x3024 phone photo (12.2 MP) is kept whole
MAX_DECODE_MEGABYTES = 400.0  # Settings.max_decode_megabytes: decoded pixels x bytes per pixel
MAX_JPEG_SCANS = 100  # Settings.max_jpeg_scans
# Bytes per decoded pixel by Pillow mode, before conversion to RGB (unknown modes count as 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2,
               "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4}


@dataclass(frozen=True)
class DecodedImage:
    rgb: npt.NDArray[np.uint8]  # (H, W, 3) uint8 RGB
    format: str
    original_mode: str
    frames: int
    exif_rotated: bool
    source_size: tuple[int, int] = (0, 0)  # (width, height) of the photo as stored, before any scaling


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # integer/float32 arithmetic: float64 made a 40 MP 16-bit PNG cost +1.7 GB
        arr = np.asarray(img)
        if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255):
            arr8 = ((np.clip(arr, 0, 65535).astype(np.uint32) * 510 + 65535) // 131070).astype(np.uint8)
        else:
            arr8 = np.clip(arr.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
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


def count_jpeg_scans(data: bytes) -> int:
    """SOS markers (``FF DA``) in a JPEG file. Entropy-coded data stuffs every ``FF`` byte with ``00``, so the pair
    only occurs as a marker: an upper bound on the scans (an EXIF thumbnail or an MPO frame adds its own)."""
    return data.count(b"\xff\xda")


def _open(data: bytes, max_megapixels: float) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # our own checks below bound the size; Pillow's warning threshold (89 MP) is below our limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise NotAnImage("the file is not an image this service can read (JPEG, PNG, WebP)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image exceeds the {max_megapixels:g} megapixel limit") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for hostile headers
        raise NotAnImage(f"the file could not be opened as an image ({type(exc).__name__})") from exc


def _check_cost(img: Image.Image, fmt: str, data: bytes, *, max_megapixels: float, max_decode_megabytes: float,
                max_jpeg_scans: int) -> None:
    """Refuse, from the header alone, what would cost too much to decode."""
    w, h = img.size
    if w * h > max_megapixels * 1e6:
        raise ImageTooLarge(f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {max_megapixels:g}")
    if min(w, h) < MIN_SIDE:
        raise ImageTooSmall(f"image is {w}x{h}; each side must be at least {MIN_SIDE} pixels")
    if fmt in ("JPEG", "MPO"):
        scans = count_jpeg_scans(data)
        if scans > max_jpeg_scans:
            raise TooManyScans(f"the JPEG has {scans} scans; at most {max_jpeg_scans} are accepted")
    decoded_mb = w * h * _MODE_BYTES.get(img.mode, 4) / 1e6
    if fmt not in ("JPEG", "MPO") and decoded_mb > max_decode_megabytes:  # JPEGs decode scaled (draft)
        raise ImageTooLarge(f"decoding this {w}x{h} {img.mode} image takes {decoded_mb:.0f} MB; "
                            f"the limit is {max_decode_megabytes:g} MB")


def _jpeg_draft(img: Image.Image, max_pixels: float) -> None:
    """Ask libjpeg for the least DCT scaling (1/2, 1/4, 1/8) that fits ``max_pixels``: a 48 MP photo decodes at
    12 MP directly, never at full size (bench/scale.py)."""
    w, h = img.size
    k = 1
    while k < 8 and (w // k) * (h // k) > max_pixels:
        k *= 2
    if k > 1:
        img.draft(img.mode, (w // k, h // k))


def _fit(img: Image.Image, max_pixels: float) -> Image.Image:
    """Shrink (aspect kept) to at most ``max_pixels``; Pillow's reducing_gap does a box pre-reduction."""
    w, h = img.size
    if w * h <= max_pixels:
        return img
    s = (max_pixels / (w * h)) ** 0.5
    return img.resize((max(1, int(w * s)), max(1, int(h * s))), Image.Resampling.BILINEAR, reducing_gap=2.0)


# EXIF orientation → the numpy view that shows the photo upright (what ``ImageOps.exif_transpose`` does)
_ORIENT: dict[int, Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]] = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a[::-1].transpose(1, 0, 2),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: a[:, ::-1].transpose(1, 0, 2),
}


def _fast_jpeg(img: Image.Image, data: bytes, orientation: int, max_pixels: float) -> npt.NDArray[np.uint8] | None:
    """The pixels of a plain colour JPEG (YCbCr or RGB, one frame, kept at its size, ending in its EOI marker) by
    OpenCV's libjpeg-turbo straight into an RGB array: the same pixels as Pillow (``tests/test_imageio.py``)
    in 0.06–0.08 s at 12 MP where Pillow's decode and its copy out of 4-byte pixels took 0.17–0.19 s. None for
    anything else (Pillow decodes it): a truncated JPEG (no EOI), which libjpeg would fill in with a warning
    where Pillow refuses it, or one libjpeg cannot read (Pillow then says why)."""
    w, h = img.size
    if img.format != "JPEG" or img.mode != "RGB" or w * h > max_pixels or not data.endswith(b"\xff\xd9"):
        return None
    import cv2

    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10: libjpeg-turbo writes RGB directly
    flags = (cv2.IMREAD_COLOR if rgb_flag is None else rgb_flag) | cv2.IMREAD_IGNORE_ORIENTATION
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if decoded is None or decoded.shape != (h, w, 3):
        return None
    arr = np.asarray(decoded if rgb_flag is not None else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    turn = _ORIENT.get(orientation)
    return arr if turn is None else np.ascontiguousarray(turn(arr))


def decode_image(data: bytes, *, max_megapixels: float = 100.0,
                 max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS,
                 max_decode_megabytes: float = MAX_DECODE_MEGABYTES,
                 max_jpeg_scans: int = MAX_JPEG_SCANS) -> DecodedImage:
    """Decode ``data`` (the raw file bytes) to at most ``max_output_megapixels`` (the photo's size when smaller).

    ``max_megapixels`` bounds the stored width*height and ``max_decode_megabytes`` the decoded bytes before any
    pixel is decoded (what stops decompression bombs: a 30000x30000 PNG is tiny on disk); ``max_jpeg_scans`` stops
    progressive-JPEG CPU bombs. JPEGs larger than the output size are decoded DCT-scaled."""
    if not data:
        raise EmptyInput("the file is empty")
    img = _open(data, max_megapixels)
    fmt = (img.format or "").upper()
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedFormat(f"image format {fmt or 'unknown'} is not accepted (JPEG, PNG, WebP)")
    _check_cost(img, fmt, data, max_megapixels=max_megapixels, max_decode_megabytes=max_decode_megabytes,
                max_jpeg_scans=max_jpeg_scans)
    source_size = img.size
    max_out = max_output_megapixels * 1e6
    frames = int(getattr(img, "n_frames", 1) or 1)
    # an APNG may carry a default image (shown by viewers without animation support) ahead of its animation:
    # Pillow counts it as frame 0; the first animation frame is the picture, as browsers show it
    first = 1 if fmt == "PNG" and frames > 1 and getattr(img, "default_image", False) else 0
    frames -= first
    original_mode = img.mode
    try:
        fast = None
        if fmt == "JPEG" and frames == 1:  # a JPEG's EXIF is in its header: readable before any pixel
            orientation = img.getexif().get(0x0112, 1)
            fast = _fast_jpeg(img, data, orientation, max_out)
        arr, orientation = (fast, orientation) if fast is not None else _pillow_decode(img, fmt, first, frames,
                                                                                       max_out)
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
        source_size=(source_size[1], source_size[0]) if orientation in (5, 6, 7, 8) else source_size,
    )


def _pillow_decode(img: Image.Image, fmt: str, first: int, frames: int,
                   max_out: float) -> tuple[npt.NDArray[np.uint8], int]:
    """(H, W, 3) uint8 RGB by Pillow (any accepted format, DCT-scaled JPEGs) and the EXIF orientation applied."""
    if frames > 1 or first:
        img.seek(first)
    if fmt in ("JPEG", "MPO"):
        _jpeg_draft(img, max_out)
    img.load()
    orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    rotated: Image.Image = ImageOps.exif_transpose(img) or img
    return np.asarray(_fit(_to_rgb(rotated), max_out), dtype=np.uint8), orientation
