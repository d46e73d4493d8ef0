"""Decoding untrusted bytes: every odd format normalises to RGB uint8; every bad input has its own error."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from conftest import encode_jpeg, encode_png
from humanparse import exceptions as E
from humanparse.pipeline.imageio import decode_image
from PIL import Image


def _img(h: int = 40, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_rgb_png_roundtrip() -> None:
    a = _img()
    d = decode_image(encode_png(a))
    assert d.rgb.dtype == np.uint8 and d.rgb.shape == (40, 60, 3)
    assert np.array_equal(d.rgb, a)


def test_rgba_composited_over_white() -> None:
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:10, :, 3] = 255  # top half opaque red, bottom transparent
    d = decode_image(encode_png(rgba))
    assert tuple(d.rgb[0, 0]) == (255, 0, 0)
    assert tuple(d.rgb[15, 0]) == (255, 255, 255)


def test_palette_grey_cmyk_16bit() -> None:
    pal = Image.fromarray(_img()).convert("P")
    assert decode_image(_save(pal, "PNG")).rgb.shape == (40, 60, 3)
    grey = Image.fromarray(np.full((30, 30), 77, dtype=np.uint8), mode="L")
    assert np.all(decode_image(_save(grey, "PNG")).rgb == 77)
    cmyk = Image.new("CMYK", (30, 30), (0, 255, 255, 0))  # pure red in CMYK
    r = decode_image(_save(cmyk, "JPEG")).rgb
    assert r[..., 0].mean() > 200 and r[..., 1].mean() < 60
    sixteen = Image.fromarray(np.full((30, 30), 65535 // 2, dtype=np.uint16))
    got = decode_image(_save(sixteen, "PNG")).rgb
    assert got.dtype == np.uint8 and abs(int(got[0, 0, 0]) - 128) <= 1


def test_exif_orientation_applied() -> None:
    a = np.zeros((20, 40, 3), dtype=np.uint8)  # landscape
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° CW on display
    d = decode_image(_save(img, "JPEG", exif=exif.tobytes()))
    assert d.rgb.shape[:2] == (40, 20) and d.exif_rotated


def test_animated_webp_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    d = decode_image(buf.getvalue())
    assert d.frames == 2 and d.rgb[0, 0, 0] > 200 and d.rgb[0, 0, 2] < 50


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unpromised_formats_refused_415(fmt: str) -> None:
    with pytest.raises(E.UnsupportedFormat) as info:
        decode_image(_save(Image.fromarray(_img()), fmt))
    assert info.value.http_status == 415 and info.value.code == "unsupported_format"


def _progressive_bomb(scans: int) -> bytes:
    """A small progressive JPEG whose scan script is repeated ``scans`` times over (each extra scan a valid
    refinement-free DC scan of the same data), as the red team's 7000-scan file."""
    base = _save(Image.fromarray(_img(64, 64)), "JPEG", progressive=True, quality=80)
    sos = base.index(b"\xff\xda")
    eoi = base.rindex(b"\xff\xd9")
    first_scan_end = base.index(b"\xff\xda", sos + 2)
    scan = base[sos:first_scan_end]  # the DC scan: re-applying it only redoes work
    return base[:first_scan_end] + scan * scans + base[first_scan_end:eoi] + b"\xff\xd9"


def test_progressive_jpeg_bomb_refused_fast() -> None:
    data = _progressive_bomb(5000)
    t = time.perf_counter()
    with pytest.raises(E.TooManyScans) as info:
        decode_image(data)
    assert time.perf_counter() - t < 2.0 and 400 <= info.value.http_status < 500
    ok = _save(Image.fromarray(_img(64, 64)), "JPEG", progressive=True)  # an ordinary progressive file
    assert decode_image(ok).rgb.shape == (64, 64, 3)


def test_16bit_40mp_png_within_memory() -> None:
    """A 40 MP 16-bit grey PNG (tiny on disk) decodes within the bounds: scaled to the output size, through
    integer arithmetic (it used to cost +1.7 GB and 7.8 s); with a tighter decode budget it is refused."""
    resource = pytest.importorskip("resource")  # POSIX: peak RSS (not on Windows)

    w, h = 7300, 5480
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    row = b"\x00" + b"\x80\x00" * w
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    with pytest.raises(E.ImageTooLarge):
        decode_image(data, max_decode_megabytes=50)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d = decode_image(data)
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert d.rgb.shape[0] * d.rgb.shape[1] <= 12.5e6 and d.source_size == (w, h)
    assert abs(int(d.rgb[10, 10, 0]) - 128) <= 1
    assert grew_mb < 700  # peak growth of this process (measured 534 MB; the float64 path took +1.7 GB)


def test_large_jpeg_decoded_scaled_to_output_size() -> None:
    big = Image.fromarray(_img(40, 60)).resize((6000, 4000))
    data = _save(big, "JPEG", quality=70)
    d = decode_image(data)
    assert (d.rgb.shape[1], d.rgb.shape[0]) == (3000, 2000) and d.source_size == (6000, 4000)
    assert decode_image(data, max_output_megapixels=30).rgb.shape[:2] == (4000, 6000)


def test_100mp_jpeg_header_refused_fast() -> None:
    """A 12000x9000 (108 MP) JPEG header with no data behind it: refused from the header."""
    head = _save(Image.new("RGB", (16, 16)), "JPEG")
    sof = head.index(b"\xff\xc0")
    bomb = head[:sof + 5] + struct.pack(">HH", 9000, 12000) + head[sof + 9:head.index(b"\xff\xda")]
    t = time.perf_counter()
    with pytest.raises(E.ImageTooLarge):
        decode_image(bomb)
    assert time.perf_counter() - t < 0.5


@pytest.mark.parametrize("data,err", [
    (b"", E.EmptyInput),
    (b"hello, I am text pretending to be a jpeg", E.NotAnImage),
    (b"%PDF-1.4\n%\xe2\xe3", E.NotAnImage),
])
def test_garbage(data: bytes, err: type) -> None:
    with pytest.raises(err):
        decode_image(data)


def test_truncated_jpeg_and_png() -> None:
    j = encode_jpeg(_img(200, 200))
    p = encode_png(_img(200, 200))
    for data in (j[: len(j) // 2], p[: len(p) // 2]):
        with pytest.raises((E.TruncatedImage, E.NotAnImage)):
            decode_image(data)


def _bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h, with a tiny compressed body (a decompression bomb)."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * (w + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_fast() -> None:
    data = _bomb_png(30000, 30000)
    assert len(data) < 200_000
    t = time.perf_counter()
    with pytest.raises(E.ImageTooLarge):
        decode_image(data, max_megapixels=40)
    assert time.perf_counter() - t < 1.0  # refused from the header, before decoding pixels


def test_megapixel_cap_and_tiny() -> None:
    with pytest.raises(E.ImageTooLarge):
        decode_image(encode_png(np.zeros((1100, 1000, 3), np.uint8)), max_megapixels=1.0)
    with pytest.raises(E.ImageTooSmall):
        decode_image(encode_png(np.zeros((1, 1, 3), np.uint8)))


def test_disallowed_format() -> None:
    with pytest.raises(E.UnsupportedFormat):
        decode_image(_save(Image.fromarray(_img()), "PPM"))


def test_messages_and_docs_name_the_accepted_formats() -> None:
    """What is decoded (``ALLOWED_FORMATS``), what the 'not an image' / 'not accepted' errors say, and what the
    Python docs promise are the same three formats (the docs once listed GIF, BMP and TIFF as decoded)."""
    from pathlib import Path

    from humanparse.exceptions import NotAnImage, UnsupportedFormat
    from humanparse.pipeline.imageio import ALLOWED_FORMATS

    assert ALLOWED_FORMATS - {"MPO"} == {"JPEG", "PNG", "WEBP"}  # MPO: a phone JPEG with a second frame
    for error in (NotAnImage, UnsupportedFormat):
        assert error.message.endswith("(JPEG, PNG, WebP)"), error.message
    docs = (Path(__file__).resolve().parents[1] / "docs" / "python.md").read_text(encoding="utf-8")
    assert "PNG and WebP; GIF, BMP and TIFF are refused" in docs
