"""Shared fixtures. Real parts only: moto's HTTP server for S3/SQS, the trained lite ONNX models (shipped in the
package), a random-weight M2FP folder in ModelScope's exact layout. Photos of people come from the project itself
(the public-domain photo it ships, and photos made from it), so a fresh clone runs every test; only tests that
score against CIHP's ground-truth labels need ``../shared/data/cihp`` (the ``cihp`` fixture)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HUMANPARSE_TEST_SHARED", ROOT.parent / "shared"))
CIHP = SHARED / "data" / "cihp"
EVENTS = Path(__file__).parent / "events"
# public domain (NASA), packaged for calibration: one person, 384x384
PEOPLE_PHOTO = ROOT / "function" / "humanparse" / "calibration" / "astronaut.jpg"


def find_chromium() -> str:
    """Chrome or Chromium where each platform keeps it: ``HUMANPARSE_CHROMIUM``, then on PATH (Debian's
    ``chromium``, ``google-chrome``), then the usual install places of macOS and Windows, then a browser
    ``playwright install chromium`` fetched. The Debian path when none is found (it does not exist: tests skip)."""
    import glob
    import shutil
    import sys

    named = os.environ.get("HUMANPARSE_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        if found := shutil.which(name):
            return found
    home = Path.home()
    if sys.platform == "darwin":
        places = ["/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                  "/Applications/Chromium.app/Contents/MacOS/Chromium",
                  str(home / "Library/Caches/ms-playwright/chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium")]
    elif sys.platform == "win32":
        roots = [os.environ.get(v, "") for v in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        places = [f"{r}\\Google\\Chrome\\Application\\chrome.exe" for r in roots if r]
        places.append(str(home / "AppData/Local/ms-playwright/chromium-*/chrome-win*/chrome.exe"))
    else:
        places = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium",
                  str(home / ".cache/ms-playwright/chromium-*/chrome-linux*/chrome")]
    for place in places:
        hits = sorted(glob.glob(place))
        if hits:
            return hits[-1]
    return "/usr/bin/chromium"


def cihp_images() -> list[Path]:
    return sorted((CIHP / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The folder of the two lite ONNX models: the package's own copy (no ../shared needed)."""
    from humanparse.models import packaged_lite_dir

    return packaged_lite_dir()


@pytest.fixture(scope="session")
def cihp() -> Path:
    """CIHP photos with their ground-truth labels: only for tests that score against those labels."""
    if not cihp_images():
        pytest.skip(f"CIHP ground truth not present ({CIHP}): accuracy against labels not checked")
    return CIHP


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """(384, 384, 3) uint8 RGB: the shipped photo of a person."""
    return np.asarray(Image.open(PEOPLE_PHOTO).convert("RGB"))


def make_people_photos(folder: Path) -> list[Path]:
    """Five different JPEGs of people made from the shipped photo (different bytes, sizes and framing): the
    photo, mirrored, a wide 2-person collage, a small one and a tall crop. Returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.open(PEOPLE_PHOTO).convert("RGB")
    pair = Image.new("RGB", (2 * im.width + 40, im.height), (90, 100, 110))
    pair.paste(im, (0, 0))
    pair.paste(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (im.width + 40, 0))
    made = {"person.jpg": im, "mirrored.jpg": im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "two.jpg": pair,
            "small.jpg": im.resize((200, 200)), "tall.jpg": im.crop((60, 0, 324, 384))}
    for name, picture in made.items():
        picture.save(folder / name, quality=90)
    return [folder / n for n in made]


@pytest.fixture(scope="session")
def people_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_people_photos(tmp_path_factory.mktemp("people"))


@pytest.fixture(scope="session")
def m2fp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from m2fp_random import make_random_m2fp_folder

    return make_random_m2fp_folder(tmp_path_factory.mktemp("m2fp") / "cv_resnet101_image-multiple-human-parsing")


@pytest.fixture(scope="session")
def m2fp_parser(m2fp_dir: Path) -> Any:
    from humanparse.engine.m2fp import build_m2fp

    return build_m2fp(m2fp_dir, precision="fp32")


@pytest.fixture(scope="session")
def lite_parser(shared_models: Path) -> Any:
    from humanparse.engine.lite import LiteParser, find_lite_models

    return LiteParser(*find_lite_models([shared_models]), threads=2)


class StubParser:
    """A tiny deterministic ``Parser`` for adapter tests (HTTP, S3, CLI), where the model is not the point.
    One person in a centred box (rows h/8..7h/8, columns w/4..3w/4): the top fifth face (13), the next two
    fifths upper clothes (5), the rest pants (9); background elsewhere. Any (H, W, 3) uint8 input, O(H*W)."""

    def __init__(self) -> None:
        from humanparse.engine.types import ModelInfo

        self.info = ModelInfo(kind="stub", model_id="stub", supported_labels=(0, 5, 9, 13), notes="test stub")
        self.calls = 0

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> Any:
        from humanparse.engine.persons import persons_from_masks
        from humanparse.engine.types import ParseResult

        self.calls += 1
        h, w = rgb.shape[:2]
        label = np.zeros((h, w), np.uint8)
        y0, y1, x0, x1 = h // 8, h - h // 8, w // 4, w - w // 4
        span = max(1, y1 - y0)
        rows = np.arange(h)[:, None]
        box = (rows >= y0) & (rows < y1) & (np.arange(w)[None, :] >= x0) & (np.arange(w)[None, :] < x1)
        part = np.where(rows < y0 + span // 5, 13, np.where(rows < y0 + 3 * span // 5, 5, 9)).astype(np.uint8)
        label[box] = np.broadcast_to(part, (h, w))[box]
        person_map, persons = persons_from_masks(label, [box], [0.9])
        return ParseResult(label, person_map, persons, self.info, {"parse": 0.0})


@pytest.fixture()
def stub_parser() -> StubParser:
    return StubParser()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from humanparse.local.s3local import EmbeddedS3

    srv = EmbeddedS3()
    srv.start()
    yield srv.endpoint
    srv.stop()


@pytest.fixture()
def aws(moto_server: str, request: pytest.FixtureRequest) -> Any:
    """Fresh buckets (unique names per test) on the shared moto server, and an S3 client bound to it."""
    import uuid

    from humanparse.local.s3local import LocalAws

    local = LocalAws(moto_server, "us-east-1")
    s3 = local.client("s3")
    suffix = uuid.uuid4().hex[:10]
    up, out = f"up-{suffix}", f"out-{suffix}"
    s3.create_bucket(Bucket=up)
    s3.create_bucket(Bucket=out)
    return {"s3": s3, "upload_bucket": up, "results_bucket": out, "endpoint": moto_server, "local": local}


def encode_png(arr: np.ndarray, **kw: Any) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def encode_jpeg(arr: np.ndarray, **kw: Any) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (Playwright driving the system's browser: no download)."""
    chromium = find_chromium()
    if not Path(chromium).exists():
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()
