"""A model kind is one registry entry: a kind registered here, in the test suite only (no other file changed),
flows through Settings, the command line, ``POST /parse``, the S3 trigger, the result cache's key, video budgets,
``/healthz`` and ``/config`` — and a kind that is not registered is refused by each of them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import EVENTS, encode_jpeg
from humanparse.config import Settings
from humanparse.engine.registry import MODEL_KINDS, ModelKind, ModelSpec, choose, kind_names, register
from humanparse.engine.types import ModelInfo, ParseResult
from PIL import Image
from pydantic import ValidationError
from s3events import make_s3_event

WEIGHTS = "constant.txt"


class BackgroundParser:
    """The dummy kind's model: every pixel background (CIHP 0), nobody found. (H, W, 3) uint8 → (H, W) maps."""

    def __init__(self, folder: Path) -> None:
        self.info = ModelInfo(kind="dummy", model_id=folder.name, supported_labels=(0,), notes="all background")

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> ParseResult:
        h, w = rgb.shape[:2]
        return ParseResult(np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8), [], self.info, {"parse": 0.0})


def _fingerprint(folder: Path) -> str:
    return hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()


@pytest.fixture()
def dummy(tmp_path: Path) -> Iterator[Path]:
    """The one registry entry, and a folder holding the dummy's "weights"; the entry is removed afterwards."""
    folder = tmp_path / "dummy-model"
    folder.mkdir()
    (folder / WEIGHTS).write_text("v1")
    register(ModelKind(name="dummy", title="Dummy (all background)", files=(WEIGHTS,),
                       build=lambda found, spec: BackgroundParser(found), fingerprint=_fingerprint,
                       labels=(0,), seconds_per_frame=0.01))
    try:
        yield folder
    finally:
        MODEL_KINDS.pop("dummy", None)


def _settings(aws: dict[str, Any], folder: Path, **kw: Any) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"], model_kind="dummy", model_dir=folder, **kw)


def test_settings_and_loader_take_a_registered_kind_only(dummy: Path) -> None:
    from humanparse.engine.loader import load_parser

    settings = Settings(model_kind="dummy", model_dir=dummy)
    spec = settings.model_spec()
    assert spec.dirs("dummy")[0] == dummy and choose("dummy", spec.places).folder == dummy
    loaded = load_parser(settings)
    assert loaded.parser.info.kind == "dummy" and loaded.notice == f"serving Dummy (all background) from {dummy}"
    MODEL_KINDS.pop("dummy")
    with pytest.raises(ValidationError, match="unknown model kind 'dummy': one of auto, m2fp, lite"):
        Settings(model_kind="dummy")
    from humanparse.exceptions import ModelError

    with pytest.raises(ModelError, match="unknown model kind 'dummy'"):
        load_parser(ModelSpec(kind="dummy", places={"dummy": (dummy,)}))


def test_auto_passes_over_a_kind_that_is_not_in_auto(dummy: Path) -> None:
    """"auto" tries only kinds that ask for it (the built-in M2FP, then lite); a new kind is chosen by name."""
    assert kind_names()[-1] == "dummy" and not MODEL_KINDS["dummy"].in_auto
    assert choose("auto", Settings(model_dir=dummy).model_spec().places).kind.name in ("m2fp", "lite")


def test_cli_parses_with_the_dummy_kind(dummy: Path, tmp_path: Path, photo: np.ndarray,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from humanparse.entries.cli import main

    src = tmp_path / "in" / "photo.jpg"
    src.parent.mkdir()
    src.write_bytes(encode_jpeg(photo))
    out = tmp_path / "out"
    assert main(["parse", str(src), "--out", str(out), "--model", "dummy", "--model-dir", str(dummy)]) == 0
    doc = json.loads((out / "photo.json").read_text(encoding="utf-8"))
    assert doc["model"]["kind"] == "dummy" and doc["person_count"] == 0
    labels = np.asarray(Image.open(out / "photo.label.png"))
    assert labels.shape == photo.shape[:2] and not labels.any()
    assert "dummy: Dummy (all background)" in " ".join(_help(capsys, main).split())
    MODEL_KINDS.pop("dummy")
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main(["parse", str(src), "--out", str(out), "--model", "dummy"])
    assert "invalid choice: 'dummy'" in capsys.readouterr().err


def _help(capsys: pytest.CaptureFixture[str], main: Any) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["parse", "--help"])
    return capsys.readouterr().out


@pytest.fixture()
def dummy_svc(aws: dict[str, Any], dummy: Path) -> Any:
    """The Lambda wiring as the module builds it (the configured parser, loaded through the registry)."""
    from humanparse.entries.service import build_service, load_configured_parser

    settings = _settings(aws, dummy)
    parser = load_configured_parser(settings, verdict_s3=aws["s3"]).parser
    return build_service(settings, parser, aws["s3"])


def _call(svc: Any, event: dict[str, Any]) -> tuple[int, bytes]:
    out = svc.handler(event, None)
    body = out.get("body", "")
    return out["statusCode"], base64.b64decode(body) if out.get("isBase64Encoded") else body.encode("utf-8")


def test_post_parse_healthz_and_config_with_the_dummy_kind(dummy_svc: Any, photo: np.ndarray) -> None:
    event = json.loads((EVENTS / "function-url-post-parse.json").read_text(encoding="utf-8"))
    event["body"] = base64.b64encode(encode_jpeg(photo)).decode()
    code, body = _call(dummy_svc, event)
    assert code == 200, body[:300]
    doc = json.loads(body)
    assert doc["model"]["kind"] == "dummy" and doc["person_count"] == 0
    labels = np.asarray(Image.open(io.BytesIO(base64.b64decode(doc["label_png_base64"]))))
    assert labels.shape == photo.shape[:2] and not labels.any()

    get = json.loads((EVENTS / "apigw-v2-get-healthz.json").read_text(encoding="utf-8"))
    code, body = _call(dummy_svc, get)
    health = json.loads(body)
    assert code == 200 and health["model"]["kind"] == "dummy" and "dummy" in health["kinds"]
    assert health["model"]["facts"]["title"] == "Dummy (all background)"
    assert health["model"]["facts"]["seconds_per_frame"] == 0.01 and health["model"]["facts"]["labels"] == ["Background"]
    get["rawPath"] = get["requestContext"]["http"]["path"] = "/config"
    code, body = _call(dummy_svc, get)
    config = json.loads(body)
    assert code == 200 and config["model"] == "dummy"
    assert config["model_kinds"]["dummy"]["title"] == "Dummy (all background)"  # what the page shows
    assert set(config["model_kinds"]) == {"m2fp", "lite", "dummy"}


def test_s3_trigger_with_the_dummy_kind(aws: dict[str, Any], dummy_svc: Any, photo: np.ndarray) -> None:
    key = "uploads/dummy/photo.jpg"
    body = encode_jpeg(photo)
    etag = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=body, ContentType="image/jpeg")["ETag"]
    out = dummy_svc.handler(make_s3_event(aws["upload_bucket"], key, size=len(body), etag=etag), None)
    (rec,) = out["records"]
    assert rec["status"] == "done", rec
    results = f"results/{rec['job_id']}/"
    doc = json.loads(aws["s3"].get_object(Bucket=aws["results_bucket"], Key=results + "result.json")["Body"].read())
    assert doc["model"]["kind"] == "dummy"
    labels = np.asarray(Image.open(io.BytesIO(
        aws["s3"].get_object(Bucket=aws["results_bucket"], Key=results + "label.png")["Body"].read())))
    assert labels.shape == photo.shape[:2] and not labels.any()
    # no kernels to measure: nothing was shared through the results bucket for this kind
    listed = aws["s3"].list_objects_v2(Bucket=aws["results_bucket"], Prefix="results/_system/")
    assert "Contents" not in listed
    assert dummy_svc.trigger.video.seconds_per_frame == 0.01  # video budgets read the kind's figure


def test_cache_key_follows_the_kind_and_its_fingerprint(aws: dict[str, Any], dummy: Path,
                                                        lite_parser: Any) -> None:
    from humanparse.jobs.cache import ResultCache, answer_identity
    from humanparse.jobs.store import JobStore

    settings = _settings(aws, dummy)
    store = JobStore(aws["s3"], settings)
    parser = BackgroundParser(dummy)
    assert answer_identity(parser, settings)["weights"] == _fingerprint(dummy)
    content = hashlib.sha256(b"the same photo").hexdigest()
    dummy_key = ResultCache(store, parser, settings).key(content)
    assert ResultCache(store, lite_parser, settings).key(content) != dummy_key  # another kind, another key
    (dummy / WEIGHTS).write_text("v2")  # new weights of the same kind: another key
    assert ResultCache(store, parser, settings).key(content) != dummy_key


def test_builtin_kinds_name_their_engines_files() -> None:
    """The registry spells M2FP's file names without importing torch; they are the engine's own."""
    from humanparse.engine.m2fp.predictor import CONFIG_FILE, WEIGHTS_FILE

    assert MODEL_KINDS["m2fp"].files == (CONFIG_FILE, WEIGHTS_FILE)
    assert [k for k, v in MODEL_KINDS.items() if v.in_auto] == ["m2fp", "lite"]  # "auto": M2FP, else lite


def test_page_names_the_model_by_the_servers_registry(dummy_svc: Any, browser: Any) -> None:
    """The page's "Model: …" line is the serving kind's title from ``/config`` (the page lists no kinds)."""
    from urllib.parse import urlparse

    from conftest import ROOT
    from fastapi.testclient import TestClient

    config = TestClient(dummy_svc.app).get("/config")
    assert config.status_code == 200
    origin, page_dir = "http://hp.test", ROOT / "frontend"

    def handle(route: Any) -> None:
        path = urlparse(route.request.url).path
        if path == "/api/config":
            return route.fulfill(body=config.content, content_type="application/json")
        if path == "/config.js":
            return route.fulfill(body='window.HUMANPARSE_CONFIG = {"apiBase": "/api"};', content_type="text/javascript")
        f = page_dir / (path.lstrip("/") or "index.html")
        if not f.is_file():
            return route.fulfill(status=404, body="not found")
        return route.fulfill(body=f.read_bytes(), content_type="text/javascript" if f.suffix == ".js" else
                             "text/css" if f.suffix == ".css" else "text/html")

    page = browser.new_page()
    try:
        page.route(origin + "/**", handle)
        page.goto(origin + "/")
        page.wait_for_function("() => document.querySelector('#model-line').textContent.includes('Model')")
        assert page.locator("#model-line").inner_text() == "Model: Dummy (all background)"
    finally:
        page.close()
