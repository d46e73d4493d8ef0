"""``/api/docs`` and ``/api/redoc`` in real headless Chromium with every non-loopback request refused (an
offline machine): the pages render from the packaged Swagger UI / ReDoc bundles, and "Try it out" on
``POST /parse`` (multipart form) returns a result. The parser is the test stub: the docs are the point."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from conftest import ROOT, StubParser, encode_jpeg, find_chromium
from humanparse.config import Settings
from humanparse.entries.service import build_service

pytestmark = pytest.mark.browser
CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    import uvicorn
    from humanparse.local.web import build_site

    svc = build_service(Settings(), StubParser(), None)  # no storage needed: /docs and /parse only
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_site(svc.app, ROOT / "frontend"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def offline_page(site_url: str) -> Iterator[tuple[Any, list[str]]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def only_loopback(route: Any) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(f"{route.request.resource_type} {route.request.url}")
            route.abort()

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        ctx = b.new_context(viewport={"width": 1280, "height": 1000})
        ctx.route("**/*", only_loopback)
        yield ctx.new_page(), blocked
        b.close()


def test_swagger_ui_offline_try_it_out_parse(site_url: str, offline_page: tuple[Any, list[str]],
                                            tmp_path: Path) -> None:
    page, blocked = offline_page
    page.goto(site_url + "/api/docs")
    page.wait_for_selector("#operations-default-parse_sync_parse_post", timeout=30_000)
    assert page.locator(".opblock").count() >= 5
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode_jpeg(np.full((96, 64, 3), 128, np.uint8)))
    op = page.locator("#operations-default-parse_sync_parse_post")
    op.locator(".opblock-summary").click()
    op.locator("button.try-out__btn").click()
    op.locator("input[type=file]").set_input_files(str(photo))
    op.locator("button.execute").click()
    body = op.locator(".live-responses-table .response-col_description pre").first
    body.wait_for(timeout=30_000)
    assert '"legend"' in body.inner_text() and '"person_count": 1' in body.inner_text()
    assert op.locator(".live-responses-table tbody .response-col_status").first.inner_text().strip() == "200"
    assert blocked == [], blocked


def test_redoc_offline(site_url: str, offline_page: tuple[Any, list[str]]) -> None:
    page, blocked = offline_page
    page.goto(site_url + "/api/redoc")
    page.wait_for_selector("text=/uploads", timeout=30_000)
    assert page.locator("h2", has_text="Parse Sync").count() >= 1
    # ReDoc's own "powered by" footer logo points at its CDN; it is decoration, everything else is local
    assert [b for b in blocked if not b.startswith("image ")] == [], blocked
