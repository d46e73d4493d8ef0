"""The job status has one shape: ``JobStatus``. Old documents parse, new ones are written as before, the API
declares it, the committed JSON Schema is the model's, and the page reads only fields that schema has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from humanparse.jobs.status import JobStatus, json_schema, schema_text, stored_only_fields

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "frontend" / "job-status.schema.json"
PAGE_JS = ROOT / "frontend" / "js"


# ------------------------------------------------------------------------------------------- documents
def test_documents_of_every_writer_round_trip_unchanged() -> None:
    docs = [
        {"status": "done", "job_id": "a" * 32, "source": {"bucket": "u", "key": "uploads/x/image.jpg", "etag": "e",
                                                          "version_id": None, "sequencer": None},
         "files": ["result.json", "label.png"], "model": "lite", "width": 64, "height": 48, "person_count": 1,
         "elapsed_ms": 12.5, "sha256": "0" * 64},
        {"status": "done", "job_id": "b" * 32, "source": {"via": "POST /uploads"}, "files": ["label.png"],
         "cached": True, "sha256": "1" * 64, "elapsed_ms": 3.1},
        {"status": "failed", "job_id": "c" * 32, "error": "not_an_image", "detail": "not an image",
         "source": {"api": "POST /parse"}},
        {"status": "running", "kind": "video", "job_id": "d" * 32, "frames_total": 40, "frames_done": 0, "chunks": 2,
         "plan": [[0, 20], [20, 40]], "started": 1.5, "deadline": 99.5, "source": {"bucket": "u", "key": "k"}},
        {"status": "running", "kind": "video", "job_id": "e" * 32, "frames_total": None, "frames_done": 0},
    ]
    for doc in docs:
        assert JobStatus.model_validate(doc).dump() == doc


def test_older_documents_still_parse() -> None:
    old = JobStatus.model_validate({"status": "failed", "error": "not_an_image", "reason": "old words",
                                    "written_by": "a version that is gone"})
    assert (old.status, old.error, old.detail, old.kind) == ("failed", "not_an_image", "old words", "image")
    assert old.dump() == {"status": "failed", "error": "not_an_image", "reason": "old words", "detail": "old words"}


def test_a_status_without_a_state_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        JobStatus.model_validate({"job_id": "a" * 32})
    with pytest.raises(ValidationError):
        JobStatus.model_validate({"status": "lost"})


# ---------------------------------------------------------------------------------------- the API
@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    from conftest import StubParser
    from fastapi.testclient import TestClient
    from humanparse.config import Settings
    from humanparse.entries.api import create_app

    app = create_app(Settings(upload_bucket="u", results_bucket="r"), StubParser(), None)
    doc: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    return doc


def _schema_of(openapi: dict[str, Any], path: str, method: str, code: str) -> dict[str, Any]:
    ref = openapi["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    schema: dict[str, Any] = openapi["components"]["schemas"][name]
    return {"name": name, **schema}


def test_openapi_names_the_job_status_schema(openapi: dict[str, Any]) -> None:
    for path in ("/jobs/{job_id}", "/jobs"):
        schema = _schema_of(openapi, path, "get", "200")
        assert schema["name"] == "JobStatus", path
        assert set(schema["properties"]) == set(JobStatus.model_fields), path
        assert schema["properties"]["status"]["enum"] == ["pending", "running", "done", "failed"]
    upload = _schema_of(openapi, "/uploads", "post", "201")
    assert upload["name"] == "UploadCreated" and {"job_id", "upload", "status_url"} <= set(upload["properties"])
    link = _schema_of(openapi, "/jobs/{job_id}/tryon", "get", "200")
    assert link["name"] == "TryonLink" and set(link["properties"]) == {"name", "url", "bytes"}
    assert "image/png" in openapi["paths"]["/jobs/{job_id}/tryon"]["get"]["responses"]["200"]["content"]


# ---------------------------------------------------------------------------------------- the page
def test_committed_schema_is_the_models() -> None:
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema(), \
        "frontend/job-status.schema.json is stale: run python -m humanparse.jobs.status frontend/job-status.schema.json"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()


def fields_read(source: str, names: tuple[str, ...]) -> set[tuple[str, str]]:
    """``(variable, field)`` for every field the JS ``source`` reads from a variable called one of ``names``:
    ``v.field``, ``v?.field``, ``v["field"]`` and ``const { field } = v``. A property of a property (``v.a.b``)
    counts as ``a``; a variable's own name inside a longer one (``myjob.x``, ``res.job.x``, ``"./job.js"``) does
    not count, nor does anything in a comment."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    source = re.sub(r"(^|\s)//.*$", r"\1", source, flags=re.M)
    found: set[tuple[str, str]] = set()
    for var in names:
        v = re.escape(var)
        for m in re.finditer(rf"(?<![\w$./]){v}\??\.([A-Za-z_$][\w$]*)", source):
            found.add((var, m.group(1)))
        for m in re.finditer(rf"(?<![\w$./]){v}\[\s*[\"']([^\"']+)[\"']\s*\]", source):
            found.add((var, m.group(1)))
        for m in re.finditer(rf"\b(?:const|let|var)\s*\{{([^}}]*)\}}\s*=\s*{v}\b", source):
            for part in m.group(1).split(","):
                name = part.split(":")[0].split("=")[0].strip().lstrip(".")
                if name:
                    found.add((var, name))
    return found


def unknown_fields(sources: dict[str, str], allowed: dict[str, set[str]]) -> list[str]:
    """``file: variable.field`` for each field read that the variable's schema does not have."""
    return sorted(f"{name}: {var}.{field}" for name, src in sources.items()
                  for var, field in fields_read(src, tuple(allowed)) if field not in allowed[var])


def page_contract() -> dict[str, set[str]]:
    """What each variable name that holds a server document in the page's modules may read: a job status (the
    committed schema, less the fields only status.json holds), ``POST /uploads``' answer and the try-on link."""
    from humanparse.entries.api.routes.tryon import TryonLink
    from humanparse.entries.api.routes.uploads import UploadCreated

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    answer = {n for n, p in schema["properties"].items() if not p.get("x-stored-only")}
    return {"job": answer, "status": answer, "up": set(UploadCreated.model_fields), "link": set(TryonLink.model_fields)}


def test_the_page_reads_only_fields_the_job_status_schema_has() -> None:
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(PAGE_JS.glob("*.js"))}
    contract = page_contract()
    read = {f for src in sources.values() for f in fields_read(src, tuple(contract))}
    # the scan sees the page's reading at all (else an empty scan would pass)
    assert {("job", "status"), ("job", "results"), ("job", "frames_total"), ("up", "job_id"), ("link", "url")} <= read
    assert unknown_fields(sources, contract) == []


def test_the_page_check_names_a_field_the_schema_lacks() -> None:
    contract = page_contract()
    assert "source" in stored_only_fields() and "source" not in contract["job"]
    page = {"bad.js": 'if (job.status === "done") show(job.result_urls["a"], job?.source.key);\n'
                      'const { status, elapsed } = job; const mine = myjob.nope + res.job.nope;\n'
                      'onState(status.frames_done, job["cheked"]); // job.in_a_comment\n'
                      'import { x } from "./job.js"; /* job.also_a_comment */'}
    assert unknown_fields(page, contract) == ["bad.js: job.cheked", "bad.js: job.elapsed", "bad.js: job.result_urls",
                                              "bad.js: job.source"]
