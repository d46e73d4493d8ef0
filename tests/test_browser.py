"""The page in real headless Chromium (Debian's), driven by Playwright.

Two ways in: ``runner`` starts ``local_runner.py serve`` (the real flow: upload, parse, explore), and ``Site``
serves the page's files and a scripted API through Playwright's request routing, so a test can hand the page
exact result files (written by the project's own PNG writer) — the id maps that made person 21 merge into
person 1, a photo bigger than its label map, hostile labels, failed jobs, an API that wants a token.
``HUMANPARSE_PAGE_DIR`` points the ``Site`` tests at another copy of the page (e.g. the previous version, to see
the bug tests fail). Screenshots land in test-artifacts/ for a person to look at. Waits are written as functions:
the page's CSP forbids eval, which Playwright's polling of a string expression needs."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import mimetypes
import os
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browsing import csp_violations, watched
from conftest import PEOPLE_PHOTO, ROOT
from PIL import Image
from runner import Runner

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "test-artifacts"
PAGE_DIR = Path(os.environ.get("HUMANPARSE_PAGE_DIR", ROOT / "frontend"))
ORIGIN = "http://hp.test"
JOB = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("browser") / "data").start()
    yield r
    r.stop()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


# ------------------------------------------------------------------------------------- scripted site
def png(arr: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    from humanparse.pipeline.rendering import png_bytes

    return png_bytes(np.ascontiguousarray(arr, dtype=np.uint8), palette=palette)


def result_files(labels: np.ndarray, persons: np.ndarray, *, legend: list[dict[str, Any]] | None = None,
                 person_ids: list[int] | None = None) -> dict[str, bytes]:
    """label.png / persons.png exactly as the server writes them, and a result.json around them."""
    from humanparse.pipeline.colormap import legend_entries
    from humanparse.pipeline.labels import palette_array
    from humanparse.pipeline.rendering import _person_palette

    ids = person_ids if person_ids is not None else sorted(int(i) for i in np.unique(persons) if i)
    doc = {"width": labels.shape[1], "height": labels.shape[0], "person_count": len(ids),
           "legend": legend if legend is not None else legend_entries(labels),
           "persons": [{"id": i, "bbox": [0, 0, 1, 1], "parts": []} for i in ids]}
    blank = png(np.zeros((*labels.shape, 3), np.uint8))
    buf = io.BytesIO()
    Image.new("RGB", labels.shape[::-1]).save(buf, format="JPEG")
    return {"label.png": png(labels, palette_array()), "persons.png": png(persons, _person_palette()),
            "result.json": json.dumps(doc).encode(), "color.png": blank, "overlay.jpg": buf.getvalue()}


def server_config() -> dict[str, Any]:
    from humanparse.pipeline.colormap import full_legend
    from humanparse.pipeline.labels import PERSON_PALETTE, hex_color

    return {"max_upload_bytes": 15 * 1024 * 1024, "allowed_content_types": ["image/jpeg", "image/png", "image/webp"],
            "labels": full_legend(), "model": "lite", "person_colors": [hex_color(c) for c in PERSON_PALETTE]}


class Site:
    """The page's files and an API answering one job, routed inside the browser (no port, no server)."""

    def __init__(self, page: Any, *, files: dict[str, bytes] | None = None, job: dict[str, Any] | None = None,
                 config_js: dict[str, Any] | None = None, token: str | None = None) -> None:
        self.page, self.files, self.token = page, files or {}, token
        self.job = job or {"job_id": JOB, "status": "done", "elapsed_ms": 1200,
                           "results": {n: f"{ORIGIN}/results/{JOB}/{n}" for n in self.files}}
        self.config_js = "window.HUMANPARSE_CONFIG = " + json.dumps(config_js or {"apiBase": "/api"}) + ";"
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        page.route(ORIGIN + "/**", self._handle)

    def _handle(self, route: Any) -> None:
        req = route.request
        path = re.sub(r"[?#].*", "", req.url[len(ORIGIN):]) or "/"
        self.requests.append((req.method, path, req.headers))
        if path.startswith("/api/"):
            return self._api(route, path[4:])
        if path.startswith("/results/"):
            return route.fulfill(status=200, body=self.files[path.rsplit("/", 1)[1]],
                                 headers={"access-control-allow-origin": ORIGIN})
        if path == "/s3-upload":
            return route.fulfill(status=204)
        if path == "/config.js":
            return route.fulfill(body=self.config_js, content_type="text/javascript")
        f = PAGE_DIR / (path.lstrip("/") or "index.html")
        if not f.is_file():
            return route.fulfill(status=404, body="not found")
        ctype = "text/javascript" if f.suffix == ".js" else mimetypes.guess_type(f.name)[0] or "text/plain"
        return route.fulfill(body=f.read_bytes(), content_type=ctype)

    def _api(self, route: Any, path: str) -> None:
        def answer(status: int, body: dict[str, Any]) -> None:
            route.fulfill(status=status, body=json.dumps(body), content_type="application/json")

        if self.token and route.request.headers.get("authorization") != f"Bearer {self.token}":
            return answer(401, {"error": "unauthorized", "detail": "A bearer token is required."})
        if path == "/config":
            return answer(200, server_config())
        if path == "/uploads":
            return answer(201, {"job_id": JOB, "upload": {"url": ORIGIN + "/s3-upload", "fields": {"key": "k"}}})
        if path == f"/jobs/{JOB}":
            return answer(200, self.job)
        return answer(404, {"error": "not_found", "detail": path})

    def open(self) -> Any:
        self.page.goto(ORIGIN + "/")
        self.page.wait_for_function("() => document.querySelector('#model-line').textContent.length > 0")
        return self.page

    def upload(self, rgb: np.ndarray, *, wait: str = ".job[data-ready='1']") -> Any:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        self.page.set_input_files("#file", {"name": "photo.png", "mimeType": "image/png", "buffer": buf.getvalue()})
        self.page.wait_for_selector(wait, timeout=30_000)
        return self.page.locator(".job").first


def hover_text(page: Any, fx: float, fy: float) -> str:
    box = page.locator(".job canvas.view").bounding_box()
    page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    return str(page.locator(".job .hover").inner_text())


def canvas_rgb(page: Any, x: int, y: int) -> list[int]:
    return list(page.evaluate("([x, y]) => [...document.querySelector('.job canvas.view').getContext('2d')"
                              ".getImageData(x, y, 1, 1).data].slice(0, 3)", [x, y]))


@pytest.fixture()
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    pages: list[Any] = []

    def make(**kw: Any) -> Any:
        page = browser.new_page(**kw)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.close()


# ----------------------------------------------------------------------------------------- real flow
def test_upload_parse_explore(runner: Runner, browser: Any, people_photos: list[Path]) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(runner.base + "/")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
    photo_path = people_photos[2]
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
    # the overlay download is the server's JPEG, named so, and its link gives a JPEG of the photo's size
    over = job.locator(".downloads a", has_text="Overlay")
    assert over.count() == 1 and (over.get_attribute("download") or "").endswith(".overlay.jpg")
    assert "JPEG" in over.inner_text() and "lossy" in (over.get_attribute("title") or "")
    got = page.evaluate("""async (url) => {
        const r = await fetch(url); const b = await r.blob(); const bmp = await createImageBitmap(b);
        return [r.status, r.headers.get('content-type'), bmp.width, bmp.height];
    }""", over.get_attribute("href"))
    assert got == [200, "image/jpeg", w, h], got
    assert not errors, errors
    page.close()


def test_video_upload_plays_with_people_and_downloads(runner: Runner, browser: Any, tmp_path: Path,
                                                     photo: np.ndarray) -> None:
    """A clip dropped on the page: progress by frames, then a colour-map video that plays in headless Chromium
    (readyState >= 2, duration > 0, a frame drawn to a canvas is not blank), the people list from tracks.json and
    the downloads of every output."""
    from test_video import _clip_from_photo, write_clip

    clip = write_clip(tmp_path / "walk.mp4", _clip_from_photo(photo, 15, (192, 144)), fps=10)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(runner.base + "/")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
    page.set_input_files("#file", str(clip))
    page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
    job = page.locator(".job").first
    assert "done" in job.locator(".state").inner_text()
    state = page.evaluate("""async () => {
        const p = document.querySelector('.job').player;
        const v = p.top;
        if (v.readyState < 2) await new Promise((r) => v.addEventListener('loadeddata', r, { once: true }));
        await p.base.play();
        await new Promise((r) => setTimeout(r, 600));
        p.base.pause();
        const c = document.createElement('canvas');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext('2d');
        g.drawImage(v, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
        return { ready: v.readyState, duration: v.duration, w: v.videoWidth, h: v.videoHeight, lit,
                 base: p.base.readyState, t: p.base.currentTime, opacity: v.style.opacity };
    }""")
    assert state["ready"] >= 2 and state["duration"] > 0 and (state["w"], state["h"]) == (192, 144), state
    assert state["lit"] > 0.01 * 192 * 144, state  # the person's colours, not a black frame
    assert state["base"] >= 2 and state["t"] > 0 and state["opacity"] == "0.6", state
    job.locator(".tabs button[data-view='color']").click()
    assert page.evaluate("() => document.querySelector('.job').player.top.style.opacity") == "1"
    job.locator(".tabs button[data-view='original']").click()
    assert page.evaluate("() => document.querySelector('.job').player.top.style.opacity") == "0"
    job.locator(".tabs button[data-view='overlay']").click()
    job.locator(".opacity input").fill("25")
    assert page.evaluate("() => document.querySelector('.job').player.top.style.opacity") == "0.25"
    people = job.locator(".people li[data-person]")
    assert people.count() >= 1
    links = job.locator(".downloads a").evaluate_all("(as) => as.map((a) => a.textContent)")
    assert links == ["Colour video", "Overlay video", "Persons video", "Label maps (zip)", "Tracks JSON", "JSON",
                     "Poster"]
    people.first.locator("input").check()
    shot(page, "video-result.png")
    assert not errors, errors


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
    page.wait_for_function("() => document.querySelectorAll('.job .error:not([hidden])').length >= 2")
    assert "jpeg, png or webp" in page.locator(".job .error").first.inner_text().lower()
    # keyboard: the drop zone is focusable and opens the picker with Enter
    page.evaluate("document.querySelector('#file').addEventListener('click', e => { window.__picked = true; e.preventDefault(); })")
    page.focus("#drop")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__picked === true", timeout=5000)
    page.close()


def test_second_drop_of_the_same_file_is_answered_from_the_cache(runner: Runner, browser: Any,
                                                                 people_photos: list[Path]) -> None:
    """The result cache from the page: it hashes the file (Web Crypto) and sends the hash with POST /uploads; the second drop of
    the same photo shows its result with no upload request at all (the network is watched)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    storage_posts: list[str] = []
    api_bodies: list[dict[str, Any]] = []
    page.on("request", lambda r: storage_posts.append(r.url) if r.method == "POST" and "/api/" not in r.url
            else api_bodies.append(json.loads(r.post_data or "{}")) if r.url.endswith("/api/uploads") else None)
    page.goto(runner.base + "/")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
    photo = people_photos[4]
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.querySelectorAll(\".job[data-ready='1']\").length === 1", timeout=120_000)
    assert len(storage_posts) == 1 and api_bodies[0]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    first = page.locator(".job").first
    assert "from cache" not in first.locator(".state").inner_text()
    first_job, first_width = first.get_attribute("data-job-id"), first.locator("canvas.view").get_attribute("data-width")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.querySelectorAll(\".job[data-ready='1']\").length === 2", timeout=60_000)
    second = page.locator(".job").first  # new cards go on top
    assert "from cache" in second.locator(".state").inner_text() and second.get_attribute("data-cached") == "true"
    assert second.get_attribute("data-job-id") not in (None, first_job)
    assert len(storage_posts) == 1, storage_posts  # no second upload went to the storage
    assert len(api_bodies) == 2 and second.locator("canvas.view").get_attribute("data-width") == first_width
    shot(page, "browser-from-cache.png")
    assert not errors, errors
    page.close()


def test_server_down_message(new_page: Callable[..., Any]) -> None:
    page = new_page()
    Site(page, config_js={"apiBase": "http://127.0.0.1:9"}).open()
    page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('not reachable')")


# ------------------------------------------------------------------------ the named bugs of the page
def test_person_21_is_not_person_1(new_page: Callable[..., Any]) -> None:
    """The person palette repeats after 20 colours: read as colours, person 21 was person 1."""
    labels = np.full((20, 40), 13, np.uint8)  # Face everywhere
    persons = np.ones((20, 40), np.uint8)
    persons[:, 20:] = 21
    page = new_page()
    site = Site(page, files=result_files(labels, persons, person_ids=list(range(1, 22))))
    site.open()
    site.upload(np.zeros((20, 40, 3), np.uint8))
    assert hover_text(page, 0.25, 0.5) == "Face — person 1"
    assert hover_text(page, 0.75, 0.5) == "Face — person 21"
    people = page.locator(".job .people li").all_inner_texts()
    assert len(people) == 21 and people[-1] == "Person 21"
    assert not page.errors, page.errors


@pytest.mark.parametrize("overlay", ["overlay.jpg", "overlay.png"])
def test_overlay_download_of_new_and_old_jobs(new_page: Callable[..., Any], overlay: str) -> None:
    """Jobs stored before the JPEG overlay list overlay.png: the page still offers it, under the name it has."""
    labels = np.full((20, 40), 13, np.uint8)
    files = result_files(labels, np.ones((20, 40), np.uint8))
    if overlay == "overlay.png":
        files["overlay.png"] = files.pop("overlay.jpg")
    page = new_page()
    site = Site(page, files=files)
    site.open()
    job = site.upload(np.zeros((20, 40, 3), np.uint8))
    links = job.locator(".downloads a").evaluate_all("(as) => as.map((a) => [a.textContent, a.download])")
    assert links[-1] == ["Overlay (JPEG)" if overlay == "overlay.jpg" else "Overlay", f"photo.{overlay}"], links
    assert len(links) == 4 and not page.errors, page.errors


def test_photo_larger_than_label_map_is_not_sheared(new_page: Callable[..., Any]) -> None:
    """An 80×60 photo with a 40×30 label map: the photo is drawn on the label map's grid, not read with its width."""
    photo = np.zeros((60, 80, 3), np.uint8)
    photo[:, :40] = (255, 0, 0)
    photo[:, 40:] = (0, 0, 255)
    zeros = np.zeros((30, 40), np.uint8)
    page = new_page()
    site = Site(page, files=result_files(zeros, zeros))
    site.open()
    site.upload(photo)
    page.locator(".job button[data-view='original']").click()
    page.wait_for_timeout(100)
    for y in (2, 10, 20, 28):
        left, right = canvas_rgb(page, 5, y), canvas_rgb(page, 35, y)
        assert left[0] > 200 and left[2] < 50, (y, left)
        assert right[2] > 200 and right[0] < 50, (y, right)


def test_rendering_allocates_nothing_per_pixel(new_page: Callable[..., Any]) -> None:
    """Re-rendering a 1000×1000 result (slider moves) must not allocate per pixel: Chromium's sampling heap
    profiler, counting objects already collected too, sees well under one byte per pixel per render."""
    n = 1000
    labels = np.zeros((n, n), np.uint8)
    labels[:, n // 2:] = 5  # Upper-clothes on the right half
    persons = (labels > 0).astype(np.uint8)
    page = new_page()
    site = Site(page, files=result_files(labels, persons))
    site.open()
    site.upload(np.full((n, n, 3), 128, np.uint8), wait=".job[data-ready='1']")
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.enable")
    renders = 6
    slide = """async (v) => {
        const s = document.querySelector('.job .opacity input');
        s.value = String(v); s.dispatchEvent(new Event('input'));
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    }"""
    page.evaluate(slide, 10)  # warm up
    cdp.send("HeapProfiler.startSampling", {"samplingInterval": 1024, "includeObjectsCollectedByMajorGC": True,
                                             "includeObjectsCollectedByMinorGC": True})
    for k in range(renders):
        page.evaluate(slide, 20 + 10 * k)
    profile = cdp.send("HeapProfiler.stopSampling")["profile"]
    allocated = sum(s["size"] for s in profile["samples"])
    assert allocated < 0.5 * n * n * renders, f"{allocated / renders / 1e6:.1f} MB allocated per render"
    assert canvas_rgb(page, 10, 10) == [128, 128, 128]  # background shows the photo


def test_no_object_url_left_behind(new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.add_init_script("""(() => {
        window.__urls = new Set();
        const make = URL.createObjectURL, drop = URL.revokeObjectURL;
        URL.createObjectURL = (o) => { const u = make(o); window.__urls.add(u); return u; };
        URL.revokeObjectURL = (u) => { window.__urls.delete(u); drop(u); };
    })()""")
    labels = np.full((10, 10), 2, np.uint8)
    site = Site(page, files=result_files(labels, np.ones((10, 10), np.uint8)))
    site.open()
    site.upload(np.zeros((10, 10, 3), np.uint8))
    site.upload(np.zeros((10, 10, 3), np.uint8))  # a second result on the same page
    page.wait_for_function("() => document.querySelectorAll(\".job[data-ready='1']\").length === 2")
    assert page.evaluate("window.__urls.size") == 0


# ------------------------------------------------------------------------------------ stored XSS
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def test_hostile_result_labels_do_not_execute(new_page: Callable[..., Any]) -> None:
    """Replays the attack: whoever can write results/<job>/result.json puts markup into the legend."""
    labels = np.full((10, 10), 2, np.uint8)
    legend = [{"id": 2, "name": HOSTILE, "color": 'red"><img src=x onerror="window.__pwned=2">', "share": 1.0}]
    page = new_page()
    site = Site(page, files=result_files(labels, np.ones((10, 10), np.uint8), legend=legend))
    site.open()
    site.upload(np.zeros((10, 10, 3), np.uint8))
    page.wait_for_timeout(300)  # an injected <img> would have errored by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".job .legend img").count() == 0
    assert HOSTILE in page.locator(".job .legend li").first.inner_text()  # shown as the text it is


def test_page_sources_never_parse_html_from_strings() -> None:
    """The stored-XSS fix as a rule over the sources: no HTML parsing from strings anywhere in the page's scripts."""
    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|createContextualFragment")
    scripts = sorted((ROOT / "frontend").rglob("*.js"))
    assert len(scripts) >= 8
    for f in scripts:
        assert not sinks.search(f.read_text()), f


def test_csp_forbids_inline_script(new_page: Callable[..., Any]) -> None:
    """Second wall: even markup that got in cannot run inline handlers or inline scripts."""
    page = new_page()
    Site(page).open()
    assert "script-src 'self'" in page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    page.evaluate("""() => {
        window.__violations = [];
        document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));
        document.body.insertAdjacentHTML('beforeend', '<img src=x onerror="window.__pwned=1">');
        const s = document.createElement('script'); s.textContent = 'window.__pwned = 2'; document.body.append(s);
    }""")
    page.wait_for_function("() => window.__violations.length >= 2")
    assert page.evaluate("window.__pwned") is None


# ------------------------------------------------------------------------------------ failed jobs, auth
@pytest.mark.parametrize("field", ["detail", "reason"])  # reason: status.json written by older versions
def test_failed_job_shows_its_detail(new_page: Callable[..., Any], field: str) -> None:
    page = new_page()
    job = {"job_id": JOB, "status": "failed", "error": "parse_timeout", field: "The parse took longer than 60 s."}
    site = Site(page, job=job)
    site.open()
    site.upload(np.zeros((10, 10, 3), np.uint8), wait=".job .error:not([hidden])")
    assert page.locator(".job .error").inner_text() == "The parse took longer than 60 s."


def test_token_is_sent_as_bearer_to_the_api_only(new_page: Callable[..., Any]) -> None:
    page = new_page()
    labels = np.full((10, 10), 2, np.uint8)
    site = Site(page, files=result_files(labels, np.ones((10, 10), np.uint8)), config_js={"apiBase": "/api",
                                                                                           "auth": True}, token="s3cret")
    site.open()
    page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('token')")
    assert page.locator("#auth").is_visible()
    page.fill("#token", "s3cret")
    page.click("#token-form button")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
    site.upload(np.zeros((10, 10, 3), np.uint8))
    assert page.evaluate("sessionStorage.getItem('humanparse.token')") == "s3cret"
    api_calls = [h for m, p, h in site.requests if p.startswith("/api/") and m != "OPTIONS"]
    assert api_calls and api_calls[-1].get("authorization") == "Bearer s3cret"
    others = [h for m, p, h in site.requests if p.startswith(("/s3-upload", "/results/"))]
    assert others and not any("authorization" in h for h in others)


# --------------------------------------------------------------------------------------- PNG decoder
def _filtered_png(ids: np.ndarray, depth: int, palette: bool) -> bytes:
    """A PNG written by hand with every row filter type (0–4 in turn), to test un-filtering beyond Pillow's choice."""
    h, w = ids.shape
    per = 8 // depth
    packed = np.zeros((h, (w * depth + 7) // 8), np.uint8)
    for x in range(w):
        packed[:, x // per] |= (ids[:, x].astype(np.uint8) << (8 - depth * (1 + x % per))).astype(np.uint8)
    raw, prev = b"", np.zeros(packed.shape[1], np.int32)
    for y in range(h):
        row, f = packed[y].astype(np.int32), y % 5
        left = np.concatenate([[0], row[:-1]])
        upleft = np.concatenate([[0], prev[:-1]])
        if f == 0:
            out = row
        elif f == 1:
            out = row - left
        elif f == 2:
            out = row - prev
        elif f == 3:
            out = row - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            out = row - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        raw += bytes([f]) + (out % 256).astype(np.uint8).tobytes()
        prev = row

    def chunk(t: bytes, d: bytes) -> bytes:
        return len(d).to_bytes(4, "big") + t + d + zlib.crc32(t + d).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([depth, 3 if palette else 0, 0, 0, 0])
    plte = chunk(b"PLTE", bytes(i % 256 for i in range(3 * (1 << depth)))) if palette else b""
    comp = zlib.compress(raw)
    idats = chunk(b"IDAT", comp[:7]) + chunk(b"IDAT", comp[7:])  # split: the decoder must join IDATs
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + plte + idats + chunk(b"IEND", b"")


def test_png_decoder_reads_ids(new_page: Callable[..., Any]) -> None:
    page = new_page()
    Site(page).open()
    rng = np.random.default_rng(0)
    cases = [(depth, pal) for depth in (1, 2, 4, 8) for pal in (True, False)]
    for depth, pal in cases:
        ids = rng.integers(0, 1 << depth, size=(13, 37)).astype(np.uint8)
        data = _filtered_png(ids, depth, pal)
        scale = 1 if pal else 255 // ((1 << depth) - 1)  # Pillow widens low-depth grey to 0–255
        back = Image.open(io.BytesIO(data))
        assert np.array_equal(np.asarray(back if pal else back.convert("L")), ids * scale)  # the file is valid
        got = page.evaluate("""async (b64) => {
            const { decodeIndexedPng } = await import('/js/png.js');
            const d = await decodeIndexedPng(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
            return [d.width, d.height, Array.from(d.data)];
        }""", base64.b64encode(data).decode())
        assert got[:2] == [37, 13] and np.array_equal(np.array(got[2]).reshape(13, 37), ids), (depth, pal)
    # Pillow's own palette PNG, as the server writes it (person ids up to 255)
    big = rng.integers(0, 256, size=(31, 29)).astype(np.uint8)
    from humanparse.pipeline.rendering import _person_palette

    got = page.evaluate("""async (b64) => {
        const { decodeIndexedPng } = await import('/js/png.js');
        const d = await decodeIndexedPng(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
        return [Array.from(d.data), Array.from(d.palette.slice(0, 6))];
    }""", base64.b64encode(png(big, _person_palette())).decode())
    assert np.array_equal(np.array(got[0]).reshape(31, 29), big)
    assert got[1][3:6] == list(_person_palette()[1])


# ------------------------------------------------------------ downloads, a page that keeps its work, a clean console


def open_page(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.wait_for_function("() => document.querySelector('#model-line').textContent.length > 0")


def test_downloads_save_named_files_and_the_page_stays(runner: Runner, browser: Any, tmp_path: Path) -> None:
    """Each download link saves ``<photo stem>.<file>`` with the right content, and the result card is still
    there afterwards (a link used to open the raw file from the bucket in place of the page)."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watched(page)
    open_page(page, runner.base)
    page.set_input_files("#file", str(PEOPLE_PHOTO))
    page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
    links = page.locator(".job .downloads a")
    names = links.evaluate_all("(as) => as.map((a) => a.download)")
    assert names == ["astronaut.color.png", "astronaut.label.png", "astronaut.result.json",
                     "astronaut.overlay.jpg"], names
    url = page.url
    for i, name in enumerate(names):
        with page.expect_download(timeout=30_000) as info:
            links.nth(i).click()
        got = info.value
        assert got.suggested_filename == name
        saved = tmp_path / name
        got.save_as(saved)
        body = saved.read_bytes()
        if name.endswith(".png"):
            assert body[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(saved).size == Image.open(PEOPLE_PHOTO).size
        elif name.endswith(".jpg"):
            assert body[:3] == b"\xff\xd8\xff"
        else:
            assert json.loads(body)["person_count"] >= 1
        assert page.url == url and page.locator(".job[data-ready='1']").count() == 1
    assert problems == [] and csp_violations(page) == []
    context.close()


def test_reload_back_and_a_reopened_tab_keep_the_results(runner: Runner, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watched(page)
    open_page(page, runner.base)
    page.set_input_files("#file", str(PEOPLE_PHOTO))
    page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
    job_id = page.locator(".job").first.get_attribute("data-job-id")
    assert job_id

    def shows_the_result(p: Any) -> None:
        p.wait_for_selector(f".job[data-job-id='{job_id}'][data-ready='1']", timeout=60_000)
        card = p.locator(".job").first
        assert card.locator(".name").inner_text() == "astronaut.jpg"
        assert card.locator(".legend li").count() >= 3 and card.locator(".downloads a").count() == 4
        assert card.locator("button[data-view='original']").is_visible()  # the photo was kept in the browser
        assert card.locator(".downloads a").first.get_attribute("download") == "astronaut.color.png"

    page.reload()
    shows_the_result(page)
    page.goto(runner.base + "/api/docs")
    page.go_back()
    shows_the_result(page)
    assert problems == [] and csp_violations(page) == []
    page.close()
    reopened = context.new_page()  # a closed tab opened again: same browser profile, new page
    problems = watched(reopened)
    open_page(reopened, runner.base)
    shows_the_result(reopened)
    assert reopened.locator(".job").count() == 1
    # a job the server no longer has says so; Remove forgets it for good
    reopened.evaluate("""() => { const l = JSON.parse(localStorage.getItem('humanparse.jobs.keys'));
        l.push({jobId: 'ffffffffffffffffffffffffffffffff', name: 'old.jpg', type: 'image/jpeg'});
        localStorage.setItem('humanparse.jobs.keys', JSON.stringify(l)); }""")
    reopened.reload()
    gone = reopened.locator(".job[data-expired='true']")
    gone.wait_for(timeout=30_000)
    assert "no longer stored" in gone.locator(".error").inner_text()
    gone.locator(".forget").click()
    reopened.reload()
    shows_the_result(reopened)
    assert reopened.locator(".job").count() == 1
    context.close()


def test_no_console_error_or_csp_violation_in_any_state(runner: Runner, browser: Any, tmp_path: Path,
                                                       new_page: Callable[..., Any]) -> None:
    """Empty page, a photo's result, a video's result, a failed upload, and a deployment that wants a token:
    not one console error and not one securitypolicyviolation event (the page's CSP is strict)."""
    from test_video import _clip_from_photo, write_clip

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = watched(page)
    open_page(page, runner.base)  # empty
    page.set_input_files("#file", str(PEOPLE_PHOTO))  # result
    page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
    page.locator(".job .tabs button[data-view='original']").click()
    rgb = np.asarray(Image.open(PEOPLE_PHOTO).convert("RGB"))
    clip = write_clip(tmp_path / "walk.mp4", _clip_from_photo(rgb, 8, (160, 120)), fps=8)
    page.set_input_files("#file", str(clip))  # video
    page.wait_for_function("() => document.querySelectorAll(\".job[data-ready='1']\").length === 2", timeout=120_000)
    page.set_input_files("#file", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"})  # error
    page.wait_for_selector(".job .error:not([hidden])", timeout=60_000)
    assert problems == [] and csp_violations(page) == [], (problems, csp_violations(page))
    page.close()
    # a deployment with a token: the field is asked for first, then the page works with it
    token_page = new_page()
    problems = watched(token_page)
    site = Site(token_page, files=result_files(np.full((10, 10), 2, np.uint8), np.ones((10, 10), np.uint8)),
                config_js={"apiBase": "/api", "auth": True}, token="s3cret")
    token_page.goto(ORIGIN + "/")
    token_page.wait_for_selector("#auth[open]")
    token_page.fill("#token", "s3cret")
    token_page.click("#token-form button")
    token_page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
    site.upload(np.zeros((10, 10, 3), np.uint8))
    assert problems == [] and csp_violations(token_page) == [], (problems, csp_violations(token_page))
