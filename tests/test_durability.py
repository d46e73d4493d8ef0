"""Nothing acknowledged is lost, and the data folder trusts nothing but keys.

Store and write-through tests run moto's real server in-process on a temporary folder; the crash tests run
``local_runner.py`` as a user does (lite model, loopback only, bounded rounds) and kill it with ``kill -9`` of
its process group, SIGTERM and SIGHUP."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
from botocore.exceptions import ClientError
from humanparse.local.durable import MAX_NAME, DiskStore, Record, encode_key
from humanparse.local.s3local import EmbeddedS3, LocalAws
from humanparse.local.worker import storage_unavailable
from runner import Runner

ODD_KEYS = [".index.json", "..", ".", "uploads/../../etc/passwd", "a/b/c.jpg", "A.jpg", "a.jpg", "%41.jpg",
            "ümlaut café.png", "x" * 300, "y" * 299 + "z", "line\nbreak", "~tilde", "uploads/" + "é" * 200]
PUT_KEYS = [k for k in ODD_KEYS if k not in (".", "..", "line\nbreak")]  # not valid in a path-style URL


# ---------------------------------------------------------------------------------------- file names
def test_file_names_are_flat_distinct_and_bounded() -> None:
    names = [encode_key(k) for k in ODD_KEYS]
    assert len(set(n.lower() for n in names)) == len(names)  # distinct, even on a case-insensitive disk
    for n in names:
        assert 0 < len(n) <= MAX_NAME and "/" not in n and not n.startswith(".") and n not in (".", "..")
    assert "~" in encode_key("x" * 300) and "~" not in encode_key("~tilde")  # a cut name never equals a whole one


def test_torn_or_foreign_files_are_quarantined_never_served(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "d")
    store.open()
    for k in ("good", "torn", "renamed"):
        store.put(Record("b", k, b"0123456789" * 100, "etag"))
    torn = store.path("b", "torn")
    torn.write_bytes(torn.read_bytes()[:-7])  # a crash mid-write on a disk that does not order writes
    store.path("b", "renamed").rename(store.path("b", "other"))  # a name that is not its key's
    (store.path("b", "x").parent / ".tmp-leftover").write_bytes(b"half")  # never acknowledged
    problems = store.verify()
    assert len(problems) == 3 and any("torn" in p for p in problems)
    assert [r.key for r in store.scan("b")] == ["good"]
    assert store.verify() == []  # repaired: bad ones moved aside, temp file gone
    assert len(list((tmp_path / "d" / "quarantine").rglob("*"))) == 3  # 1 folder + 2 files kept for a person
    store.close()


def test_data_folder_has_a_format_and_one_runner(tmp_path: Path) -> None:
    from humanparse.local.durable import FORMAT_FILE, DataDirError

    a = DiskStore(tmp_path / "d")
    a.open()
    assert json.loads((tmp_path / "d" / FORMAT_FILE).read_text())["format"] == 2
    with pytest.raises(DataDirError, match="another local runner"):
        DiskStore(tmp_path / "d").open()
    a.close()
    (tmp_path / "d" / FORMAT_FILE).write_text('{"format": 99}')
    with pytest.raises(DataDirError, match="format 99"):
        DiskStore(tmp_path / "d").open()


def test_old_mirror_is_migrated_without_trusting_its_index(tmp_path: Path) -> None:
    """The path-escape attack: a crafted ``.index.json`` naming files outside the folder."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    old = tmp_path / "d" / "s3" / "bkt"
    old.mkdir(parents=True)
    (old / "uploads%2Fa%2Fimage.jpg").write_bytes(b"jpeg bytes")
    (old / "link").symlink_to(victim)
    (old / ".index.json").write_text(json.dumps({
        "uploads%2Fa%2Fimage.jpg": {"content_type": "image/jpeg"}, "../../victim.txt": {}, "link": {},
        ".index.json": {}, "%2E%2E": {}}))
    store = DiskStore(tmp_path / "d")
    store.open()
    assert [(r.key, r.body, r.metadata) for r in store.scan("bkt")] == [
        ("uploads/a/image.jpg", b"jpeg bytes", {"Content-Type": "image/jpeg"})]
    assert victim.read_text() == "keep me"
    store.close()


# -------------------------------------------------------------------------------------- write-through
@pytest.fixture()
def durable(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = DiskStore(tmp_path / "data")
    store.open()
    srv = EmbeddedS3(store=store, reserve=lambda b, k: k.startswith("uploads/"))
    srv.start()
    aws = LocalAws(srv.endpoint, srv.region)
    s3, sqs = aws.client("s3"), aws.client("sqs")
    bucket = f"dur-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    q = sqs.create_queue(QueueName=f"q-{bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    sqs.purge_queue(QueueUrl=q)  # the s3:TestEvent
    yield {"store": store, "srv": srv, "s3": s3, "sqs": sqs, "queue": q, "bucket": bucket}
    srv.stop()
    store.close()


def _post(d: dict[str, Any], key: str, body: bytes) -> requests.Response:
    post = d["s3"].generate_presigned_post(d["bucket"], key, Fields={"Content-Type": "image/jpeg"},
                                           Conditions=[{"Content-Type": "image/jpeg"},
                                                       ["content-length-range", 1, 1 << 20]])
    return requests.post(post["url"], data=post["fields"], files={"file": ("a.jpg", body, "image/jpeg")},
                         timeout=30)


def _created_events(d: dict[str, Any]) -> list[str]:
    msgs = d["sqs"].receive_message(QueueUrl=d["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [unquote_plus(r["s3"]["object"]["key"]) for m in msgs.get("Messages", []) for r in json.loads(m["Body"])["Records"]]


def test_every_2xx_is_on_disk_and_restores(durable: dict[str, Any]) -> None:
    d, store, b = durable, durable["store"], durable["bucket"]
    assert _post(d, "uploads/j/image.jpg", b"photo").status_code == 204
    assert store.get(b, "uploads/j/image.jpg").body == b"photo"  # type: ignore[union-attr]
    for key in PUT_KEYS:  # a 300-char key or `.index.json` works like any other
        d["s3"].put_object(Bucket=b, Key=key, Body=key.encode(), ContentType="text/plain")
        rec = store.get(b, key)
        assert rec is not None and rec.body == key.encode() and rec.metadata.get("content-type") == "text/plain"
    d["s3"].delete_object(Bucket=b, Key="a.jpg")
    assert store.get(b, "a.jpg") is None
    EmbeddedS3.bucket(b).keys.clear()  # what a restart loses
    d["srv"].restore([b])
    got = d["s3"].get_object(Bucket=b, Key=".index.json")
    assert got["Body"].read() == b".index.json" and got["ContentType"] == "text/plain"
    keys = {o["Key"] for o in d["s3"].list_objects_v2(Bucket=b)["Contents"]}
    assert keys == (set(PUT_KEYS) - {"a.jpg"}) | {"uploads/j/image.jpg"}
    assert store.verify() == []


def test_disk_failure_gives_503_and_acknowledges_nothing(durable: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    d, b = durable, durable["bucket"]
    assert _post(d, "uploads/old/image.jpg", b"stored before").status_code == 204
    assert _created_events(d) == ["uploads/old/image.jpg"]

    def full(*_a: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(d["store"], "_write_file", full)
    r = _post(d, "uploads/new/image.jpg", b"never stored")
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert r.json()["error"] == "storage_unavailable" and "space" in r.json()["detail"]
    with pytest.raises(ClientError) as ei:  # an S3 API write: 503 too (after boto3's retries)
        d["s3"].put_object(Bucket=b, Key="results/x/status.json", Body=b"{}")
    assert storage_unavailable(ei.value)
    with pytest.raises(ClientError):  # nothing half-kept in memory either
        d["s3"].head_object(Bucket=b, Key="uploads/new/image.jpg")
    assert _created_events(d) == []  # and nobody was told about it
    assert d["s3"].get_object(Bucket=b, Key="uploads/old/image.jpg")["Body"].read() == b"stored before"  # reads work
    monkeypatch.undo()
    assert _post(d, "uploads/new/image.jpg", b"stored now").status_code == 204  # the client's retry
    assert _created_events(d) == ["uploads/new/image.jpg"]


def test_free_space_reserve_refuses_uploads_not_results(durable: dict[str, Any]) -> None:
    d, b = durable, durable["bucket"]
    d["store"].min_free_bytes = 1 << 60
    assert _post(d, "uploads/a/image.jpg", b"x").status_code == 503
    d["s3"].put_object(Bucket=b, Key="results/a/status.json", Body=b"{}")  # results of accepted work still fit
    assert d["store"].get(b, "results/a/status.json") is not None


# ----------------------------------------------------------------------------------------- crash tests
def _upload(base: str, data: bytes) -> tuple[str, int]:
    up = requests.post(base + "/api/uploads", json={"content_type": "image/jpeg", "filename": "p.jpg"},
                       timeout=30).json()
    r = requests.post(up["upload"]["url"], data=up["upload"]["fields"], files={"file": ("p.jpg", data, "image/jpeg")},
                      timeout=30)
    return str(up["job_id"]), r.status_code


def _upload_some(base: str, photos: list[bytes], n: int, acked: list[str], gap: float) -> None:
    """Upload ``n`` photos one after another; note each job whose upload got a 2xx. Stops quietly when the
    runner dies under it (that upload was not acknowledged)."""
    for i in range(n):
        try:
            job, code = _upload(base, photos[i % len(photos)])
        except (requests.RequestException, ValueError):
            return
        if 200 <= code < 300:
            acked.append(job)
        time.sleep(gap)


def _final_states(base: str, jobs: list[str], timeout: float) -> dict[str, str]:
    deadline, states = time.time() + timeout, {}
    while time.time() < deadline:
        states = {j: requests.get(f"{base}/api/jobs/{j}", timeout=30).json().get("status", "404") for j in jobs}
        if all(s in ("done", "failed") for s in states.values()):
            break
        time.sleep(0.3)
    return states


def _check_folder(data_dir: Path) -> None:
    """Consistent: every record passes its check, no temp files, and each `done` names only stored files."""
    store = DiskStore(data_dir)
    assert store.verify() == []
    objs = {r.key: r for b in store.buckets() for r in store.scan(b, repair=False)}
    for key, rec in objs.items():
        if key.endswith("/status.json"):
            status = json.loads(rec.body)
            if status["status"] == "done":
                prefix = key.rsplit("/", 1)[0]
                assert all(f"{prefix}/{f}" in objs for f in status["files"]), key


LITE = ("--model", "lite")


def test_kill9_at_random_moments_loses_no_acknowledged_upload(tmp_path: Path, shared_models: Path,
                                                              people_photos: list[Path]) -> None:
    rnd = random.Random(22)
    photos = [p.read_bytes() for p in people_photos[:3]]
    data, acked = tmp_path / "data", []
    t0 = time.time()
    for _ in range(3):
        r = Runner(data, *LITE).start()
        uploader = threading.Thread(target=_upload_some, args=(r.base, photos, 4, acked, rnd.uniform(0, 0.4)))
        uploader.start()
        time.sleep(rnd.uniform(0.2, 3.0))  # during uploads, parses or result writes
        r.kill9()
        uploader.join(60)
    r = Runner(data, *LITE).start()
    try:
        states = _final_states(r.base, acked, timeout=120)
    finally:
        assert r.stop() == 0
    print(f"\nkill -9 x3: {len(acked)} acknowledged uploads, {time.time() - t0:.0f} s")
    assert acked and states == {j: "done" for j in acked}
    _check_folder(data)


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM and SIGHUP are POSIX signals (Windows' Ctrl-Break: test_platforms)")
def test_sigterm_and_sighup_stop_gracefully_a_second_signal_at_once(tmp_path: Path, shared_models: Path,
                                                                   people_photos: list[Path]) -> None:
    photos = [p.read_bytes() for p in people_photos[:2]]
    data, acked = tmp_path / "data", []
    r = Runner(data, *LITE).start()
    _upload_some(r.base, photos, 1, acked, 0)
    assert _final_states(r.base, acked, timeout=60) == {acked[0]: "done"}
    _upload_some(r.base, photos, 1, acked, 0)
    t = time.time()
    assert r.stop(sig=signal.SIGTERM) == 0  # in-flight parse finished, then exit 0
    assert "stopped cleanly" in r.log(), r.log()[-2000:]
    print(f"\nSIGTERM with a parse in flight: exit 0 after {time.time() - t:.1f} s")

    r = Runner(data, *LITE).start()
    _upload_some(r.base, photos, 2, acked, 0)
    assert r.proc is not None
    r.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert r.stop(timeout=10, sig=signal.SIGHUP) == 128 + signal.SIGHUP  # the second signal: at once

    torn = DiskStore(data).path("humanparse-uploads", f"results/{acked[0]}/color.png")
    torn.write_bytes(torn.read_bytes()[:-100])  # a result file of a `done` job torn (bad disk, bad copy)
    r = Runner(data, *LITE).start()
    try:
        states = _final_states(r.base, acked, timeout=120)
        color = requests.get(requests.get(f"{r.base}/api/jobs/{acked[0]}", timeout=30).json()["results"]["color.png"],
                             timeout=30)
    finally:
        assert r.stop(sig=signal.SIGHUP) == 0
    assert len(acked) == 4 and states == {j: "done" for j in acked}
    assert color.status_code == 200 and color.content[:4] == b"\x89PNG"  # parsed again, never served torn
    assert "parsing again" in r.log()
    _check_folder(data)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A 1 MB tmpfs when this machine lets the test mount one; else the same refusal injected through the
    free-space reserve (every upload would leave less than it free)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                                   capture_output=True).returncode == 0
    env = {"HUMANPARSE_LOCAL_MIN_FREE_MB": "0" if mounted else str(1 << 30)}
    try:
        yield mnt, env
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_no_2xx_for_unsaved_bytes_and_still_answering(small_disk: tuple[Path, dict[str, str]],
                                                                shared_models: Path, people_photos: list[Path]) -> None:
    mnt, env = small_disk
    photo = people_photos[0].read_bytes()
    r = Runner(mnt / "data", *LITE, env=env).start()
    try:
        codes, acked = [], []
        for _ in range(60):  # far more than 1 MB, with results
            job, code = _upload(r.base, photo)
            codes.append(code)
            if code < 300:
                acked.append(job)
            else:
                break
        assert codes[-1] == 503, codes
        assert requests.get(r.base + "/api/healthz", timeout=10).status_code == 200  # still answering
        store = DiskStore(mnt / "data")
        on_disk = {rec.key for b in store.buckets() for rec in store.scan(b, repair=False)}
        assert all(any(job in k and k.startswith("uploads/") for k in on_disk) for job in acked)  # 2xx = on disk
        if acked:
            assert requests.get(f"{r.base}/api/jobs/{acked[0]}", timeout=10).status_code == 200  # reads work
    finally:
        r.stop()


def test_results_the_disk_refused_are_retried_without_using_up_redeliveries(moto_server: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from humanparse.local import worker as worker_mod

    monkeypatch.setattr(worker_mod, "STORAGE_RETRY_S", 0)
    sqs = LocalAws(moto_server, "us-east-1").client("sqs")
    q = sqs.create_queue(QueueName=f"w-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    sqs.send_message(QueueUrl=q, MessageBody='{"Records": []}')
    calls: list[int] = []
    full = ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "disk full"},
                        "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")

    def handler(_event: dict[str, Any], _ctx: Any) -> None:
        calls.append(1)
        if len(calls) <= 4:  # more refusals than the 3 receives a message normally gets
            raise full

    w = worker_mod.Worker(sqs, q, handler)
    w.start()
    deadline = time.time() + 30
    while w.processed == 0 and time.time() < deadline:
        time.sleep(0.1)
    assert w.stop(5)
    assert len(calls) == 5 and w.processed == 1
