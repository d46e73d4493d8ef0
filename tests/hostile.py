"""Hostile and odd inputs, each with the outcome every entry must give: an error code, or "ok"."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png_header_bomb(w: int, h: int) -> bytes:
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = zlib.compress(b"\x00" * (w + 1) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _photo(w: int = 96, h: int = 128) -> Image.Image:
    rng = np.random.default_rng(1)
    base = np.zeros((h, w, 3), np.uint8)
    base[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = (200, 150, 120)  # a blob, so something can be found
    return Image.fromarray(np.clip(base + rng.integers(0, 30, base.shape), 0, 255).astype(np.uint8))


def cases() -> list[tuple[str, bytes, str, str]]:
    """(name, bytes, content type the client declares, expected: error code or "ok")."""
    jpg = _save(_photo(), "JPEG", quality=90)
    png = _save(_photo(), "PNG")
    rgba = _photo().convert("RGBA")
    exif_img = _photo()
    exif = exif_img.getexif()
    exif[0x0112] = 6
    frames = [_photo(), _photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    webp_anim = io.BytesIO()
    frames[0].save(webp_anim, format="WEBP", save_all=True, append_images=frames[1:])
    sixteen = Image.fromarray(np.asarray(_photo().convert("L"), np.uint16) * 257)
    return [
        ("empty", b"", "image/jpeg", "empty"),
        ("truncated-jpeg", jpg[: len(jpg) // 3], "image/jpeg", "truncated|not_an_image"),
        ("truncated-png", png[: len(png) // 3], "image/png", "truncated|not_an_image"),
        ("text-named-jpg", b"hello world, definitely a holiday photo", "image/jpeg", "not_an_image"),
        ("polyglot-jpeg-zip", jpg + b"PK\x03\x04" + b"\x00" * 64 + b"<script>alert(1)</script>", "image/jpeg", "ok"),
        ("html", b"<!doctype html><html><script>alert(1)</script></html>", "image/png", "not_an_image"),
        ("bomb-30000x30000", _png_header_bomb(30000, 30000), "image/png", "too_large"),
        ("huge-dims-12000x9000", _png_header_bomb(12000, 9000), "image/png", "too_large"),
        ("1x1", _save(Image.new("RGB", (1, 1)), "PNG"), "image/png", "too_small"),
        ("cmyk-jpeg", _save(_photo().convert("CMYK"), "JPEG"), "image/jpeg", "ok"),
        ("16bit-png", _save(sixteen, "PNG"), "image/png", "ok"),
        ("rgba-png", _save(rgba, "PNG"), "image/png", "ok"),
        ("palette-png", _save(_photo().convert("P"), "PNG"), "image/png", "ok"),
        ("animated-gif", gif.getvalue(), "image/png", "unsupported_format"),
        ("animated-webp", webp_anim.getvalue(), "image/webp", "ok"),
        ("exif-rotated", _save(exif_img, "JPEG", exif=exif.tobytes()), "image/jpeg", "ok"),
        ("png-declared-jpeg", png, "image/jpeg", "ok"),
        ("pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\n", "image/jpeg", "not_an_image"),
    ]


def expected_ok(expected: str, code: str) -> bool:
    return code in expected.split("|")
