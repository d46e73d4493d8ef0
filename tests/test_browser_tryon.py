"""The page's try-on tab in real headless Chromium (Debian's), driven by Playwright, against ``local_runner.py
serve`` with the real lite model: upload the shipped photo, open the tab, switch the category, download the mask
and the agnostic image as named files; no console error, no CSP violation, and no second parse (the server draws
the images from the job's stored parse and photo: GET /jobs/{id}/tryon, the photo never sent again). A 12 MP phone
JPEG (over POST /parse's 4 MB body cap, its agnostic PNG over the 6 MB response cap) works the same way. Waits are
functions or selectors: the page's CSP forbids eval."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browsing import watched
from conftest import PEOPLE_PHOTO
from PIL import Image
from runner import Runner
from test_job_tryon import PHONE, phone_photo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("browser-tryon") / "data").start()
    yield r
    r.stop()


def canvas_stats(page: Any, selector: str) -> dict[str, Any]:
    """Size of a canvas and its count of white and of mid-grey (128) pixels."""
    return dict(page.locator(selector).evaluate("""(c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let white = 0, grey = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 255) white++;
            if (d[i] === 128 && d[i + 1] === 128 && d[i + 2] === 128) grey++;
        }
        return {width: c.width, height: c.height, white, grey};
    }"""))


def download(page: Any, button: Any, folder: Path) -> Path:
    with page.expect_download(timeout=30_000) as info:
        button.click()
    got = info.value
    path = folder / got.suggested_filename
    got.save_as(path)
    return path


def test_tryon_tab_shows_switches_and_downloads(runner: Runner, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watched(page)
    drawn: list[str] = []
    page.on("response", lambda r: drawn.append(r.headers.get("x-humanparse-tryon", "?"))
            if "/tryon?" in r.url or "/api/parse" in r.url else None)
    page.goto(runner.base + "/")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.length > 0")
    page.set_input_files("#file", str(PEOPLE_PHOTO))
    page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
    job = page.locator(".job").first
    assert job.locator(".tryon").is_hidden()
    job.locator(".tabs button[data-view='tryon']").click()
    page.wait_for_selector(".job .tryon[data-ready='upper_body.p1']", timeout=60_000)
    assert job.locator(".stage").is_hidden() and job.locator(".tryon").is_visible()
    assert job.locator(".tryon-person option").all_text_contents() == ["Person 1"]
    w, h = Image.open(PEOPLE_PHOTO).size
    upper = canvas_stats(page, ".job .tryon-mask")
    agn = canvas_stats(page, ".job .tryon-agnostic")
    assert (upper["width"], upper["height"]) == (w, h) and upper["white"] > 1000
    assert agn["grey"] >= upper["white"]  # the agnostic image is grey where the mask is white

    job.locator(".tryon-category").select_option("full_body")
    page.wait_for_selector(".job .tryon[data-ready='full_body.p1']", timeout=60_000)
    full = canvas_stats(page, ".job .tryon-mask")
    assert full["white"] > upper["white"]  # the whole outfit: more than the top alone

    saved = download(page, job.locator(".tryon-save[data-image='mask']"), tmp_path)
    assert saved.name == "astronaut.tryon.full_body.p1.mask.png"
    mask = Image.open(io.BytesIO(saved.read_bytes()))
    assert mask.format == "PNG" and mask.mode == "L" and mask.size == (w, h)
    assert set(np.unique(np.asarray(mask))) == {0, 255} and int((np.asarray(mask) == 255).sum()) == full["white"]
    saved = download(page, job.locator(".tryon-save[data-image='agnostic']"), tmp_path)
    assert saved.name == "astronaut.tryon.full_body.p1.agnostic.png" and Image.open(saved).mode == "RGB"

    job.locator(".tabs button[data-view='overlay']").click()  # back to the parse
    assert job.locator(".stage").is_visible() and job.locator(".tryon").is_hidden()
    assert drawn == ["drawn"] * 4, drawn  # two images per category, each from the job's stored parse
    assert problems == [] and list(page.evaluate("() => window.__csp || []")) == []
    context.close()


def test_tryon_tab_with_a_12mp_phone_photo(runner: Runner, browser: Any, tmp_path: Path) -> None:
    """Uploaded through the presigned POST; the tab draws the mask (a PNG answer) and the agnostic image (over the
    response cap: a signed link, fetched from the results bucket) at the photo's full size."""
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(phone_photo())
    assert photo.stat().st_size > 4 * 1024 * 1024
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watched(page)
    asked: list[tuple[str, int, str]] = []
    page.on("response", lambda r: asked.append((r.url.split("?")[0].rsplit("/", 1)[-1], r.status,
                                                r.headers.get("content-type", ""))) if "/tryon?" in r.url else None)
    page.goto(runner.base + "/")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.length > 0")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector(".job[data-ready='1']", timeout=180_000)
    job = page.locator(".job").first
    job.locator(".tabs button[data-view='tryon']").click()
    page.wait_for_selector(".job .tryon[data-ready='upper_body.p1']", timeout=120_000)
    mask = canvas_stats(page, ".job .tryon-mask")
    agn = canvas_stats(page, ".job .tryon-agnostic")
    assert (mask["width"], mask["height"]) == PHONE and mask["white"] > 0.01 * PHONE[0] * PHONE[1]
    assert (agn["width"], agn["height"]) == PHONE and agn["grey"] >= mask["white"]
    # the mask came as a PNG, the agnostic image as a link to the stored file
    assert [(s, t.split(";")[0]) for _, s, t in asked] == [(200, "image/png"), (200, "application/json")], asked
    assert problems == [] and list(page.evaluate("() => window.__csp || []")) == []
    context.close()
