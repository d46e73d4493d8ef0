"""Lambda cold start: bytecode compiled into the image, and the fast path's kernel verdict shared
through S3 between execution environments (``humanparse.entries.kernel_share``, against moto's real S3 server and the
random-weight M2FP folder). Also the CLI summary counting each file once. Nothing here is timed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PEOPLE_PHOTO, ROOT

DOCKERFILE = ROOT / "Dockerfile"


# ------------------------------------------------------------------------------------------ bytecode
def stages(text: str) -> list[list[str]]:
    """The Dockerfile's stages, each a list of instructions (continuation lines joined, comments dropped)."""
    out: list[list[str]] = []
    joined, cur = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        cur += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            joined.append(cur.strip())
            cur = ""
    for ins in joined:
        if ins.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def _last(instrs: list[str], pred: Any) -> int:
    return max(i for i, ins in enumerate(instrs) if pred(ins))


def _compile_index(instrs: list[str], tree: str) -> int:
    hits = [i for i, ins in enumerate(instrs) if "compileall" in ins and tree in ins.split("compileall", 1)[1]]
    assert hits, f"no compileall over {tree}"
    return hits[-1]


def test_dockerfile_compiles_bytecode_after_the_trees_are_final() -> None:
    build, runtime = stages(DOCKERFILE.read_text())[0], stages(DOCKERFILE.read_text())[-1]
    venv = _compile_index(build, "/opt/venv/lib/python*/site-packages")
    # after every pip install and every python run in the venv (the calibration writes timestamp .pycs)
    assert venv > _last(build, lambda s: s.startswith("RUN") and ("pip install" in s or "/opt/venv/bin/python " in s
                                                                   and "compileall" not in s))
    assert any(ins.startswith("COPY --from=build /opt/venv /opt/venv") for ins in runtime)
    assert not any("pip install" in ins for ins in runtime)  # nothing rewrites the venv in the runtime stage
    own = _compile_index(runtime, "/var/task/function")
    assert own > _last(runtime, lambda s: s.startswith("COPY") and "/var/task/function" in s)
    for ins in (build[venv], runtime[own]):
        assert "--invalidation-mode unchecked-hash" in ins and " -f " in ins, ins
    for ins in build + runtime:  # bytecode is never deleted again
        if ins.startswith("RUN") and re.search(r"\brm\b|-delete\b", ins):
            assert "__pycache__" not in ins and ".pyc" not in ins, ins
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE.read_text()  # read-only at run time, as on Lambda


def _dockerfile_compileall_args() -> list[str]:
    """The options of the Dockerfile's compileall over our own package, exactly as written there."""
    runtime = stages(DOCKERFILE.read_text())[-1]
    ins = runtime[_compile_index(runtime, "/var/task/function")]
    m = re.search(r"python -m compileall (.+?) /var/task/function", ins)
    assert m
    return shlex.split(m.group(1))


def _pyc_flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")  # PEP 552: bit 0 hash-based, bit 1 check_source


@pytest.fixture()
def package(tmp_path: Path) -> Any:
    """tmp/pkgroot/coldpkg/__init__.py, made read-only after the test compiles it (restored at the end)."""
    root = tmp_path / "pkgroot"
    (root / "coldpkg").mkdir(parents=True)
    (root / "coldpkg" / "__init__.py").write_text('VALUE = "as compiled"\n')
    yield root / "coldpkg"
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _import_value(root: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    return subprocess.run([sys.executable, "-c", "import coldpkg; print(coldpkg.VALUE)"], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _edit_source(pkg: Path) -> None:
    """What a later COPY may do to the source's stat: newer mtime (here the text changes too, to tell which ran)."""
    src = pkg / "__init__.py"
    src.write_text('VALUE = "from source"\n')
    st = src.stat()
    os.utime(src, (st.st_atime + 1000, st.st_mtime + 1000))


def _read_only(tree: Path) -> dict[str, int]:
    for p in [tree, *tree.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return {str(p): p.stat().st_mtime_ns for p in tree.rglob("*")}


def test_dockerfile_bytecode_is_used_without_recompiling(package: Path) -> None:
    """The Dockerfile's own compileall options over a scratch package that already holds timestamp .pycs (as pip
    and the calibration leave them): rewritten as unchecked-hash, and a read-only import with
    PYTHONDONTWRITEBYTECODE uses them even after the source's mtime (and text) changed — no compile, no write."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)  # timestamp .pycs first
    args = _dockerfile_compileall_args()
    subprocess.run([sys.executable, "-m", "compileall", *args, str(package)], check=True)
    (pyc,) = (package / "__pycache__").glob("__init__.cpython-*.pyc")
    assert _pyc_flags(pyc) == 0b01  # hash-based, source never checked
    _edit_source(package)
    before = _read_only(package.parent)
    assert _import_value(package.parent) == "as compiled"
    assert {str(p): p.stat().st_mtime_ns for p in package.parent.rglob("*")} == before  # nothing written


def test_timestamp_bytecode_would_be_recompiled(package: Path) -> None:
    """The control: plain (timestamp) .pycs are stale once the source's mtime moves — Python compiles from
    source at every start, which is what the image did before (and what unchecked-hash prevents)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    _edit_source(package)
    _read_only(package.parent)
    assert _import_value(package.parent) == "from source"


# ------------------------------------------------------------------------------- kernel verdict via S3
def _settings(aws: dict[str, Any], m2fp_dir: Path, cache: Path, **kw: Any) -> Any:
    from humanparse.config import Settings

    return Settings(**{"upload_bucket": aws["upload_bucket"], "results_bucket": aws["results_bucket"],
                       "s3_endpoint_url": aws["endpoint"], "model_kind": "m2fp", "model_dir": m2fp_dir,
                       "precision": "fp32", "threads": 2, "kernel_cache_dir": cache, **kw})


@pytest.fixture()
def steady(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine keeps a measured verdict only when its repeated timings agree (a busy CPU: not cached). On the
    shared test machine that would make "measured, then cached" flaky, so every verdict counts as steady here,
    as in tests/test_autotune.py."""
    from humanparse.engine.m2fp import autotune

    monkeypatch.setattr(autotune, "NOISY_SPREAD", float("inf"))


def _shared(aws: dict[str, Any]) -> dict[str, Any]:
    obj = aws["s3"].get_object(Bucket=aws["results_bucket"], Key="results/_system/kernels.json")
    return {"doc": json.loads(obj["Body"].read()), "etag": obj["ETag"]}


def test_verdict_measured_once_then_shared(aws: dict[str, Any], m2fp_dir: Path, tmp_path: Path,
                                           steady: None) -> None:
    """First cold start (S3 has no verdict: NoSuchKey, ignored): measures and uploads. A second execution
    environment (empty local cache) against the same bucket reports the cached verdict and does not measure; a
    verdict whose values are wrong is ignored, measured again and replaced."""
    from humanparse.entries.service import load_configured_parser

    first = load_configured_parser(_settings(aws, m2fp_dir, tmp_path / "env1"), verdict_s3=aws["s3"]).parser
    assert first.info.kernels_reason.startswith("measured"), first.info.kernels_reason
    shared = _shared(aws)
    assert shared["doc"] == json.loads((tmp_path / "env1" / "kernels.json").read_text())
    (key, entry), = shared["doc"]["entries"].items()
    assert entry["kernels"] == first.info.kernels

    second = load_configured_parser(_settings(aws, m2fp_dir, tmp_path / "env2"), verdict_s3=aws["s3"]).parser
    assert second.info.kernels_reason.startswith("cached verdict"), second.info.kernels_reason
    assert str(tmp_path / "env2") in second.info.kernels_reason and second.info.kernels == first.info.kernels
    assert _shared(aws)["etag"] == shared["etag"]  # nothing measured, nothing put back

    bad = {**shared["doc"], "entries": {key: {**entry, "kernels": {g: "evil" for g in entry["kernels"]}}}}
    aws["s3"].put_object(Bucket=aws["results_bucket"], Key="results/_system/kernels.json", Body=json.dumps(bad))
    third = load_configured_parser(_settings(aws, m2fp_dir, tmp_path / "env3"), verdict_s3=aws["s3"]).parser
    assert third.info.kernels_reason.startswith("measured") and "evil" not in third.info.kernels.values()
    assert _shared(aws)["doc"]["entries"][key]["kernels"] == third.info.kernels


def test_sharing_off_and_lite_model_touch_no_s3(aws: dict[str, Any], m2fp_dir: Path, tmp_path: Path,
                                                steady: None) -> None:
    from humanparse.entries import kernel_share
    from humanparse.entries.service import load_configured_parser

    loaded = load_configured_parser(_settings(aws, m2fp_dir, tmp_path / "off", share_kernel_verdict=False),
                                    verdict_s3=aws["s3"])
    assert loaded.parser.info.kernels_reason.startswith("measured")
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=aws["results_bucket"])
    assert not kernel_share.wanted(_settings(aws, m2fp_dir, tmp_path, model_kind="lite"))
    assert not kernel_share.wanted(_settings(aws, m2fp_dir, tmp_path, kernels="default"))


HOSTILE = {
    "huge": b'{"version": 1, "entries": {}, "pad": "' + b"x" * (200 * 1024) + b'"}',
    "not json": b"\x00\xffnot json at all",
    "nested too deep": b"[" * 60_000,  # json.loads raises RecursionError, not ValueError
    "not an object": b"[1, 2, 3]",
    "entries not an object": b'{"version": 1, "entries": [1]}',
    "empty": b"",  # S3 answers a Range on an empty object with 416: an error, ignored
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_shared_file_is_refused_before_the_engine_sees_it(aws: dict[str, Any], m2fp_dir: Path,
                                                                  tmp_path: Path, name: str) -> None:
    from humanparse.entries import kernel_share

    settings = _settings(aws, m2fp_dir, tmp_path / "cache")
    aws["s3"].put_object(Bucket=aws["results_bucket"], Key=kernel_share.verdict_key(settings), Body=HOSTILE[name])
    share = kernel_share.fetch(settings, aws["s3"])
    assert share.fetched is None and not share.path.exists()


def test_s3_errors_are_ignored(aws: dict[str, Any], m2fp_dir: Path, tmp_path: Path) -> None:
    """No bucket (NoSuchBucket), nothing listening (connection refused): fetch and publish log and go on."""
    import boto3
    from botocore.config import Config
    from humanparse.entries import kernel_share

    settings = _settings(aws, m2fp_dir, tmp_path / "cache", results_bucket="no-such-bucket-here")
    share = kernel_share.fetch(settings, aws["s3"])
    assert share.fetched is None
    share.path.parent.mkdir(parents=True, exist_ok=True)
    share.path.write_text(json.dumps({"version": 1, "entries": {"cpu|2 threads": {"kernels": {}}}}))
    assert kernel_share.publish(share, "measured at load in 0.61 s at 2 threads") is False

    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1}))
    unreachable = kernel_share.fetch(_settings(aws, m2fp_dir, tmp_path / "dead"), dead)
    assert unreachable.fetched is None and not unreachable.reachable  # so publish does not wait again
    assert share.reachable  # NoSuchBucket is an answer from S3
    share.s3 = dead
    assert kernel_share.publish(share, "measured at load in 0.61 s at 2 threads") is False


def test_publish_merges_what_others_shared_meanwhile(aws: dict[str, Any], m2fp_dir: Path, tmp_path: Path) -> None:
    """Another environment (another CPU model) shared its verdict after this one fetched: both are kept; and
    when the merge would pass the size cap, only this load's entries are put."""
    from humanparse.entries import kernel_share

    settings = _settings(aws, m2fp_dir, tmp_path / "cache")
    share = kernel_share.fetch(settings, aws["s3"])  # nothing there yet
    theirs = {"version": 1, "entries": {"Intel Xeon|2 threads": {"kernels": {"deform_sampling": "csr"}}}}
    aws["s3"].put_object(Bucket=share.bucket, Key=share.key, Body=json.dumps(theirs))
    mine = {"version": 1, "entries": {"AMD EPYC|2 threads": {"kernels": {"deform_sampling": "bag"}}}}
    share.path.parent.mkdir(parents=True, exist_ok=True)
    share.path.write_text(json.dumps(mine))
    assert not kernel_share.publish(share, "cached verdict for this CPU and 2 threads (…)")  # not measured: no put
    assert kernel_share.publish(share, "measured at load in 0.61 s at 2 threads")
    got = json.loads(aws["s3"].get_object(Bucket=share.bucket, Key=share.key)["Body"].read())
    assert got["entries"] == {**theirs["entries"], **mine["entries"]}

    big = {"version": 1, "entries": {f"cpu {i}|2 threads": {"pad": "x" * 1000} for i in range(63)}}
    aws["s3"].put_object(Bucket=share.bucket, Key=share.key, Body=json.dumps(big))
    assert kernel_share.publish(share, "measured at load in 0.61 s at 2 threads")
    got = json.loads(aws["s3"].get_object(Bucket=share.bucket, Key=share.key)["Body"].read())
    assert got["entries"] == mine["entries"]


def test_template_lets_both_functions_read_and_write_the_verdict() -> None:
    from fnmatch import fnmatch

    from test_infra import ACCOUNT, STACK, render, resources

    arn = f"arn:aws:s3:::{STACK}-results-{ACCOUNT}/results/_system/kernels.json"
    roles = resources(render(), "AWS::IAM::Role")
    for fn in ("ParserFunction", "ApiFunction"):
        allowed: set[str] = set()
        for pol in roles[f"{fn}Role"]["Properties"].get("Policies", []):
            for st in pol["PolicyDocument"]["Statement"]:
                res = st["Resource"]
                res = res.get("Fn::Sub", res) if isinstance(res, dict) else res
                for r in res if isinstance(res, list) else [res]:
                    r = str(r).replace("${AWS::Partition}", "aws").replace("${AWS::StackName}", STACK)
                    r = r.replace("${AWS::AccountId}", ACCOUNT)
                    if st["Effect"] == "Allow" and fnmatch(arn, r):
                        allowed |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        assert {"s3:GetObject", "s3:PutObject"} <= allowed, (fn, allowed)


# ------------------------------------------------------------------------------------------ CLI summary
def _parse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    from humanparse.entries.cli import main

    rc = main(["parse", *argv, "--model", "lite", "--threads", "2", "--json"])
    cap = capsys.readouterr()
    return rc, [json.loads(line) for line in cap.out.splitlines()], cap.err.strip().splitlines()[-1]


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PEOPLE_PHOTO, root / "photo.jpg")
    return root


def test_junk_named_jpg_is_failed_only(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "x.jpg").write_text("not a photo\n")
    out = tmp_path / "out"
    rc, lines, summary = _parse([str(folder), "--out", str(out)], capsys)
    assert rc == 1 and sorted(line["status"] for line in lines) == ["failed", "parsed"]
    assert summary == f"1 parsed, 1 failed: {folder / 'x.jpg'} (not_an_image) → {out}"


def test_non_image_name_is_ignored_only(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "notes.txt").write_text("shot list\n")
    out = tmp_path / "out"
    rc, lines, summary = _parse([str(folder), "--out", str(out)], capsys)
    assert rc == 0 and sorted(line["status"] for line in lines) == ["ignored", "parsed"]
    assert summary == f"1 parsed, 0 failed; 1 non-image file ignored (notes.txt) → {out}"


def test_file_named_and_in_a_folder_is_counted_once(folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """notes.txt inside the folder given AND named explicitly AND matched by a glob: tried (it was named), so
    failed — once — and not also ignored."""
    notes = folder / "notes.txt"
    notes.write_text("shot list\n")
    out = tmp_path / "out"
    rc, lines, summary = _parse([str(folder), str(folder / "*.txt"), str(notes), "--out", str(out)], capsys)
    assert rc == 1 and sorted(line["status"] for line in lines) == ["failed", "parsed"]
    assert summary == f"1 parsed, 1 failed: {notes} (not_an_image) → {out}"
