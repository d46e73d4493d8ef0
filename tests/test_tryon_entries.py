"""The try-on outputs through the entries: the CLI's files, ``POST /parse``'s outputs and a job's stored files, on
the real lite model and the shipped photo; moto's S3 server for the HTTP app and the trigger."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PEOPLE_PHOTO, encode_png
from humanparse.config import Settings
from humanparse.entries.cli import main
from humanparse.entries.service import build_service
from humanparse.pipeline.tryon import CATEGORIES
from PIL import Image

PHOTO_RGB = np.asarray(Image.open(PEOPLE_PHOTO).convert("RGB"))
EMPTY_SCENE = encode_png(np.full((256, 256, 3), 128, np.uint8))  # the lite model finds nobody in it


def png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img


def check_openpose(doc: dict[str, Any], persons: int) -> None:
    """As VITON-HD's preprocessing reads it: people[k]["pose_keypoints_2d"] reshaped to (-1, 3), 18 rows."""
    assert len(doc["people"]) == persons
    for k, person in enumerate(doc["people"], start=1):
        pts = np.asarray(person["pose_keypoints_2d"], dtype=np.float32)
        assert pts.shape == (54,) and person["person_id"] == [k]
        assert pts.reshape(-1, 3).shape == (18, 3) and (pts.reshape(-1, 3)[:, 2] > 0).sum() >= 5


def check_tryon_pair(mask_png: bytes, agnostic_png: bytes) -> None:
    """The mask is grey 0/255 with something to repaint; the agnostic image is the photo outside it, grey inside."""
    mask = np.asarray(png(mask_png))
    agn = np.asarray(png(agnostic_png).convert("RGB"))
    assert png(mask_png).mode == "L" and set(np.unique(mask)) == {0, 255}
    inside = mask == 255
    assert mask.shape == PHOTO_RGB.shape[:2] and inside.sum() > 1000
    assert np.array_equal(agn[~inside], PHOTO_RGB[~inside]) and (agn[inside] == 128).all()


# ------------------------------------------------------------------------------------------------- CLI
def run_cli(tmp_path: Path, *args: str, photo: Path = PEOPLE_PHOTO) -> int:
    return main(["parse", str(photo), "--out", str(tmp_path), "--model", "lite", "--quiet", *args])


def test_cli_writes_tryon_files_beside_the_parse(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "--tryon", "upper_body", "--tryon", "lower_body,upper_body", "--labels-as", "lip,atr",
                   "--keypoints") == 0
    stem = PEOPLE_PHOTO.stem
    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    assert doc["person_count"] == 1
    for category in ("upper_body", "lower_body"):
        check_tryon_pair((tmp_path / f"{stem}.tryon.{category}.p1.mask.png").read_bytes(),
                         (tmp_path / f"{stem}.tryon.{category}.p1.agnostic.png").read_bytes())
        agn_parse = np.asarray(png((tmp_path / f"{stem}.tryon.{category}.p1.parse_agnostic.png").read_bytes()))
        assert agn_parse.max() < 20
    assert not list(tmp_path.glob(f"{stem}.tryon.dresses.*"))  # only what was asked
    check_openpose(json.loads((tmp_path / f"{stem}.keypoints.json").read_text()), doc["person_count"])
    labels = np.asarray(png((tmp_path / f"{stem}.label.png").read_bytes()))
    atr = np.asarray(png((tmp_path / f"{stem}.atr.png").read_bytes()))
    lip = np.asarray(png((tmp_path / f"{stem}.lip.png").read_bytes()))
    assert atr.shape == lip.shape == labels.shape and atr.max() <= 17 and lip.max() <= 19
    assert (atr[labels == 5] == 4).all()  # CIHP UpperClothes is ATR Upper-clothes
    # the outfit summary is always in the result JSON, per person
    (person,) = doc["outfit"]
    assert person["person"] == 1 and person["garments"][0]["name"] == "upper_clothes"
    assert person["garments"][0]["color"]["hex"].startswith("#")


def test_cli_all_categories_and_plain_parse(tmp_path: Path) -> None:
    assert run_cli(tmp_path / "all", "--tryon", "all") == 0
    written = {p.name.split(".")[2] for p in (tmp_path / "all").glob("*.tryon.*.mask.png")}
    assert written <= set(CATEGORIES) and {"upper_body", "dresses", "full_body"} <= written
    assert run_cli(tmp_path / "plain") == 0  # no try-on option: the parse's files and no others
    assert not list((tmp_path / "plain").glob("*.tryon.*")) and not list((tmp_path / "plain").glob("*.atr.png"))
    assert "outfit" in json.loads((tmp_path / "plain" / f"{PEOPLE_PHOTO.stem}.json").read_text())


def test_cli_refuses_unknown_category_before_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path / "out", "--tryon", "shirt") == 2
    assert "unknown try-on category shirt" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert run_cli(tmp_path, "--labels-as", "pascal") == 2
    assert "unknown label set" in capsys.readouterr().err


def test_cli_reports_missing_person_and_empty_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, "--tryon", "upper_body", "--person", "3", "--json") == 1
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["status"] == "failed" and line["error"] == "unknown_person" and "1..1" in line["detail"]
    empty = tmp_path / "empty.png"
    empty.write_bytes(EMPTY_SCENE)
    assert run_cli(tmp_path / "out", "--tryon", "upper_body", "--json", photo=empty) == 1
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["error"] == "no_person" and not (tmp_path / "out" / "empty.json").exists()


# ------------------------------------------------------------------------------------------------ HTTP
def settings_for(aws: dict[str, Any], **kw: Any) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"], **kw)


@pytest.fixture()
def client(aws: dict[str, Any], lite_parser: Any) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(build_service(settings_for(aws), lite_parser, aws["s3"]).app)


def post(client: Any, query: str, data: bytes | None = None) -> Any:
    return client.post(f"/parse?{query}", content=PEOPLE_PHOTO.read_bytes() if data is None else data,
                       headers={"content-type": "image/jpeg"})


def test_http_tryon_images_parse_once(client: Any) -> None:
    first = post(client, "output=tryon&category=upper_body&person=1")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png", first.text[:300]
    assert first.headers["x-humanparse-cache"] == "miss"
    agn = post(client, "output=tryon&category=upper_body&image=agnostic")  # person defaults to 1
    # drawn from the stored parse and the posted bytes: no second parse, the same mask
    assert agn.headers["x-humanparse-cache"] == "hit"
    check_tryon_pair(first.content, agn.content)
    again = post(client, "output=tryon&category=upper_body&person=1")
    assert again.headers["x-humanparse-cache"] == "hit" and again.content == first.content
    other = post(client, "output=tryon&category=full_body&image=parse_agnostic")
    assert other.status_code == 200 and np.asarray(png(other.content)).max() < 20


def test_http_keypoints_label_sets_and_json(client: Any) -> None:
    kp = post(client, "output=keypoints")
    assert kp.status_code == 200 and kp.headers["content-type"] == "application/json"
    check_openpose(kp.json(), 1)
    for name, top in (("atr", 17), ("lip", 19)):
        r = post(client, f"output={name}")
        assert r.status_code == 200 and r.headers["x-humanparse-cache"] == "hit"  # stored by the first parse
        assert np.asarray(png(r.content)).shape == PHOTO_RGB.shape[:2] and np.asarray(png(r.content)).max() <= top
    doc = post(client, "category=lower_body").json()
    check_openpose(doc["keypoints"], doc["person_count"])
    assert doc["outfit"][0]["person"] == 1
    t = doc["tryon"]
    assert (t["category"], t["person"]) == ("lower_body", 1)
    import base64

    check_tryon_pair(base64.b64decode(t["mask_png_base64"]), base64.b64decode(t["agnostic_png_base64"]))
    assert "parse_agnostic_png_base64" in t


@pytest.mark.parametrize("query,status,code", [
    ("output=tryon&category=shirt", 422, "unknown_category"),
    ("output=tryon", 422, "unknown_category"),
    ("output=tryon&category=upper_body&person=4", 422, "unknown_person"),
    ("output=tryon&category=upper_body&person=0", 422, "unknown_person"),
    ("output=tryon&category=upper_body&image=sketch", 422, "invalid_request"),
    ("output=tryon&category=upper_body&person=one", 422, "invalid_request"),
    ("output=overlay&category=upper_body", 422, "invalid_request"),
    ("output=pose", 400, "bad_output"),
])
def test_http_tryon_refusals(client: Any, query: str, status: int, code: str) -> None:
    r = post(client, query)
    assert r.status_code == status and r.json()["error"] == code and r.json()["detail"], r.text
    if code == "unknown_person" and "person=4" in query:
        assert "1..1" in r.json()["detail"]


def test_http_tryon_on_a_photo_without_people(client: Any) -> None:
    for _ in range(2):  # parsed, then from the cache: the same answer
        r = post(client, "output=tryon&category=dresses", EMPTY_SCENE)
        assert r.status_code == 422 and r.json()["error"] == "no_person", r.text
    assert post(client, "output=keypoints", EMPTY_SCENE).json()["people"] == []


# ------------------------------------------------------------------------------------------------- jobs
def run_job(aws: dict[str, Any], lite_parser: Any, **kw: Any) -> tuple[str, dict[str, Any]]:
    svc = build_service(settings_for(aws, **kw), lite_parser, aws["s3"])
    key = "uploads/0123456789abcdef0123456789abcdef/image.jpg"
    resp = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=PEOPLE_PHOTO.read_bytes(),
                                ContentType="image/jpeg")
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": aws["upload_bucket"], "arn": f"arn:aws:s3:::{aws['upload_bucket']}"},
        "object": {"key": key, "size": PEOPLE_PHOTO.stat().st_size, "eTag": resp["ETag"].strip('"')}}}]}
    (rec,) = svc.handler(event, None)["records"]
    assert rec["status"] == "done", rec
    job = rec["job_id"]
    st = json.loads(aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{job}/status.json")["Body"].read())
    return job, st


def read_result(aws: dict[str, Any], job: str, name: str) -> tuple[bytes, str]:
    obj = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{job}/{name}")
    return obj["Body"].read(), obj["ContentType"]


def test_job_stores_keypoints_and_label_sets(aws: dict[str, Any], lite_parser: Any) -> None:
    job, st = run_job(aws, lite_parser)
    assert {"keypoints.json", "atr.png", "lip.png", "result.json"} <= set(st["files"])
    assert not [f for f in st["files"] if f.startswith("tryon.")]  # the masks are opt-in (as much again as a parse)
    body, ctype = read_result(aws, job, "keypoints.json")
    assert ctype == "application/json"
    check_openpose(json.loads(body), st["person_count"])
    body, ctype = read_result(aws, job, "atr.png")
    assert ctype == "image/png" and np.asarray(png(body)).max() <= 17
    assert json.loads(read_result(aws, job, "result.json")[0])["outfit"][0]["garments"]


def test_job_stores_every_tryon_mask_when_asked(aws: dict[str, Any], lite_parser: Any) -> None:
    job, st = run_job(aws, lite_parser, job_tryon_masks=True)
    masks = sorted(f for f in st["files"] if f.endswith(".mask.png"))
    assert {m.split(".")[1] for m in masks} >= {"upper_body", "dresses", "full_body"}
    check_tryon_pair(read_result(aws, job, "tryon.upper_body.p1.mask.png")[0],
                     read_result(aws, job, "tryon.upper_body.p1.agnostic.png")[0])


def test_http_keypoints_for_a_model_without_pose_head(aws: dict[str, Any], stub_parser: Any) -> None:
    """The stub, like M2FP, has no pose head: the lite tier's pose network runs beside it and its pose is matched
    to the stub's person (a centred box over the astronaut)."""
    from fastapi.testclient import TestClient

    client = TestClient(build_service(settings_for(aws), stub_parser, aws["s3"]).app)
    r = post(client, "output=keypoints")
    assert r.status_code == 200 and stub_parser.calls == 1
    check_openpose(r.json(), 1)
    mask = post(client, "output=tryon&category=upper_body")
    assert mask.status_code == 200 and stub_parser.calls == 1  # drawn from the stored parse


def test_cli_rerun_into_the_input_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Results written beside the photos are never inputs of the next run; --skip-existing wants the asked files."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(PEOPLE_PHOTO.read_bytes())
    args = ["parse", str(tmp_path), "--out", str(tmp_path), "--model", "lite", "--quiet", "--json",
            "--tryon", "upper_body", "--labels-as", "atr"]
    assert main(args) == 0 and (tmp_path / "a.tryon.upper_body.p1.agnostic.png").is_file()
    capsys.readouterr()
    assert main([*args, "--skip-existing"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [(x["status"], Path(x["input"]).name) for x in lines] == [("skipped", "a.jpg")]
    (tmp_path / "a.atr.png").unlink()
    assert main([*args, "--skip-existing"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [(x["status"], Path(x["input"]).name) for x in lines] == [("parsed", "a.jpg")]
