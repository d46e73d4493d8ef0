"""The attacks a red team ran against the local runner's embedded S3/SQS, replayed on
loopback against the real server (moto behind ``local.gate``), each asserting the safe outcome."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import encode_png
from urllib3.filepost import encode_multipart_formdata

ROOT = Path(__file__).resolve().parents[1]
PAGE = "http://127.0.0.1:8123"  # the origin the page would be served from
EVIL = "http://evil.example"
MAX = 1000  # content-length-range of the uploads signed here


@pytest.fixture(scope="module")
def s3srv() -> Iterator[dict[str, Any]]:
    from humanparse.local.s3local import EmbeddedS3

    srv = EmbeddedS3()
    srv.start()
    up, out = f"sec-up-{uuid.uuid4().hex[:8]}", f"sec-out-{uuid.uuid4().hex[:8]}"
    aws = srv.provision([up, out], [PAGE])
    s3 = aws.client("s3")
    s3.put_object(Bucket=up, Key="uploads/victim/photo.jpg", Body=b"private photo", ContentType="image/jpeg")
    yield {"endpoint": srv.endpoint, "s3": s3, "sqs": aws.client("sqs"), "queue": aws.queue_url, "up": up, "out": out}
    srv.stop()


def client(endpoint: str, key_id: str, secret: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                                                                    s3={"addressing_style": "path"}))


def xml_code(r: requests.Response) -> str:
    m = re.search(r"<Code>([^<]+)</Code>", r.text)
    return m.group(1) if m else ""


def keys(srv: dict[str, Any], bucket: str | None = None) -> list[str]:
    return [o["Key"] for o in srv["s3"].list_objects_v2(Bucket=bucket or srv["up"]).get("Contents", [])]


# ----------------------------------------------------------------------------------- auth, admin, CORS
def test_made_up_or_wrong_credentials_are_refused(s3srv: dict[str, Any]) -> None:
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    ep, up = s3srv["endpoint"], s3srv["up"]
    for key_id, secret, code in (("AKIAMADEUPMADEUP1234", "whatever", "InvalidAccessKeyId"),
                                 ("local", "local-secret", "InvalidAccessKeyId"),  # the old constant
                                 (LOCAL_CREDENTIALS["aws_access_key_id"], "wrong-secret", "SignatureDoesNotMatch")):
        bad = client(ep, key_id, secret)
        for op, kw in (("list_objects_v2", {}), ("get_object", {"Key": "uploads/victim/photo.jpg"}),
                       ("put_object", {"Key": "uploads/victim/photo.jpg", "Body": b"overwritten"})):
            with pytest.raises(ClientError) as ei:
                getattr(bad, op)(Bucket=up, **kw)
            assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            assert ei.value.response["Error"]["Code"] == code
    # unsigned: S3-style XML 403, nothing listed or read
    for r in (requests.get(f"{ep}/{up}", timeout=10), requests.get(f"{ep}/{up}/uploads/victim/photo.jpg", timeout=10),
              requests.get(f"{ep}/", timeout=10)):
        assert r.status_code == 403 and xml_code(r) == "AccessDenied" and b"private photo" not in r.content
    body = s3srv["s3"].get_object(Bucket=up, Key="uploads/victim/photo.jpg")["Body"].read()
    assert body == b"private photo"


def test_sqs_needs_the_runs_credentials(s3srv: dict[str, Any]) -> None:
    s3srv["sqs"].send_message(QueueUrl=s3srv["queue"], MessageBody="{}")
    sqs = boto3.client("sqs", endpoint_url=s3srv["endpoint"], region_name="us-east-1",
                       aws_access_key_id="AKIAMADEUPMADEUP1234", aws_secret_access_key="x",
                       config=Config(retries={"max_attempts": 1}))
    for call in (lambda: sqs.receive_message(QueueUrl=s3srv["queue"]), lambda: sqs.purge_queue(QueueUrl=s3srv["queue"]),
                 lambda: sqs.list_queues()):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    r = requests.post(s3srv["endpoint"] + "/", data={"Action": "ListQueues"}, timeout=10)
    assert r.status_code == 403 and "humanparse" not in r.text
    got = s3srv["sqs"].receive_message(QueueUrl=s3srv["queue"], WaitTimeSeconds=1).get("Messages", [])
    assert got, "the genuine client still reads the queue"


def test_presigned_urls_work_only_as_signed(s3srv: dict[str, Any]) -> None:
    url = s3srv["s3"].generate_presigned_url("get_object", Params={"Bucket": s3srv["up"],
                                                                   "Key": "uploads/victim/photo.jpg"}, ExpiresIn=60)
    assert requests.get(url, timeout=10).content == b"private photo"
    # the signature's first character changed (a fixed "0" left one signature in 16 as it was)
    resigned = re.sub(r"X-Amz-Signature=(\w)", lambda m: "X-Amz-Signature=" + "10"[m.group(1) != "0"], url)
    tampered = [url.replace("photo.jpg", "photo.jpeg"), resigned,
                url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")]
    for u in tampered:
        r = requests.get(u, timeout=10)
        assert r.status_code == 403 and b"private photo" not in r.content, u
    forged = client(s3srv["endpoint"], "AKIAMADEUPMADEUP1234", "x").generate_presigned_url(
        "get_object", Params={"Bucket": s3srv["up"], "Key": "uploads/victim/photo.jpg"})
    assert requests.get(forged, timeout=10).status_code == 403


def test_moto_admin_api_is_not_served(s3srv: dict[str, Any]) -> None:
    ep = s3srv["endpoint"]
    for path in ("/moto-api/reset", "//moto-api/reset", "/moto-api/reset-auth", "/moto-api/state-manager/set-transition"):
        r = requests.post(ep + path, data=b"0", timeout=10)
        assert r.status_code in (403, 404), path
    assert requests.get(ep + "/moto-api/", timeout=10).status_code in (403, 404)
    assert "uploads/victim/photo.jpg" in keys(s3srv)  # buckets and objects intact
    assert s3srv["sqs"].get_queue_url(QueueName="humanparse-uploads")["QueueUrl"]


def test_cors_allows_only_the_page_origin(s3srv: dict[str, Any]) -> None:
    ep, up = s3srv["endpoint"], s3srv["up"]
    url = s3srv["s3"].generate_presigned_url("get_object", Params={"Bucket": up, "Key": "uploads/victim/photo.jpg"})

    def preflight(origin: str, method: str = "POST") -> requests.Response:
        return requests.options(f"{ep}/{up}", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "x-test"})

    for r in (preflight(EVIL), preflight(EVIL, "GET"), preflight("null"), preflight(PAGE, "DELETE"),
              requests.get(url, headers={"Origin": EVIL}, timeout=10), requests.get(f"{ep}/{up}", headers={"Origin": EVIL}, timeout=10)):
        assert "Access-Control-Allow-Origin" not in r.headers, r.headers
        assert "Access-Control-Allow-Credentials" not in r.headers
    assert preflight(EVIL).status_code == 403
    ok = preflight(PAGE)
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == PAGE
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    got = requests.get(url, headers={"Origin": PAGE}, timeout=10)
    assert got.status_code == 200 and got.headers["Access-Control-Allow-Origin"] == PAGE


def test_credentials_differ_per_run() -> None:
    code = "from humanparse.local.s3local import LOCAL_CREDENTIALS as c; print(c['aws_access_key_id'], c['aws_secret_access_key'])"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={"PYTHONPATH": str(ROOT / "function"), "PATH": ""}).stdout.split() for _ in range(2)]
    assert all(len(r) == 2 and len(r[1]) >= 40 for r in runs) and runs[0][0] != runs[1][0] and runs[0][1] != runs[1][1]
    assert "local-secret" not in (ROOT / "function/humanparse/local/s3local.py").read_text()


# ------------------------------------------------------------------------------------- form POSTs
def presigned_post(srv: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    key = key or f"uploads/{uuid.uuid4().hex}/image.jpg"
    post: dict[str, Any] = srv["s3"].generate_presigned_post(
        srv["up"], key, Fields={"Content-Type": "image/jpeg"},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, MAX]], ExpiresIn=300)
    return post


def send(url: str, parts: list[Any], ctype: str | None = None, **headers: str) -> requests.Response:
    body, boundary_type = encode_multipart_formdata(parts)
    if ctype:
        boundary_type = boundary_type.replace("multipart/form-data", ctype)
    return requests.post(url, data=body, headers={"Content-Type": boundary_type, **headers}, timeout=30)


def test_genuine_form_post_is_stored(s3srv: dict[str, Any]) -> None:
    post = presigned_post(s3srv)
    r = send(post["url"], [*post["fields"].items(), ("file", ("p.jpg", b"x" * MAX, "image/jpeg"))])
    assert r.status_code == 204, r.text
    got = s3srv["s3"].get_object(Bucket=s3srv["up"], Key=post["fields"]["key"])
    assert got["Body"].read() == b"x" * MAX and got["ContentType"] == "image/jpeg"


def test_second_key_field_in_another_case_is_refused(s3srv: dict[str, Any]) -> None:
    post = presigned_post(s3srv)
    evil = "results/victim-job/status.json"
    fields = [("key", evil)] + [("Key" if k == "key" else k, v) for k, v in post["fields"].items()]
    r = send(post["url"], [*fields, ("file", ("p.jpg", b"x", "image/jpeg"))])
    assert r.status_code == 400 and xml_code(r) == "InvalidArgument", r.text
    fields = [(k, v) for k, v in post["fields"].items()] + [("KEY", evil)]
    assert send(post["url"], [*fields, ("file", ("p.jpg", b"x", "image/jpeg"))]).status_code == 400
    assert evil not in keys(s3srv) and post["fields"]["key"] not in keys(s3srv)


def test_a_second_file_part_is_refused(s3srv: dict[str, Any]) -> None:
    post = presigned_post(s3srv)
    small, big = ("p.jpg", b"x" * 10, "image/jpeg"), ("q.jpg", b"y" * (MAX + 1000), "image/jpeg")
    for files in ([("file", small), ("file", big)], [("file", small), ("other", big)], [("other", big), ("file", small)],
                  [("file", small), ("File", big)]):
        r = send(post["url"], [*post["fields"].items(), *files])
        assert r.status_code == 400 and xml_code(r) == "InvalidArgument", (files, r.text)
    assert post["fields"]["key"] not in keys(s3srv)
    r = send(post["url"], [*post["fields"].items(), ("file", big)])  # the range holds on the real file
    assert r.status_code == 400 and xml_code(r) == "EntityTooLarge"


def test_form_without_key_or_file_is_400_not_500(s3srv: dict[str, Any]) -> None:
    post = presigned_post(s3srv)
    no_key = [(k, v) for k, v in post["fields"].items() if k != "key"]
    r = send(post["url"], [*no_key, ("file", ("p.jpg", b"x", "image/jpeg"))])
    assert r.status_code == 400 and "key" in r.text
    r = send(post["url"], list(post["fields"].items()))
    assert r.status_code == 400 and xml_code(r) == "InvalidArgument"
    r = requests.post(post["url"], data=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"},
                      timeout=10)
    assert r.status_code == 400


def test_upper_case_media_type_is_checked(s3srv: dict[str, Any]) -> None:
    post = presigned_post(s3srv)
    forged = dict(post["fields"], key="uploads/forged/image.jpg")
    for ctype in ("Multipart/Form-Data", "MULTIPART/FORM-DATA"):
        r = send(post["url"], [*forged.items(), ("file", ("p.jpg", b"x", "image/jpeg"))], ctype=ctype)
        assert r.status_code == 403 and "Policy Condition failed" in r.text, r.text
    assert "uploads/forged/image.jpg" not in keys(s3srv)
    r = send(post["url"], [*post["fields"].items(), ("file", ("p.jpg", b"x", "image/jpeg"))], ctype="Multipart/Form-Data")
    assert r.status_code == 204 and post["fields"]["key"] in keys(s3srv)


def test_virtual_host_style_is_checked(s3srv: dict[str, Any]) -> None:
    post = presigned_post(s3srv)
    root = s3srv["endpoint"] + "/"
    forged = dict(post["fields"], key="uploads/forged-vhost/image.jpg")
    for host in (f"{s3srv['up']}.s3.amazonaws.com", f"{s3srv['up']}.localhost"):
        r = send(root, [*forged.items(), ("file", ("p.jpg", b"x", "image/jpeg"))], Host=host)
        assert r.status_code == 403 and "Policy Condition failed" in r.text, (host, r.text)
        r = send(root, [*post["fields"].items(), ("file", ("p.jpg", b"z" * (MAX + 1), "image/jpeg"))], Host=host)
        assert r.status_code == 400 and xml_code(r) == "EntityTooLarge"
    # a policy signed for the upload bucket does not open the results bucket, whatever the Host says
    r = send(root, [*post["fields"].items(), ("file", ("p.jpg", b"x", "image/jpeg"))], Host=f"{s3srv['out']}.localhost")
    assert r.status_code == 403
    assert "uploads/forged-vhost/image.jpg" not in keys(s3srv) and post["fields"]["key"] not in keys(s3srv, s3srv["out"])
    r = send(root, [*post["fields"].items(), ("file", ("p.jpg", b"v", "image/jpeg"))], Host=f"{s3srv['up']}.localhost")
    assert r.status_code == 204 and post["fields"]["key"] in keys(s3srv)


def signed_fields(policy: dict[str, Any], key: str) -> dict[str, str]:
    """A form whose policy is really signed with this run's key (what only the app could produce)."""
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    cred = f"{LOCAL_CREDENTIALS['aws_access_key_id']}/{now[:8]}/us-east-1/s3/aws4_request"
    fields = {"key": key, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": cred, "x-amz-date": now}
    policy = dict(policy, conditions=[*policy.get("conditions", []), *({k: v} for k, v in fields.items())])
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    req = AWSRequest(method="POST", url="http://localhost/")
    req.context["timestamp"] = now
    auth = SigV4Auth(Credentials(LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"]),
                     "s3", "us-east-1")
    fields["x-amz-signature"] = auth.signature(fields["policy"], req)
    return fields


def test_policy_without_expiration_is_403_not_500(s3srv: dict[str, Any]) -> None:
    url = f"{s3srv['endpoint']}/{s3srv['up']}"
    for policy in ({"conditions": [{"bucket": s3srv["up"]}]}, {"expiration": "soon", "conditions": []},
                   {"expiration": 5, "conditions": []}):
        r = send(url, [*signed_fields(policy, "uploads/noexp/image.jpg").items(), ("file", ("p", b"x", "image/jpeg"))])
        assert r.status_code == 403 and xml_code(r) == "AccessDenied", (policy, r.text)
    bad_range = {"expiration": "2999-01-01T00:00:00Z", "conditions": [["content-length-range", "a", None]]}
    r = send(url, [*signed_fields(bad_range, "uploads/noexp/image.jpg").items(), ("file", ("p", b"x", "image/jpeg"))])
    assert r.status_code == 400 and xml_code(r) == "InvalidPolicyDocument"
    good = {"expiration": "2999-01-01T00:00:00Z", "conditions": [{"bucket": s3srv["up"]}]}
    r = send(url, [*signed_fields(good, "uploads/withexp/image.jpg").items(), ("file", ("p", b"x", "image/jpeg"))])
    assert r.status_code == 204 and "uploads/withexp/image.jpg" in keys(s3srv)
    assert "uploads/noexp/image.jpg" not in keys(s3srv)


def test_check_policy_errors_are_s3_errors() -> None:
    from humanparse.local.policy import S3Error, check_policy

    fields = signed_fields({"conditions": []}, "k")
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    with pytest.raises(S3Error) as ei:
        check_policy(fields, 1, "b", {LOCAL_CREDENTIALS["aws_access_key_id"]: LOCAL_CREDENTIALS["aws_secret_access_key"]})
    assert ei.value.status.startswith("403") and "expiration" in ei.value.message


# -------------------------------------------------------------------------------- the runner as users run it
def test_runner_storage_refuses_strangers_and_serves_the_page(tmp_path: Path, shared_models: Path) -> None:
    """``local_runner.py serve``: its S3 refuses unsigned reads and the admin reset, answers CORS for the page's
    own origin only, and the page's flow (presigned POST with the page's Origin, then the job) still works."""
    from runner import Runner
    from test_local_runner import wait

    r = Runner(tmp_path / "data").start()
    try:
        ep = re.search(r"embedded S3 at (http://127\.0\.0\.1:\d+)", r.log())
        assert ep, r.log()
        s3 = ep.group(1)
        assert requests.get(f"{s3}/humanparse-uploads", timeout=10).status_code == 403
        assert requests.post(f"{s3}/moto-api/reset", timeout=10).status_code == 404
        answer = requests.post(r.base + "/api/uploads", json={"content_type": "image/png"}, timeout=30).json()
        up, job = answer["upload"], answer["job_id"]
        pre = requests.options(up["url"], headers={"Origin": r.base, "Access-Control-Request-Method": "POST"}, timeout=10)
        assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == r.base
        assert "Access-Control-Allow-Origin" not in requests.options(up["url"], timeout=10, headers={
            "Origin": EVIL, "Access-Control-Request-Method": "POST"}).headers
        png = encode_png(np.full((64, 48, 3), 128, np.uint8))
        sent = requests.post(up["url"], data=up["fields"], files={"file": ("p.png", png, "image/png")},
                             headers={"Origin": r.base}, timeout=30)
        assert sent.status_code == 204 and sent.headers["Access-Control-Allow-Origin"] == r.base
        j = wait(r.base, job)
        assert j["status"] == "done", j
        got = requests.get(j["results"]["label.png"], headers={"Origin": r.base}, timeout=30)
        assert got.status_code == 200 and got.headers["Access-Control-Allow-Origin"] == r.base
    finally:
        r.stop()
