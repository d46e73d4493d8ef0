"""infra/template.yaml: linted, rendered through the SAM translator, wiring checked; and the Lambda entry run
with the environment the template gives the function (against moto S3)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, ROOT

TEMPLATE = ROOT / "infra" / "template.yaml"
STACK, ACCOUNT, REGION = "hp-test", "123456789012", "us-east-1"


def load_template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return dict(cfn_yaml.load(str(TEMPLATE)))


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator asks boto3 for a region
    tpl = json.loads(json.dumps(load_template(), default=str))
    out: dict[str, Any] = transform(tpl, {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/hp:1",
                                          "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                                          "AWS::StackName": STACK, "AWS::Partition": "aws"},
                                    NoManagedPolicies())
    return out


def resources(t: dict[str, Any], typ: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == typ}


def test_cfn_lint_passes() -> None:
    r = subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
                        str(TEMPLATE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_trigger_never_sees_outputs(rendered: dict[str, Any]) -> None:
    buckets = resources(rendered, "AWS::S3::Bucket")
    notified = {k: v for k, v in buckets.items() if "NotificationConfiguration" in v["Properties"]}
    assert list(notified) == ["UploadBucket"]
    rules = [c["Filter"]["S3Key"]["Rules"] for c in
             notified["UploadBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]]
    prefixes = {r["Value"] for rs in rules for r in rs if r["Name"] == "prefix"}
    suffixes = {r["Value"] for rs in rules for r in rs if r["Name"] == "suffix"}
    assert prefixes == {"uploads/"} and suffixes == {".jpg", ".jpeg", ".png", ".webp"}
    env = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert not env["HUMANPARSE_RESULTS_PREFIX"].startswith(env["HUMANPARSE_UPLOAD_PREFIX"])
    assert str(env["HUMANPARSE_RESULTS_BUCKET"]) != str(env["HUMANPARSE_UPLOAD_BUCKET"])


def test_dlq_and_retries_attached(rendered: dict[str, Any]) -> None:
    (cfg,) = resources(rendered, "AWS::Lambda::EventInvokeConfig").values()
    p = cfg["Properties"]
    assert p["MaximumRetryAttempts"] == 2
    assert p["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_no_public_access_and_no_wildcard_cors(rendered: dict[str, Any]) -> None:
    for name, b in resources(rendered, "AWS::S3::Bucket").items():
        pab = b["Properties"]["PublicAccessBlockConfiguration"]
        assert all(pab[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                             "RestrictPublicBuckets")), name
        assert "BucketEncryption" in b["Properties"], name
        for rule in b["Properties"].get("CorsConfiguration", {}).get("CorsRules", []):
            assert "*" not in json.dumps(rule["AllowedOrigins"]), name
    for pol in resources(rendered, "AWS::S3::BucketPolicy").values():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            assert st["Principal"] != "*" and st["Principal"] != {"AWS": "*"}
    (url,) = resources(rendered, "AWS::Lambda::Url").values()
    cors = url["Properties"]["Cors"]
    assert cors["AllowCredentials"] is False and "*" not in json.dumps(cors["AllowOrigins"])


def test_least_privilege(rendered: dict[str, Any]) -> None:
    for name, role in resources(rendered, "AWS::IAM::Role").items():
        for pol in role["Properties"].get("Policies", []):
            for st in pol["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if any(a.startswith("s3:") for a in actions):
                    assert st["Resource"] != "*" and "s3:*" not in actions, (name, st)
                    if "s3:PutObject" in actions:
                        assert re.search(r"/(uploads|results)/\*$", json.dumps(st["Resource"]).strip('"}')), st


def test_backfill_uses_same_function(rendered: dict[str, Any]) -> None:
    (sm,) = resources(rendered, "AWS::StepFunctions::StateMachine").values()
    text = json.dumps(sm["Properties"])
    assert "DISTRIBUTED" in text and "listObjectsV2" in text and "ParserFunction" in text


def template_env() -> dict[str, str]:
    env = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    out = {}
    for k, v in env.items():
        s = str(v) if not isinstance(v, dict) else v.get("Fn::Sub", str(v))
        s = s.replace("${AWS::StackName}", STACK).replace("${AWS::AccountId}", ACCOUNT)
        s = s.replace("${PageOrigin}", "https://example.com")
        out[k] = s
    return out


def test_handler_with_template_environment(moto_server: str, shared_models: Path, tmp_path: Path,
                                           photo: Any) -> None:
    """Imports humanparse.handler (model loads at import) under exactly the template's variables, then
    delivers an S3 event and an HTTP event to the Lambda entry points."""
    import boto3
    from conftest import encode_jpeg
    from humanparse.local.s3local import LOCAL_CREDENTIALS  # the embedded S3 takes only this run's keys

    env = template_env()
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION, **LOCAL_CREDENTIALS)
    for b in (env["HUMANPARSE_UPLOAD_BUCKET"], env["HUMANPARSE_RESULTS_BUCKET"]):
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    key = "uploads/0123456789abcdef0123456789abcdef/image.jpg"
    body = encode_jpeg(photo)
    etag = s3.put_object(Bucket=env["HUMANPARSE_UPLOAD_BUCKET"], Key=key, Body=body)["ETag"].strip('"')
    ev = json.loads((EVENTS / "s3-post-presigned.json").read_text())
    ev["Records"][0]["s3"]["bucket"]["name"] = env["HUMANPARSE_UPLOAD_BUCKET"]
    ev["Records"][0]["s3"]["object"].update(key=key, eTag=etag, size=len(body))
    (tmp_path / "s3.json").write_text(json.dumps(ev))
    (tmp_path / "http.json").write_text((EVENTS / "apigw-v2-get-healthz.json").read_text())
    script = (
        "import json,sys; from humanparse import handler as h\n"
        "print(json.dumps({'s3': h.s3_handler(json.load(open(sys.argv[1])), None),"
        " 'http': h.http_handler(json.load(open(sys.argv[2])), None), 'notice': h._loaded.notice}))\n")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("HUMANPARSE_")}
    run_env.update(env)
    run_env.update({"AWS_ENDPOINT_URL_S3": moto_server, "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
                    "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "PYTHONPATH": str(ROOT / "function"),
                    "HOME": str(tmp_path)})
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s3.json"), str(tmp_path / "http.json")],
                       capture_output=True, text=True, env=run_env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["s3"]["records"][0]["status"] == "done", out
    assert out["http"]["statusCode"] == 200 and json.loads(out["http"]["body"])["status"] == "ok"
    status = json.loads(s3.get_object(Bucket=env["HUMANPARSE_RESULTS_BUCKET"],
                                      Key="results/0123456789abcdef0123456789abcdef/status.json")["Body"].read())
    assert status["status"] == "done"
