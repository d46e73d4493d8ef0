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


def render(**params: str) -> dict[str, Any]:
    """The template through the SAM translator with these parameter values, conditions then resolved."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator asks boto3 for a region
    tpl = json.loads(json.dumps(load_template(), default=str))
    values = {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/hp:1", "AWS::Region": REGION,
              "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK, "AWS::Partition": "aws", **params}
    out: dict[str, Any] = transform(tpl, values, NoManagedPolicies())
    return resolve_conditions(out, {**{k: str(v.get("Default", "")) for k, v in tpl["Parameters"].items()},
                                    **values})


NO_VALUE = object()


def resolve_conditions(t: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """Evaluate Conditions (Fn::Equals/Not/And/Or over parameter Refs), drop resources whose condition is
    false, and replace Fn::If by its chosen branch — what CloudFormation does at deploy time."""
    def value(x: Any) -> Any:
        if isinstance(x, dict) and "Ref" in x and x["Ref"] in params:
            return params[x["Ref"]]
        return x

    def cond(c: Any) -> bool:
        if isinstance(c, dict) and "Condition" in c:
            return cond(t["Conditions"][c["Condition"]])
        (fn, args), = c.items()
        if fn == "Fn::Equals":
            return bool(str(value(args[0])) == str(value(args[1])))
        if fn == "Fn::Not":
            return not cond(args[0])
        if fn == "Fn::And":
            return all(cond(a) for a in args)
        if fn == "Fn::Or":
            return any(cond(a) for a in args)
        raise ValueError(fn)

    truth = {name: cond(c) for name, c in t.get("Conditions", {}).items()}

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if set(x) == {"Fn::If"}:
                name, yes, no = x["Fn::If"]
                return walk(yes if truth[name] else no)
            if x == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            out = {k: walk(v) for k, v in x.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(x, list):
            return [v for v in (walk(i) for i in x) if v is not NO_VALUE]
        return x

    t = dict(t)
    t["Resources"] = {k: walk(v) for k, v in t["Resources"].items() if truth.get(v.get("Condition", ""), True)}
    return t


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return render()


def resources(t: dict[str, Any], typ: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == typ}


def test_cfn_lint_passes() -> None:
    r = subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
                        str(TEMPLATE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def s3_filter_matches(rules: list[dict[str, str]], key: str) -> bool:
    """S3's notification filter as S3 applies it: prefix and suffix, both case-sensitive, both must hold."""
    return all(key.startswith(r["Value"]) if r["Name"] == "prefix" else key.endswith(r["Value"]) for r in rules)


# Every kind of key the docs promise is parsed: any file under uploads/, whatever its suffix's case, or none.
PROMISED_KEYS = ["uploads/0123456789abcdef0123456789abcdef/image.jpg", "uploads/0123456789abcdef0123456789abcdef/image.webp",
                 "uploads/0123456789abcdef0123456789abcdef/video.mp4", "uploads/archive/IMG_0001.JPG",
                 "uploads/archive/scan.PNG", "uploads/archive/a.Jpeg", "uploads/clips/GOPR0001.MP4",
                 "uploads/clips/screen.MOV", "uploads/clips/phone.m4v", "uploads/clips/film.mkv",
                 "uploads/clips/x.WEBM", "uploads/archive/no-suffix", "uploads/archive/2024/07/photo.heic.jpg",
                 "uploads/spaces and ünïcode/ph oto.jpeg"]
NEVER_KEYS = ["results/0123456789abcdef0123456789abcdef/overlay.jpg", "other/photo.jpg", "uploads/archive/",
              "uploads/../results/x.jpg", "Uploads/photo.jpg"]


def test_every_promised_key_triggers_and_outputs_never_do(rendered: dict[str, Any]) -> None:
    """The template's notification filters (what S3 sends) and the handler's own filter (what it processes)
    together: each promised key passes both, and results, keys outside uploads/ and folder markers do not."""
    from humanparse.config import Settings
    from humanparse.jobs.keys import Layout

    buckets = resources(rendered, "AWS::S3::Bucket")
    notified = {k: v for k, v in buckets.items() if "NotificationConfiguration" in v["Properties"]}
    assert list(notified) == ["UploadBucket"]
    rules = [c["Filter"]["S3Key"]["Rules"] for c in
             notified["UploadBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]]
    env = template_env()
    layout = Layout(env["HUMANPARSE_UPLOAD_PREFIX"], env["HUMANPARSE_RESULTS_PREFIX"])
    assert Settings().upload_prefix == layout.upload_prefix
    for key in PROMISED_KEYS:
        assert any(s3_filter_matches(r, key) for r in rules), key
        assert layout.in_uploads(key), key
    for key in NEVER_KEYS:
        assert not (any(s3_filter_matches(r, key) for r in rules) and layout.in_uploads(key)), key
    assert not env["HUMANPARSE_RESULTS_PREFIX"].startswith(env["HUMANPARSE_UPLOAD_PREFIX"])
    assert env["HUMANPARSE_RESULTS_BUCKET"] != env["HUMANPARSE_UPLOAD_BUCKET"]


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
            if st["Effect"] == "Allow":
                assert st["Principal"] != "*" and st["Principal"] != {"AWS": "*"}
    (api,) = resources(rendered, "AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowCredentials"] is False and "*" not in json.dumps(cors["AllowOrigins"])
    assert "authorization" in cors["AllowHeaders"]  # the page's bearer token


def test_cors_in_one_place(rendered: dict[str, Any]) -> None:
    """the HTTP API answers CORS; no Function URL CORS and no app CORS on Lambda (no duplicate headers)."""
    assert not resources(rendered, "AWS::Lambda::Url")
    for fn in resources(rendered, "AWS::Lambda::Function").values():
        assert "HUMANPARSE_CORS_ORIGINS" not in fn["Properties"].get("Environment", {}).get("Variables", {})


def test_every_bucket_denies_plain_http(rendered: dict[str, Any]) -> None:
    policies = {p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in resources(rendered, "AWS::S3::BucketPolicy").values()}
    for bucket in resources(rendered, "AWS::S3::Bucket"):
        deny = [st for st in policies[bucket] if st["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, bucket
        assert deny[0]["Action"] == "s3:*" and len(deny[0]["Resource"]) == 2, bucket  # bucket and objects


def test_state_machine_role_is_scoped(rendered: dict[str, Any]) -> None:
    sm = rendered["Resources"]["BackfillStateMachine"]
    role = rendered["Resources"][sm["Properties"]["RoleArn"]["Fn::GetAtt"][0]]
    states = [st for pol in role["Properties"]["Policies"] for st in pol["PolicyDocument"]["Statement"]
              if any(str(a).startswith("states:") for a in (st["Action"] if isinstance(st["Action"], list)
                                                              else [st["Action"]]))]
    assert states
    for st in states:
        res = json.dumps(st["Resource"])
        assert '"*"' not in res and "${AWS::StackName}-backfill" in res, st
    assert sm["Properties"]["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-backfill"}


def test_least_privilege(rendered: dict[str, Any]) -> None:
    for name, role in resources(rendered, "AWS::IAM::Role").items():
        for pol in role["Properties"].get("Policies", []):
            for st in pol["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if any(a.startswith("s3:") for a in actions):
                    assert st["Resource"] != "*" and "s3:*" not in actions, (name, st)
                    if "s3:PutObject" in actions:
                        assert re.search(r"/(uploads|results|cache|results/_backfill)/\*$",
                                         json.dumps(st["Resource"]).strip('"}')), st


def test_backfill_uses_same_function(rendered: dict[str, Any]) -> None:
    sm = rendered["Resources"]["BackfillStateMachine"]
    text = json.dumps(sm["Properties"])
    assert "DISTRIBUTED" in text and "listObjectsV2" in text and "ParserFunction" in text


def test_video_fan_out_wiring(rendered: dict[str, Any]) -> None:
    """The video state machine: a Map of chunk invocations of the same ParserFunction with retries, a join
    step, and every failure caught into a FailJob step that writes the failed status (never a hung job); the
    function may start only that state machine, and finds it by the ARN its environment names."""
    assert set(resources(rendered, "AWS::StepFunctions::StateMachine")) == {"BackfillStateMachine",
                                                                           "VideoStateMachine"}
    sm = rendered["Resources"]["VideoStateMachine"]["Properties"]
    assert sm["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-video"}
    sub = sm["DefinitionSubstitutions"]
    text = "\n".join(sm["DefinitionString"]["Fn::Join"][1])
    states = json.loads(re.sub(r"(?<!\")\$\{(\w+)\}", "1", text))["States"]  # unquoted (numeric) substitutions
    chunk = states["Chunks"]["ItemProcessor"]["States"]["Chunk"]
    for task in (chunk, states["Join"], states["FailJob"]):
        fn = task["Parameters"]["FunctionName"]
        key = fn.strip("${}")
        assert sub[key] == {"Fn::GetAtt": ["ParserFunction", "Arn"]}, task
        assert task["Retry"][-1]["ErrorEquals"] == ["States.ALL"] and task["Retry"][-1]["MaxAttempts"] >= 2
        assert "Lambda.TooManyRequestsException" in task["Retry"][0]["ErrorEquals"]  # throttles: backoff first
    assert states["Chunks"]["Type"] == "Map" and states["Chunks"]["ItemsPath"] == "$.chunks"
    assert states["Chunks"]["Next"] == "Join" and states["Chunks"]["Catch"][0]["Next"] == "FailJob"
    assert states["Join"]["Catch"][0]["Next"] == "FailJob" and states["FailJob"]["Next"] == "Failed"
    assert states["Join"]["Parameters"]["Payload"]["humanparse_video"] == "join"
    assert states["FailJob"]["Parameters"]["Payload"]["humanparse_video"] == "fail"
    fn = rendered["Resources"]["ParserFunction"]["Properties"]
    arn = fn["Environment"]["Variables"]["HUMANPARSE_VIDEO_STATE_MACHINE_ARN"]["Fn::Sub"]
    assert arn.endswith(":stateMachine:${AWS::StackName}-video")
    assert float(fn["Environment"]["Variables"]["HUMANPARSE_VIDEO_TIMEOUT_S"]) <= fn["Timeout"]
    role = rendered["Resources"][fn["Role"]["Fn::GetAtt"][0]]
    starts = [st for pol in role["Properties"]["Policies"] for st in pol["PolicyDocument"]["Statement"]
              if "states:StartExecution" in json.dumps(st["Action"])]
    assert [st["Resource"]["Fn::Sub"] for st in starts] == [arn]
    # the message the function sends into the Map is what its handler dispatches
    from humanparse.video.job import chunk_message, is_video_message

    assert is_video_message(chunk_message("a" * 32, {"etag": "e"}, [[0, 3]], 0))
    assert is_video_message(states["Join"]["Parameters"]["Payload"])


def template_env() -> dict[str, str]:
    env = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    out = {}
    for k, v in env.items():
        s = str(v) if not isinstance(v, dict) else v.get("Fn::Sub", str(v))
        s = s.replace("${AWS::StackName}", STACK).replace("${AWS::AccountId}", ACCOUNT)
        s = s.replace("${PageOrigin}", "https://example.com")
        out[k] = s
    return out



def entrypoint_env(function: str, tmp_path: Path) -> dict[str, str]:
    """The HUMANPARSE_ variables the image's entrypoint (scripts/entrypoint.sh) hands the Lambda runtime client
    when the template starts ``function`` (its ImageConfig Command); a recorder stands in for ``python``."""
    command = load_template()["Resources"][function]["Properties"]["ImageConfig"]["Command"]
    bin_dir = tmp_path / "recorder-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text('#!/bin/sh\nprintf "%s\\n" "$*"; env | grep "^HUMANPARSE_" || true\n')
    (bin_dir / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUMANPARSE_")}
    r = subprocess.run(["sh", str(ROOT / "scripts" / "entrypoint.sh"), *command], capture_output=True, text=True,
                       env={**env, "PATH": f"{bin_dir}:{env['PATH']}"}, check=True)
    argv, *variables = r.stdout.splitlines()
    assert argv == " ".join(["-m", "awslambdaric", *command]), r.stdout  # the runtime client, with the CMD
    return dict(v.split("=", 1) for v in variables)


def test_entrypoint_names_each_functions_handler(tmp_path: Path) -> None:
    assert entrypoint_env("ParserFunction", tmp_path) == {"HUMANPARSE_LAMBDA_HANDLER": "humanparse.handler.s3_handler"}
    assert entrypoint_env("ApiFunction", tmp_path) == {"HUMANPARSE_LAMBDA_HANDLER": "humanparse.handler.http_handler"}
    # anything else runs as given, without the variable
    r = subprocess.run(["sh", str(ROOT / "scripts" / "entrypoint.sh"), "sh", "-c", "echo ${HUMANPARSE_LAMBDA_HANDLER-unset}"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "unset"


def lambda_s3(moto_server: str, env: dict[str, str]) -> Any:
    """A boto3 S3 client on the embedded S3 with the template's two buckets present."""
    import boto3
    from humanparse.local.s3local import LOCAL_CREDENTIALS  # the embedded S3 takes only this run's keys

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION, **LOCAL_CREDENTIALS)
    for b in (env["HUMANPARSE_UPLOAD_BUCKET"], env["HUMANPARSE_RESULTS_BUCKET"]):
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    return s3


def run_lambda_process(script: str, files: list[Path], env: dict[str, str], moto_server: str,
                       tmp_path: Path) -> Any:
    """``script`` in a fresh Python process under exactly ``env`` (no other HUMANPARSE_ variable) on the embedded
    S3, with ``files`` as its arguments: what a Lambda environment does at import and per event. Returns the JSON
    of its last printed line."""
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    run_env = {k: v for k, v in os.environ.items() if not k.startswith("HUMANPARSE_")}
    run_env.update(env)
    run_env.update({"AWS_ENDPOINT_URL_S3": moto_server, "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
                    "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "PYTHONPATH": str(ROOT / "function"),
                    "HOME": str(tmp_path)})
    r = subprocess.run([sys.executable, "-c", script, *map(str, files)],
                       capture_output=True, text=True, env=run_env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def test_handler_with_template_environment(moto_server: str, shared_models: Path, tmp_path: Path,
                                           photo: Any) -> None:
    """Imports humanparse.handler (model loads at import) under exactly the template's variables and what the
    entrypoint adds for the parser function, then delivers an S3 event and an HTTP event to the Lambda entry
    points. The init phase leaves the collector on, with what it made frozen (later collections and the exit
    skip it), and the web stack out: the S3 entry never needs it; an HTTP event that comes anyway builds it."""
    from conftest import encode_jpeg

    env = {**template_env(), **entrypoint_env("ParserFunction", tmp_path)}
    s3 = lambda_s3(moto_server, env)
    key = "uploads/0123456789abcdef0123456789abcdef/image.jpg"
    body = encode_jpeg(photo)
    etag = s3.put_object(Bucket=env["HUMANPARSE_UPLOAD_BUCKET"], Key=key, Body=body)["ETag"].strip('"')
    ev = json.loads((EVENTS / "s3-post-presigned.json").read_text())
    ev["Records"][0]["s3"]["bucket"]["name"] = env["HUMANPARSE_UPLOAD_BUCKET"]
    ev["Records"][0]["s3"]["object"].update(key=key, eTag=etag, size=len(body))
    (tmp_path / "s3.json").write_text(json.dumps(ev))
    (tmp_path / "http.json").write_text((EVENTS / "apigw-v2-get-healthz.json").read_text())
    script = (
        "import gc,json,sys; from humanparse import handler as h\n"
        "gc_after_init = [gc.isenabled(), gc.get_freeze_count()]\n"
        "web = lambda: sorted(m for m in ('fastapi', 'starlette', 'mangum') if m in sys.modules)\n"
        "web_after_init = web(); s3 = h.s3_handler(json.load(open(sys.argv[1])), None); web_after_s3 = web()\n"
        "http = h.http_handler(json.load(open(sys.argv[2])), None)\n"
        "print(json.dumps({'s3': s3, 'web': [web_after_init, web_after_s3, web()], 'http': http,"
        " 'notice': h.parser.loaded.notice, 'gc': gc_after_init}))\n")
    out = run_lambda_process(script, [tmp_path / "s3.json", tmp_path / "http.json"], env, moto_server, tmp_path)
    assert out["s3"]["records"][0]["status"] == "done", out
    assert out["http"]["statusCode"] == 200 and json.loads(out["http"]["body"])["status"] == "ok"
    assert out["web"] == [[], [], ["fastapi", "mangum", "starlette"]], out["web"]  # built by the HTTP event only
    assert out["gc"][0] is True and out["gc"][1] > 100_000  # torch, the app and the model's objects
    status = json.loads(s3.get_object(Bucket=env["HUMANPARSE_RESULTS_BUCKET"],
                                      Key="results/0123456789abcdef0123456789abcdef/status.json")["Body"].read())
    assert status["status"] == "done"


# ------------------------------------------------------------------------------- operating
def alarms(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources(t, "AWS::CloudWatch::Alarm").items()}


def function_timeout_ms(t: dict[str, Any], name: str) -> int:
    return int(t["Resources"][name]["Properties"]["Timeout"]) * 1000


def test_alarms_watch_the_right_metrics(rendered: dict[str, Any]) -> None:
    a = alarms(rendered)
    dlq = a["DeadLetterNotEmpty"]
    assert (dlq["Namespace"], dlq["MetricName"], dlq["Statistic"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                                                       "Maximum")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert dlq["Threshold"] == 1 and dlq["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for fn in ("ParserFunction", "ApiFunction"):
        short = fn.replace("Function", "")
        dim = [{"Name": "FunctionName", "Value": {"Ref": fn}}]
        for metric in ("Errors", "Throttles"):
            al = a[f"{short}{metric}"]
            assert (al["Namespace"], al["MetricName"], al["Statistic"], al["Dimensions"]) == (
                "AWS/Lambda", metric, "Sum", dim)
            assert al["Threshold"] == 1 and al["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        slow = a[f"{short}DurationNearTimeout"]
        assert (slow["MetricName"], slow["ExtendedStatistic"], slow["Dimensions"]) == ("Duration", "p95", dim)
        assert slow["Threshold"] == 0.8 * function_timeout_ms(rendered, fn)  # "near" = 80 % of the timeout
    for alarm, machine in (("BackfillExecutionsFailed", "BackfillStateMachine"),
                           ("VideoExecutionsFailed", "VideoStateMachine")):
        bf = a[alarm]
        assert (bf["Namespace"], bf["MetricName"], bf["Threshold"]) == ("AWS/States", "ExecutionsFailed", 1)
        assert bf["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
    for name, al in a.items():
        assert al["TreatMissingData"] == "notBreaching" and "AlarmActions" not in al, name  # no topic: no actions


def test_alarms_notify_the_topic_parameter() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    a = alarms(render(AlarmTopicArn=topic))
    assert len(a) == 9
    for name, al in a.items():
        ref = [{"Ref": "AlarmTopicArn"}]
        assert al["AlarmActions"] == ref and al["OKActions"] == ref, name


def test_dashboard_shows_the_emf_metrics(rendered: dict[str, Any]) -> None:
    (dash,) = resources(rendered, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(dash["Properties"]["DashboardBody"]["Fn::Sub"])
    text = json.dumps(body)
    for metric in ("ParseTime", "ImagesParsed", "PersonsFound", "Failures", "ColdStart", "ModelLoadTime"):
        assert f'Namespace=\\"humanparse\\" MetricName=\\"{metric}\\"' in text, metric
    for metric in ("ApproximateNumberOfMessagesVisible", "Throttles", "ExecutionsFailed", "4xx"):
        assert metric in text


def routes(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["RouteKey"]: r["Properties"] for r in resources(t, "AWS::ApiGatewayV2::Route").values()}


@pytest.mark.parametrize("mode", ["NONE", "JWT", "IAM"])
def test_auth_switch_translates(mode: str) -> None:
    params = {"AuthMode": mode}
    if mode == "JWT":
        params.update(JwtIssuer="https://issuer.example.com", JwtAudience="client-1")
    t = render(**params)
    r = routes(t)
    expected = {"NONE": "NONE", "JWT": "JWT", "IAM": "AWS_IAM"}[mode]
    for key in ("ANY /{proxy+}", "POST /uploads", "POST /parse"):
        assert r[key]["AuthorizationType"] == expected, key
        assert ("AuthorizerId" in r[key]) == (mode == "JWT"), key
    assert r["GET /healthz"]["AuthorizationType"] == "NONE"
    assert r["OPTIONS /{proxy+}"]["AuthorizationType"] == "NONE" and "Target" not in r["OPTIONS /{proxy+}"]
    authorizers = resources(t, "AWS::ApiGatewayV2::Authorizer")
    assert len(authorizers) == (mode == "JWT")
    for az in authorizers.values():
        assert az["Properties"]["IdentitySource"] == ["$request.header.Authorization"]


def test_rate_limits_in_front_of_the_api(rendered: dict[str, Any]) -> None:
    (stage,) = resources(rendered, "AWS::ApiGatewayV2::Stage").values()
    p = stage["Properties"]
    assert p["DefaultRouteSettings"] == {"ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                         "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}
    for key in ("POST /uploads", "POST /parse"):  # the routes that start paid parses
        assert p["RouteSettings"][key]["ThrottlingRateLimit"] == {"Ref": "UploadRateLimit"}
        assert key in routes(rendered)
    # reserved concurrency: none by default (a new account has none to reserve), the parameter's when set
    for name in ("ApiFunction", "ParserFunction"):
        assert "ReservedConcurrentExecutions" not in rendered["Resources"][name]["Properties"], name
        fn = render(ReservedConcurrency="20")["Resources"][name]["Properties"]
        assert fn["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}, name


def test_per_client_limit_on_the_page_api_path() -> None:
    t = render()  # us-east-1, defaults: WAF rate rule per IP on /api/* of the page's CloudFront
    (acl,) = resources(t, "AWS::WAFv2::WebACL").values()
    (rule,) = acl["Properties"]["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert acl["Properties"]["Scope"] == "CLOUDFRONT" and rate["AggregateKeyType"] == "IP"
    assert rate["Limit"] == {"Ref": "ClientRateLimit"} and rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    assert rate["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "/api/"
    dist = t["Resources"]["PageDistribution"]["Properties"]["DistributionConfig"]
    assert dist["WebACLId"] == {"Fn::GetAtt": ["ClientRateAcl", "Arn"]}
    (api,) = dist["CacheBehaviors"]
    assert api["PathPattern"] == "/api/*" and api["TargetOriginId"] == "api"
    assert "POST" in api["AllowedMethods"] and api["FunctionAssociations"][0]["EventType"] == "viewer-request"
    code = t["Resources"]["StripApiPrefix"]["Properties"]["FunctionCode"]
    assert "replace(/^\\/api(?=\\/)/" in code
    policy = t["Resources"]["ApiCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert policy["DefaultTTL"] == 0 and policy["MaxTTL"] <= 1
    assert policy["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"]["Headers"] == ["Authorization"]
    for params in ({"AWS::Region": "eu-west-1"}, {"ClientRateLimit": "0"}):  # WAF for CloudFront: us-east-1 only
        t = render(**params)
        assert not resources(t, "AWS::WAFv2::WebACL"), params
        assert "WebACLId" not in t["Resources"]["PageDistribution"]["Properties"]["DistributionConfig"], params


def test_cache_index_expires_with_the_results_and_the_api_may_copy(rendered: dict[str, Any]) -> None:
    """The result cache: the index objects (``cache/``) expire as the results do, both functions may read and write
    them (with ListBucket there, so a miss is a 404, not a 403 that would be retried), and the API function
    (POST /uploads answered from the cache) may write results — CopyObject needs PutObject."""
    from humanparse.config import Settings
    from humanparse.jobs.store import JobStore

    index_key = JobStore(None, Settings()).cache_key_name("ab" * 32)
    (bucket,) = [b for n, b in resources(rendered, "AWS::S3::Bucket").items() if n == "ResultsBucket"]
    rules = {r.get("Prefix"): r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    cache_rule = next(r for p, r in rules.items() if p and index_key.startswith(p))
    assert cache_rule["Status"] == "Enabled" and cache_rule["ExpirationInDays"] == rules["results/"]["ExpirationInDays"]
    prefix = index_key.split("/")[0]
    for fn in ("ApiFunction", "ParserFunction"):
        role = next(r for n, r in resources(rendered, "AWS::IAM::Role").items() if n.startswith(fn + "Role"))
        stmts = [st for pol in role["Properties"]["Policies"] for st in pol["PolicyDocument"]["Statement"]]

        def grants(action: str, path: str, stmts: list[dict[str, Any]] = stmts) -> bool:
            return any(action in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
                       and re.search(rf"-results-\$\{{AWS::AccountId\}}/{path}/\*", json.dumps(st["Resource"]))
                       for st in stmts)

        assert grants("s3:GetObject", prefix) and grants("s3:PutObject", prefix), fn
        assert grants("s3:PutObject", "results"), fn
        lists = [st for st in stmts if st["Action"] == "s3:ListBucket" and "-results-" in json.dumps(st["Resource"])]
        assert any(f"{prefix}/*" in json.dumps(st.get("Condition")) for st in lists), fn
