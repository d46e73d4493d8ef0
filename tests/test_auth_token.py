"""Who may call it: with a token set (``Settings.api_token`` / ``serve --token``) every API call but
/healthz needs ``Authorization: Bearer <token>``, else 401 ``{"error": "unauthorized", "detail": ...}`` — in
the app (Lambda's Mangum entry and TestClient alike), and in ``local_runner.py`` as a user runs it, page included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import EVENTS, PEOPLE_PHOTO, encode_jpeg, find_chromium
from humanparse.entries.service import build_service
from runner import Runner
from test_lambda_s3 import settings_for

TOKEN = "s3cr3t-token_with.chars~"
JOB = "0123456789abcdef0123456789abcdef"
PROTECTED = [("get", "/config", None), ("post", "/uploads", {"content_type": "image/jpeg"}),
             ("get", f"/jobs/{JOB}", None), ("post", "/parse", None)]


def assert_401(status: int, body: Any, headers: Any = None) -> None:
    assert status == 401, body
    assert body["error"] == "unauthorized" and isinstance(body["detail"], str) and body["detail"]
    if headers is not None:
        assert headers.get("www-authenticate", "").lower() == "bearer"


# --------------------------------------------------------------------------------------------- the app
@pytest.fixture()
def client(aws: dict[str, Any], stub_parser: Any) -> Any:
    from fastapi.testclient import TestClient

    svc = build_service(settings_for(aws, api_token=TOKEN), stub_parser, aws["s3"])
    return TestClient(svc.app)


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic " + TOKEN, f"Bearer {TOKEN}x", "Bearer ", TOKEN])
def test_api_refuses_without_the_token(client: Any, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    for method, path, body in PROTECTED:
        r = client.request(method, path, json=body, headers=headers)
        assert_401(r.status_code, r.json(), r.headers)
    assert client.get("/healthz", headers=headers).status_code == 200  # health stays open


def test_api_answers_with_the_token(client: Any, photo: Any) -> None:
    h = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/config", headers=h).status_code == 200
    up = client.post("/uploads", json={"content_type": "image/jpeg"}, headers=h)
    assert up.status_code == 201, up.text
    assert client.get(f"/jobs/{up.json()['job_id']}", headers=h).status_code in (200, 404)
    r = client.post("/parse", content=encode_jpeg(photo[:120, :100]), headers={**h, "content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["person_count"] == 1
    assert client.get("/config", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200  # scheme: any case


def test_no_token_set_means_open(aws: dict[str, Any], stub_parser: Any) -> None:
    from fastapi.testclient import TestClient

    for token in (None, ""):
        svc = build_service(settings_for(aws, api_token=token), stub_parser, aws["s3"])
        assert TestClient(svc.app).get("/config").status_code == 200


def test_lambda_entry_checks_the_same(aws: dict[str, Any], stub_parser: Any) -> None:
    """The same dependency behind Mangum, on a real API Gateway v2 payload."""
    svc = build_service(settings_for(aws, api_token=TOKEN), stub_parser, aws["s3"])
    ev = json.loads((EVENTS / "apigw-v2-post-uploads.json").read_text(encoding="utf-8"))
    out = svc.handler(ev, None)
    assert_401(out["statusCode"], json.loads(out["body"]))
    ev["headers"]["authorization"] = f"Bearer {TOKEN}"
    out = svc.handler(ev, None)
    assert out["statusCode"] == 201 and json.loads(out["body"])["job_id"]


# ------------------------------------------------------------------------------------- the local runner
@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("auth") / "data", "--token", TOKEN).start()
    yield r
    r.stop()


def wait_done(base: str, job: str, headers: dict[str, str], timeout: float = 300) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j: dict[str, Any] = requests.get(f"{base}/api/jobs/{job}", headers=headers, timeout=30).json()
        if j.get("status") in ("done", "failed"):
            return j
        time.sleep(0.25)
    raise TimeoutError(job)


def test_runner_token_gate_and_whole_flow(runner: Runner) -> None:
    base = runner.base
    for method, path, body in PROTECTED:
        r = requests.request(method, base + "/api" + path, json=body, timeout=30)
        assert_401(r.status_code, r.json(), r.headers)
        r = requests.request(method, base + "/api" + path, json=body, headers={"Authorization": "Bearer no"},
                             timeout=30)
        assert_401(r.status_code, r.json())
    assert requests.get(base + "/api/healthz", timeout=30).status_code == 200
    assert '"auth": true' in requests.get(base + "/config.js", timeout=30).text  # the page shows its token field

    h = {"Authorization": f"Bearer {TOKEN}"}
    photo = PEOPLE_PHOTO.read_bytes()
    up = requests.post(base + "/api/uploads", json={"content_type": "image/jpeg", "filename": "p.jpg"}, headers=h,
                       timeout=30)
    assert up.status_code == 201, up.text
    u = up.json()
    # the presigned POST goes to the embedded S3: its own signature, no bearer token
    r = requests.post(u["upload"]["url"], data=u["upload"]["fields"], files={"file": ("p.jpg", photo, "image/jpeg")},
                      timeout=60)
    assert r.status_code in (200, 204), r.text
    j = wait_done(base, u["job_id"], h)
    assert j["status"] == "done", j
    assert requests.get(j["results"]["color.png"], timeout=30).content[:8] == b"\x89PNG\r\n\x1a\n"

    # the runner prints the same JSON log lines as the Lambda functions
    deadline = time.time() + 10
    while time.time() < deadline:
        lines = [json.loads(x) for x in runner.log().splitlines() if x.startswith("{")]
        parsed = [x for x in lines if x.get("message") == "parsed" and x.get("job_id") == u["job_id"]]
        if parsed:
            break
        time.sleep(0.2)
    assert parsed, runner.log()[-3000:]
    p = parsed[0]
    assert p["level"] == "INFO" and p["model"] == "lite" and p["precision"] == "fp32"
    assert p["s3_key"].startswith(f"uploads/{u['job_id']}/") and p["request_id"] and p["elapsed_ms"] > 0
    assert isinstance(p["cold_start"], bool)
    assert "serving the LITE model" in runner.log()  # the human-facing start-up lines are unchanged
    assert "_aws" not in runner.log()  # no EMF on a person's console by default


@pytest.mark.browser
def test_page_asks_for_the_token_then_works(runner: Runner) -> None:
    chromium = find_chromium()
    if not Path(chromium).exists():
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page()
            page.goto(runner.base + "/")
            # /config answered 401: the page opens the token field and says why
            page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('token')")
            assert page.locator("#auth").is_visible() and page.locator("#auth").get_attribute("open") is not None
            page.fill("#token", TOKEN)
            page.click("#token-form button[type=submit]")
            page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
            page.set_input_files("#file", str(PEOPLE_PHOTO))
            page.wait_for_selector(".job[data-ready='1']", timeout=120_000)
            assert "done" in page.locator(".job .state").first.inner_text()
        finally:
            b.close()
