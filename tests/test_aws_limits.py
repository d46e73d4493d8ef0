"""infra/template.yaml against AWS's limits, checked statically (moto's Step Functions interpreter cannot parse
the backfill's ItemBatcher; the video state machine runs in it in test_state_machines.py): defaults a new account
accepts, fan-out below the
functions' concurrency, throttling retried with capped backoff, state payloads computed for the largest accepted
inputs against the 256 KB limit, access logs, partition-aware ARNs, and the API function's lazy model load."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, ROOT
from test_infra import (
    ACCOUNT,
    REGION,
    TEMPLATE,
    entrypoint_env,
    lambda_s3,
    load_template,
    render,
    resources,
    run_lambda_process,
    template_env,
)

STATE_PAYLOAD_LIMIT = 256 * 1024  # Step Functions: a state's input or output, and an execution's input
EXPRESS_MAX_S = 300  # an EXPRESS execution (the Distributed Map's child runs) ends after 5 minutes
NEW_ACCOUNT_MEMORY_MB = 3008  # the most a new account may set until its quota is raised
NEW_ACCOUNT_CONCURRENCY = 10  # a new account's concurrent executions (Lambda keeps 100 unreserved: none to reserve)
MAX_KEY = "uploads/" + "k" * (1024 - len("uploads/"))  # S3's longest key


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return render()


def definition(t: dict[str, Any], name: str) -> dict[str, Any]:
    """A state machine's definition as JSON (SAM's DefinitionSubstitutions replaced by placeholders)."""
    text = "\n".join(t["Resources"][name]["Properties"]["DefinitionString"]["Fn::Join"][1])
    doc: dict[str, Any] = json.loads(re.sub(r"(?<!\")\$\{(\w+)\}", "1", text))
    return doc


def defaults() -> dict[str, Any]:
    return {k: v.get("Default") for k, v in load_template()["Parameters"].items()}


def throttle_wait_s(retrier: dict[str, Any]) -> float:
    """Longest total wait of a retrier: each interval grows by BackoffRate, capped at MaxDelaySeconds."""
    wait, interval = 0.0, float(retrier["IntervalSeconds"])
    for _ in range(int(retrier["MaxAttempts"])):
        wait += min(interval, float(retrier.get("MaxDelaySeconds", 1e9)))
        interval *= float(retrier.get("BackoffRate", 2.0))
    return wait


def test_defaults_fit_a_new_account(rendered: dict[str, Any]) -> None:
    d = defaults()
    assert int(d["MemorySize"]) <= NEW_ACCOUNT_MEMORY_MB
    assert int(d["ReservedConcurrency"]) == 0  # unreserved: a new account cannot reserve any
    for fn in ("ParserFunction", "ApiFunction"):
        props = rendered["Resources"][fn]["Properties"]
        assert "ReservedConcurrentExecutions" not in props and props["MemorySize"] == {"Ref": "MemorySize"}
    # both fan-outs together leave live uploads and the API part of a new account's 10
    assert int(d["BackfillConcurrency"]) + int(d["VideoConcurrency"]) < NEW_ACCOUNT_CONCURRENCY
    # deploy.sh refuses BackfillConcurrency >= ReservedConcurrency using the same default
    script = (ROOT / "scripts" / "deploy.sh").read_text()
    assert f'${{backfill:-{d["BackfillConcurrency"]}}}' in script and f'${{video:-{d["VideoConcurrency"]}}}' in script


def test_memory_default_is_the_power_tuning_pick() -> None:
    """The default memory is the size docs/performance.md's power-tuning table picks (bench/powertune.py); the
    least a deployment may set is a size that table says holds a 12 MP photo's peak RSS."""
    p = load_template()["Parameters"]["MemorySize"]
    assert int(p["MinValue"]) <= int(p["Default"]) <= NEW_ACCOUNT_MEMORY_MB
    doc = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Lambda memory size and cost"):doc.index("## Phone photos end to end")]
    assert f"**{int(p['Default']):,} MB**" in section and f"| {int(p['Default']):,} |" in section
    m2fp_table = section[section.index("M2FP (random-weight folder):"):section.index("Lite tier")]
    row = next(line for line in m2fp_table.splitlines() if line.startswith(f"| {int(p['MinValue']):,} |"))
    assert "| yes |" in row, row


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_architecture_parameter_sets_both_functions(arch: str) -> None:
    t = render(Architecture=arch)
    for fn in ("ParserFunction", "ApiFunction"):
        assert t["Resources"][fn]["Properties"]["Architectures"] == [{"Ref": "Architecture"}]
    assert load_template()["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]


def test_arns_follow_the_partition() -> None:
    assert not re.findall(r"arn:aws:", TEMPLATE.read_text())  # ${AWS::Partition}: GovCloud and China too


def test_map_concurrency_is_the_parameters_and_throttles_back_off(rendered: dict[str, Any]) -> None:
    backfill = definition(rendered, "BackfillStateMachine")["States"]["ParsePrefix"]
    video = definition(rendered, "VideoStateMachine")["States"]
    for machine, param in (("BackfillStateMachine", "BackfillConcurrency"), ("VideoStateMachine", "VideoConcurrency")):
        props = rendered["Resources"][machine]["Properties"]
        key = re.search(r'"MaxConcurrency": "?\$\{(\w+)\}', "\n".join(props["DefinitionString"]["Fn::Join"][1]))
        assert key is not None and props["DefinitionSubstitutions"][key.group(1)] == {"Ref": param}, machine
    batch = backfill["ItemProcessor"]["States"]["ParseBatch"]
    tasks = {"ParseBatch": batch, "Chunk": video["Chunks"]["ItemProcessor"]["States"]["Chunk"],
             "Join": video["Join"], "FailJob": video["FailJob"]}
    for name, task in tasks.items():
        throttle = task["Retry"][0]
        assert "Lambda.TooManyRequestsException" in throttle["ErrorEquals"], name
        assert throttle["BackoffRate"] >= 2 and throttle["JitterStrategy"] == "FULL" and throttle["MaxDelaySeconds"]
        assert throttle_wait_s(throttle) >= 100, name  # rides out a burst, not three quick tries
    # the backfill's child run is EXPRESS: its throttle waits leave most of its 5 minutes for the batch
    assert backfill["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "EXPRESS"
    assert throttle_wait_s(batch["Retry"][0]) <= EXPRESS_MAX_S / 2


def test_backfill_results_go_to_s3_not_the_state(rendered: dict[str, Any]) -> None:
    backfill = definition(rendered, "BackfillStateMachine")["States"]["ParsePrefix"]
    writer = backfill["ResultWriter"]
    subs = rendered["Resources"]["BackfillStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert subs[writer["Resource"].strip("${}")]["Fn::Sub"].endswith(":states:::s3:putObject")
    assert writer["Parameters"]["Prefix"] == "results/_backfill"
    role = next(r for n, r in resources(rendered, "AWS::IAM::Role").items() if n.startswith("BackfillStateMachineRole"))
    stmts = [st for pol in role["Properties"]["Policies"] for st in pol["PolicyDocument"]["Statement"]]
    puts = [st for st in stmts if "s3:PutObject" in st["Action"]]
    assert [st["Resource"]["Fn::Sub"].split(":::")[1] for st in puts] == [
        "${AWS::StackName}-results-${AWS::AccountId}/results/_backfill/*"]
    (lists,) = [st for st in stmts if st["Action"] == "s3:ListBucket"]
    assert lists["Condition"] == {"StringLike": {"s3:prefix": ["uploads/*"]}}
    # the written results expire with the others
    bucket = rendered["Resources"]["ResultsBucket"]["Properties"]
    assert any("results/_backfill/x".startswith(r["Prefix"]) for r in bucket["LifecycleConfiguration"]["Rules"])


def test_backfill_payloads_fit_for_the_longest_keys(rendered: dict[str, Any]) -> None:
    """One child run's input (a batch of the longest keys as ListObjectsV2 items) and output (the handler's
    outcome per key, trimmed by ResultSelector) against the 256 KB state limit."""
    from humanparse.entries.trigger import RecordOutcome

    backfill = definition(rendered, "BackfillStateMachine")["States"]["ParsePrefix"]
    n = backfill["ItemBatcher"]["MaxItemsPerBatch"]
    item = {"Key": MAX_KEY, "ETag": '"' + "f" * 32 + '-10000"', "LastModified": "2026-12-02T04:00:00+00:00",
            "Size": 200 * 1024 * 1024, "StorageClass": "GLACIER_IR", "VersionId": "v" * 64}
    batch_input = {"Items": [item] * n, "BatchInput": backfill["ItemBatcher"]["BatchInput"]}
    assert len(json.dumps(batch_input)) < STATE_PAYLOAD_LIMIT / 8
    selector = backfill["ItemProcessor"]["States"]["ParseBatch"]["ResultSelector"]
    assert set(selector) == {"records.$", "failed.$"}  # not the invoke response's headers and status
    outcome = RecordOutcome(MAX_KEY, "0" * 32, "failed", "x" * 2000).__dict__
    assert len(json.dumps({"records": [outcome] * n, "failed": n})) < STATE_PAYLOAD_LIMIT / 8


def test_video_execution_input_fits_for_the_longest_clip(rendered: dict[str, Any]) -> None:
    """The execution input the parser function sends (every chunk message) for the longest accepted clip at the
    template's chunk budget, with the longest key; chunk outputs are discarded, so the Map's result is small."""
    from humanparse.config import Settings
    from humanparse.engine.registry import model_kinds
    from humanparse.video.chunks import plan_chunks
    from humanparse.video.job import StepFunctionsFanOut

    class Recorder:
        class exceptions:  # noqa: N801 - boto3's shape
            class ExecutionAlreadyExists(Exception):
                pass

        def __init__(self) -> None:
            self.inputs: list[str] = []

        def start_execution(self, **kw: Any) -> None:
            self.inputs.append(kw["input"])

    env = {**template_env(), **{k: str(v) for k, v in rendered["Resources"]["ParserFunction"]["Properties"]
                                ["Environment"]["Variables"].items() if isinstance(v, str)}}
    budget = float(env["HUMANPARSE_VIDEO_TIMEOUT_S"])
    settings = Settings()
    plan = [list(r) for r in plan_chunks(settings.video_max_frames, max(k.seconds_per_frame for k in model_kinds()), timeout_s=budget)]
    sfn = Recorder()
    source = {"bucket": f"hp-test-uploads-{ACCOUNT}", "key": MAX_KEY, "etag": "f" * 32, "version_id": "v" * 1024,
              "sequencer": "0" * 32}
    StepFunctionsFanOut(sfn, f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:hp-test-video").dispatch(
        "0" * 32, source, plan, list(range(len(plan))))
    (doc,) = sfn.inputs
    assert len(json.loads(doc)["chunks"]) == len(plan) >= 2
    assert len(doc.encode()) < STATE_PAYLOAD_LIMIT / 2, (len(plan), len(doc))
    chunk = definition(rendered, "VideoStateMachine")["States"]["Chunks"]["ItemProcessor"]["States"]["Chunk"]
    assert "OutputPath" in chunk and chunk["OutputPath"] is None  # each iteration outputs {}


def test_event_age_and_the_missing_upload_404(rendered: dict[str, Any]) -> None:
    (cfg,) = resources(rendered, "AWS::Lambda::EventInvokeConfig").values()
    assert cfg["Properties"]["MaximumEventAgeInSeconds"] == 6 * 3600  # the docs: throttled events wait up to 6 h
    assert "6 hours" in (ROOT / "docs" / "deployment.md").read_text()
    role = next(r for n, r in resources(rendered, "AWS::IAM::Role").items() if n.startswith("ParserFunctionRole"))
    stmts = [st for pol in role["Properties"]["Policies"] for st in pol["PolicyDocument"]["Statement"]]
    lists = [st for st in stmts if st["Action"] == "s3:ListBucket" and "-uploads-" in json.dumps(st["Resource"])]
    assert [st["Condition"] for st in lists] == [{"StringLike": {"s3:prefix": ["uploads/*"]}}]
    assert not json.dumps(lists[0]["Resource"]).rstrip('"}').endswith("*")  # the bucket, scoped by prefix


def test_access_logs_everywhere(rendered: dict[str, Any]) -> None:
    (stage,) = resources(rendered, "AWS::ApiGatewayV2::Stage").values()
    logs = stage["Properties"]["AccessLogSettings"]
    assert logs["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]}
    fmt = json.loads(logs["Format"])
    assert {"requestId", "ip", "status", "path"} <= set(fmt)
    dist = rendered["Resources"]["PageDistribution"]["Properties"]["DistributionConfig"]
    assert dist["Logging"]["Bucket"] == {"Fn::GetAtt": ["LogsBucket", "RegionalDomainName"]}
    for name, bucket in resources(rendered, "AWS::S3::Bucket").items():
        if name != "LogsBucket":
            assert bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "LogsBucket"}
    (policy,) = [p for p in resources(rendered, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": "LogsBucket"}]
    (allow,) = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"} and "aws:SourceAccount" in json.dumps(allow)


def test_every_checkov_skip_says_why() -> None:
    """CI's checkov fails on any finding not skipped here; each skip carries its reason."""
    skips = [(name, s) for name, r in load_template()["Resources"].items()
             for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    for name, s in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", s["id"]) and len(s["comment"]) > 30, (name, s)


def test_only_the_api_function_loads_lazily(rendered: dict[str, Any]) -> None:
    api = rendered["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    parser = rendered["Resources"]["ParserFunction"]["Properties"]["Environment"]["Variables"]
    assert api["HUMANPARSE_MODEL_LOAD"] == "lazy" and "HUMANPARSE_MODEL_LOAD" not in parser


def test_status_poll_does_not_load_the_model(moto_server: str, tmp_path: Path) -> None:
    """The API function's environment: a cold GET /jobs/<id> answers without loading the model; GET /healthz
    (which reports the model) then loads it, once, leaving the collector on and the model's objects frozen. The
    web stack was built in the init (the entrypoint names the HTTP entry), not by the first request."""
    env = {**template_env(), **entrypoint_env("ApiFunction", tmp_path), "HUMANPARSE_MODEL_LOAD": "lazy",
           "HUMANPARSE_MODEL_KIND": "lite"}
    lambda_s3(moto_server, env)  # the buckets the function expects
    health = json.loads((EVENTS / "apigw-v2-get-healthz.json").read_text())
    poll = json.loads(json.dumps(health))
    poll["rawPath"] = poll["requestContext"]["http"]["path"] = "/jobs/0123456789abcdef0123456789abcdef"
    (tmp_path / "poll.json").write_text(json.dumps(poll))
    (tmp_path / "health.json").write_text(json.dumps(health))
    script = (
        "import json,sys; from humanparse import handler as h\n"
        "web_in_init = h.service.http_built\n"
        "p = h.http_handler(json.load(open(sys.argv[1])), None); after_poll = h.parser.is_loaded\n"
        "import gc; frozen = gc.get_freeze_count()\n"
        "q = h.http_handler(json.load(open(sys.argv[2])), None)\n"
        "print(json.dumps({'poll': p['statusCode'], 'after_poll': after_poll, 'health': q['statusCode'],"
        " 'after_health': h.parser.is_loaded, 'gc_on': gc.isenabled(),"
        " 'frozen_by_load': gc.get_freeze_count() - frozen, 'web_in_init': web_in_init}))\n")
    out = run_lambda_process(script, [tmp_path / "poll.json", tmp_path / "health.json"], env, moto_server, tmp_path)
    assert out["web_in_init"] is True and out["poll"] in (200, 404) and out["after_poll"] is False, out
    assert out["health"] == 200 and out["after_health"] is True, out
    assert out["gc_on"] is True and out["frozen_by_load"] > 0, out
