"""A new output format is one entry of the output table (``pipeline/outputs.py``), and nothing else: this suite
registers one — ``histogram.txt``, the label map's histogram as text — and sees it written by the CLI, answered by
``POST /parse?output=histogram``, stored in an S3 job's results, counted in the cache's format (an entry made before
it existed is a miss) and listed by ``GET /config`` for the page's downloads. Real parts: moto's S3 server, the
lite model for the CLI, the stub parser behind the HTTP app and the trigger."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from conftest import encode_jpeg
from humanparse.config import Settings
from humanparse.entries.service import build_service
from humanparse.jobs.cache import ResultCache
from humanparse.jobs.store import JobStore
from humanparse.pipeline import outputs
from humanparse.pipeline.outputs import Download, Output, Rendering
from PIL import Image


def histogram_text(labels: np.ndarray) -> bytes:
    """``<id> <pixels>`` per CIHP id present, one a line."""
    counts = np.bincount(labels.ravel(), minlength=20)
    return "".join(f"{i} {int(c)}\n" for i, c in enumerate(counts) if c).encode("ascii")


def _render(r: Rendering) -> bytes:
    return histogram_text(r.result.label_map)


HISTOGRAM = Output("histogram.txt", "text/plain", render=_render, query="histogram",
                   download=Download("Label histogram", "Pixels per part, as text"))


@pytest.fixture()
def table(monkeypatch: pytest.MonkeyPatch) -> list[Output]:
    """The output table, restored after the test (``register`` appends to it)."""
    monkeypatch.setattr(outputs, "TABLE", list(outputs.TABLE))
    return outputs.TABLE


@pytest.fixture()
def histogram(table: list[Output]) -> Output:
    return outputs.register(HISTOGRAM)


def settings_for(aws: dict[str, Any]) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"])


def labels_of(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_the_cli_writes_it(histogram: Output, photo: np.ndarray, tmp_path: Path) -> None:
    from humanparse.entries.cli import main

    src = tmp_path / "walk.jpg"
    src.write_bytes(encode_jpeg(photo))
    out = tmp_path / "out"
    assert main(["parse", str(src), "--out", str(out), "--model", "lite", "--threads", "2", "--quiet"]) == 0
    written = (out / "walk.histogram.txt").read_bytes()
    assert written == histogram_text(labels_of((out / "walk.label.png").read_bytes()))
    assert int(written.split()[1]) > 0  # a count, not an empty file
    # --skip-existing counts it among the files a finished photo has: without it, the photo is parsed again
    (out / "walk.histogram.txt").unlink()
    assert main(["parse", str(src), "--out", str(out), "--model", "lite", "--threads", "2", "--quiet",
                 "--skip-existing"]) == 0
    assert (out / "walk.histogram.txt").read_bytes() == written
    # and the batch walker takes it for a result, not an input
    from humanparse.entries.batch import is_result

    assert is_result(out / "walk.histogram.txt", out.resolve())


def test_post_parse_answers_it(aws: dict[str, Any], stub_parser: Any, histogram: Output, photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(build_service(settings_for(aws), stub_parser, aws["s3"]).app)
    data = encode_jpeg(photo)
    r = client.post("/parse?output=histogram", content=data, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain") and r.headers["x-humanparse-cache"] == "miss"
    label = client.post("/parse?output=label", content=data, headers={"content-type": "image/jpeg"})
    assert label.headers["x-humanparse-cache"] == "hit"  # the same parse, stored with the new file beside
    assert r.content == histogram_text(labels_of(label.content))
    bad = client.post("/parse?output=nope", content=data, headers={"content-type": "image/jpeg"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_output" and "histogram" in bad.json()["detail"]


def test_an_s3_job_stores_it(aws: dict[str, Any], stub_parser: Any, histogram: Output, photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient
    from humanparse.entries.events import parse_s3_event
    from test_lambda_s3 import event_for, put, status

    svc = build_service(settings_for(aws), stub_parser, aws["s3"])
    ev = event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"])
    key = parse_s3_event(ev)[0].key
    ev = event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"], **put(aws, key, encode_jpeg(photo)))
    (rec,) = svc.handler(ev, None)["records"]
    assert rec["status"] == "done", rec
    job = TestClient(svc.app).get(f"/jobs/{rec['job_id']}").json()
    assert "histogram.txt" in status(aws, rec["job_id"])["files"] and "histogram.txt" in job["results"]
    got = requests.get(job["results"]["histogram.txt"], timeout=30)
    label = requests.get(job["results"]["label.png"], timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "text/plain"
    assert got.content == histogram_text(labels_of(label.content))


def test_the_cache_format_follows_the_table(aws: dict[str, Any], stub_parser: Any, table: list[Output],
                                            photo: np.ndarray) -> None:
    """An entry cached before the output existed lacks it: after registering, the same bytes are a miss (and
    parsed again, with the new file), then a hit."""
    from fastapi.testclient import TestClient

    settings = settings_for(aws)
    cache = ResultCache(JobStore(aws["s3"], settings), stub_parser, settings)
    before_version, before_key = outputs.format_version(), cache.key("0" * 64)
    client = TestClient(build_service(settings, stub_parser, aws["s3"]).app)
    data = encode_jpeg(photo)
    post = lambda output: client.post(f"/parse?output={output}", content=data,  # noqa: E731
                                      headers={"content-type": "image/jpeg"})
    assert post("json").headers["x-humanparse-cache"] == "miss"
    assert post("json").headers["x-humanparse-cache"] == "hit"
    outputs.register(HISTOGRAM)
    assert outputs.format_version() != before_version and cache.key("0" * 64) != before_key
    r = post("histogram")  # the running app's cache sees the new format at once
    assert r.status_code == 200 and r.headers["x-humanparse-cache"] == "miss"
    assert post("histogram").headers["x-humanparse-cache"] == "hit"
    # the index records the format it was written in
    index = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["results_bucket"], Prefix="cache/")
             ["Contents"]]
    formats = {json.loads(aws["s3"].get_object(Bucket=aws["results_bucket"], Key=k)["Body"].read())["format"]
               for k in index}
    assert formats == {before_version, outputs.format_version()}


def test_config_lists_it_for_the_page(aws: dict[str, Any], stub_parser: Any, histogram: Output) -> None:
    from fastapi.testclient import TestClient

    config = TestClient(build_service(settings_for(aws), stub_parser, aws["s3"]).app).get("/config").json()
    entry = next(o for o in config["outputs"] if o["name"] == "histogram.txt")
    assert entry["media_type"] == "text/plain" and entry["query"] == "histogram" and entry["rendered"]
    photo_downloads = config["downloads"]["photo"]
    assert [d["name"] for d in photo_downloads][:4] == ["color.png", "label.png", "result.json", "overlay.jpg"]
    assert photo_downloads[-1] == {"name": "histogram.txt", "title": "Label histogram",
                                   "hint": "Pixels per part, as text"}
    assert "histogram.txt" not in [d["name"] for d in config["downloads"]["video"]]


def test_the_table_refuses_a_clash(table: list[Output]) -> None:
    with pytest.raises(ValueError, match="overlay"):
        outputs.register(Output("overlay2.png", "image/png", query="overlay"))
    with pytest.raises(ValueError, match="result.json"):
        outputs.register(Output("result.json", "application/json"))


@pytest.mark.browser
def test_the_page_offers_it(histogram: Output, browser: Any) -> None:
    """The page's download list is the table's: a photo job holding the new file shows its link (text and tooltip
    from the table, saving ``<stem>.histogram.txt``) after the four it always had."""
    from test_browser import Site, result_files

    labels = np.full((20, 40), 13, np.uint8)
    files = {**result_files(labels, np.ones((20, 40), np.uint8)), "histogram.txt": histogram_text(labels)}
    page = browser.new_page()
    try:
        site = Site(page, files=files)  # its GET /config answers with the table (page_config)
        site.open()
        job = site.upload(np.zeros((20, 40, 3), np.uint8))
        links = job.locator(".downloads a").evaluate_all("(as) => as.map((a) => [a.textContent, a.download, a.title])")
        assert [d for _, d, _ in links] == ["photo.color.png", "photo.label.png", "photo.result.json",
                                            "photo.overlay.jpg", "photo.histogram.txt"], links
        assert links[-1] == ["Label histogram", "photo.histogram.txt", "Pixels per part, as text"]
    finally:
        page.close()
