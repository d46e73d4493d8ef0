"""The page in real headless Chromium (Debian's), driven by Playwright, against ``local_runner.py``.
Screenshots land in test-artifacts/ for a person to look at."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from PIL import Image
from runner import Runner

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("browser") / "data").start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_upload_parse_explore(runner: Runner, browser: Any, cihp: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(runner.base + "/")
    page.wait_for_function("document.querySelector('#model-line').textContent.includes('Model')")
    photo_path = cihp / "images" / "0005008.jpg"
    w, h = Image.open(photo_path).size
    page.set_input_files("#file", str(photo_path))
    page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
    job = page.locator(".job").first
    assert "done" in job.locator(".state").inner_text()
    canvas = job.locator("canvas.view")
    assert (canvas.get_attribute("data-width"), canvas.get_attribute("data-height")) == (str(w), str(h))
    names = job.locator(".legend li").all_inner_texts()
    assert len(names) >= 3 and any("Face" in n for n in names) and all("%" in n for n in names)
    # hover a pixel the engine labelled as a person part: the page must name that part
    lab = page.evaluate("""async () => {
        const j = document.querySelector('.job').dataset.jobId;
        const r = await (await fetch('/api/jobs/' + j)).json();
        const d = await (await fetch(r.results['result.json'])).json();
        return d.persons[0];
    }""")
    x0, y0, x1, y1 = lab["bbox"]
    box = canvas.bounding_box()
    assert box is not None
    # scan the first person's box for a pixel whose hover text names a part of that person
    named = None
    for fy in (0.2, 0.35, 0.5, 0.65):
        for fx in (0.5, 0.4, 0.6):
            px, py = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
            page.mouse.move(box["x"] + px * box["width"] / w, box["y"] + py * box["height"] / h)
            text = job.locator(".hover").inner_text()
            if text != "Background" and "person" in text:
                named = text
                break
        if named:
            break
    assert named is not None, "hovering inside a person never named a part"
    part_names = {p["name"] for p in lab["parts"]}
    assert named.split(" — ")[0] in {n.split("  ")[0] for n in names} | part_names
    shot(page, "browser-result.png")
    # opacity slider and toggles change what is drawn
    before = canvas.screenshot()
    job.locator(".opacity input").fill("100")
    job.locator(".legend input").first.uncheck()
    after = canvas.screenshot()
    assert before != after
    job.locator("button[data-view='color']").click()
    shot(page, "browser-colormap.png")
    links = job.locator(".downloads a")
    assert links.count() == 4 and "color.png" in (links.first.get_attribute("download") or "")
    assert not errors, errors
    page.close()


def test_non_image_shows_error_and_retry(runner: Runner, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # phone width
    page.goto(runner.base + "/")
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo")
    page.set_input_files("#file", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": fake.read_bytes()})
    page.wait_for_selector(".job .error:not([hidden])", timeout=60_000)
    msg = page.locator(".job .error").inner_text()
    assert "not an image" in msg.lower()
    assert page.locator(".job .retry").is_visible()
    shot(page, "browser-error-phone.png")
    # wrong type is refused before upload, in plain words
    page.set_input_files("#file", {"name": "doc.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4"})
    page.wait_for_function("document.querySelectorAll('.job .error:not([hidden])').length >= 2")
    assert "jpeg, png or webp" in page.locator(".job .error").first.inner_text().lower()
    # keyboard: the drop zone is focusable and opens the picker with Enter
    page.evaluate("document.querySelector('#file').addEventListener('click', e => { window.__picked = true; e.preventDefault(); })")
    page.focus("#drop")
    page.keyboard.press("Enter")
    page.wait_for_function("window.__picked === true", timeout=5000)
    page.close()


def test_server_down_message(browser: Any, tmp_path: Path) -> None:
    page = browser.new_page()
    site = tmp_path / "site"
    shutil.copytree(ROOT / "frontend", site)
    (site / "config.js").write_text('window.HUMANPARSE_CONFIG = {apiBase: "http://127.0.0.1:9"};')
    page.goto((site / "index.html").as_uri())
    page.wait_for_function("document.querySelector('#model-line').textContent.includes('not reachable')")
    page.close()
