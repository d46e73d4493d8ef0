"""The template's video state machine, executed by moto's Step Functions interpreter (its ASL engine runs Map,
Task, Retry with backoff and jitter, Catch and Fail; it cannot parse the backfill's ItemBatcher, so the backfill
is checked statically in test_aws_limits.py). One boundary is stubbed: the Lambda service, which answers each
invocation as the test says (the parser's echo, a throttle, a function error). The retrier's waits are recorded
instead of slept, so the backoff the definition asks for is checked without waiting for it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from test_infra import REGION, render

FN = f"arn:aws:lambda:{REGION}:123456789012:function:hp-test-ParserFunction"
Answer = Callable[[dict[str, Any], int], dict[str, Any]]  # (payload, how many calls with it so far) -> response


def throttle() -> dict[str, Any]:
    from botocore.exceptions import ClientError

    raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."},
                       "ResponseMetadata": {"HTTPStatusCode": 429, "RequestId": "r"}}, "Invoke")


def echo(payload: dict[str, Any], n: int) -> dict[str, Any]:
    return {"StatusCode": 200, "Payload": {"echo": payload}}


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Answer, int], dict[str, Any]]]:
    """Runs the rendered VideoStateMachine on an input of ``chunks`` chunk messages with Lambda answering as
    ``answer`` says; returns the execution's status, error, the invocations and the retry waits."""
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    props = render()["Resources"]["VideoStateMachine"]["Properties"]
    definition = "\n".join(props["DefinitionString"]["Fn::Join"][1])
    for name, value in props["DefinitionSubstitutions"].items():
        resolved = (FN if value == {"Fn::GetAtt": ["ParserFunction", "Arn"]} else
                    4 if value == {"Ref": "VideoConcurrency"} else value["Fn::Sub"].replace("${AWS::Partition}", "aws"))
        definition = definition.replace(f'"${{{name}}}"', json.dumps(resolved)).replace(f"${{{name}}}", str(resolved))
    calls: list[dict[str, Any]] = []
    waits: list[float] = []
    lock = threading.Lock()

    def run(answer: Answer, chunks: int) -> dict[str, Any]:
        def invoke(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict[str, Any]:
            payload = json.loads(parameters["Payload"])
            with lock:
                n = sum(c == payload for c in calls)
                calls.append(payload)
            return answer(payload, n)

        monkeypatch.setattr(lambda_eval_utils, "_invoke_lambda_function", invoke)
        monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=waits.append))
        doc = {"job_id": "a" * 32, "source": {"bucket": "b", "key": "uploads/clip.mp4", "etag": "e"},
               "count": chunks, "chunks": [{"humanparse_video": "chunk", "job_id": "a" * 32, "index": i}
                                           for i in range(chunks)]}
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            import boto3

            role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            sfn = boto3.client("stepfunctions")
            arn = sfn.create_state_machine(name="hp-test-video", definition=definition, roleArn=role)["stateMachineArn"]
            ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps(doc))["executionArn"]
            for _ in range(600):  # a poll, not a time limit: the interpreter runs in its own thread
                desc = sfn.describe_execution(executionArn=ex)
                if desc["status"] != "RUNNING":
                    break
                time.sleep(0.05)
        return {"status": desc["status"], "error": desc.get("error"), "output": json.loads(desc.get("output") or "null"),
                "calls": calls, "waits": waits}

    yield run


def steps(calls: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in calls if c.get("humanparse_video") == kind]


def test_chunks_then_join_and_chunk_outputs_discarded(machine: Callable[[Answer, int], dict[str, Any]]) -> None:
    r = machine(echo, 5)
    assert r["status"] == "SUCCEEDED", r
    assert sorted(c["index"] for c in steps(r["calls"], "chunk")) == list(range(5))
    (join,) = steps(r["calls"], "join")
    assert join == {"humanparse_video": "join", "job_id": "a" * 32, "count": 5,
                    "source": {"bucket": "b", "key": "uploads/clip.mp4", "etag": "e"}}
    assert r["calls"][-1] == join and not r["waits"]


def test_a_throttled_chunk_backs_off_and_the_job_succeeds(machine: Callable[[Answer, int], dict[str, Any]]) -> None:
    """Eight throttles in a row on one chunk (the old definition gave up after three quick tries)."""
    def answer(payload: dict[str, Any], n: int) -> dict[str, Any]:
        if payload.get("index") == 1 and n < 8:
            return throttle()
        return echo(payload, n)

    r = machine(answer, 3)
    assert r["status"] == "SUCCEEDED", r
    assert len([c for c in steps(r["calls"], "chunk") if c["index"] == 1]) == 9
    assert not steps(r["calls"], "fail") and len(steps(r["calls"], "join")) == 1
    # full jitter: each wait at most the capped exponential interval 2, 4, 8, ... 60 s
    caps = [min(2.0 * 2**k, 60.0) for k in range(8)]
    assert len(r["waits"]) == 8 and all(0 <= w <= cap for w, cap in zip(r["waits"], caps, strict=True)), r["waits"]


def test_endless_throttling_fails_the_job_after_the_budget(machine: Callable[[Answer, int], dict[str, Any]]) -> None:
    def answer(payload: dict[str, Any], n: int) -> dict[str, Any]:
        return throttle() if payload.get("humanparse_video") == "chunk" else echo(payload, n)

    r = machine(answer, 1)
    assert r["status"] == "FAILED" and r["error"] == "VideoJobFailed", r
    assert len(steps(r["calls"], "chunk")) == 13  # 1 + 12 retries
    assert sum(r["waits"]) <= 2 + 4 + 8 + 16 + 32 + 7 * 60  # about 8 minutes at most
    (fail,) = steps(r["calls"], "fail")
    assert fail["error"]["Error"] == "Lambda.TooManyRequestsException" and fail["job_id"] == "a" * 32
    assert not steps(r["calls"], "join")


def test_a_failing_chunk_gets_three_tries_then_fail_job(machine: Callable[[Answer, int], dict[str, Any]]) -> None:
    def answer(payload: dict[str, Any], n: int) -> dict[str, Any]:
        if payload.get("index") == 0:
            return {"StatusCode": 200, "FunctionError": "Unhandled",
                    "Payload": {"errorType": "RuntimeError", "errorMessage": "decoder crashed"}}
        return echo(payload, n)

    r = machine(answer, 2)
    assert r["status"] == "FAILED" and r["error"] == "VideoJobFailed", r
    assert len([c for c in steps(r["calls"], "chunk") if c["index"] == 0]) == 3
    assert r["waits"][:2] == [5, 10]  # States.ALL: 5 s, then 10 s, no jitter
    (fail,) = steps(r["calls"], "fail")
    assert fail["error"]["Error"] == "RuntimeError" and "decoder crashed" in fail["error"]["Cause"]

