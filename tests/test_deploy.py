"""scripts/deploy.sh and scripts/deploy_page.sh, run for real with ``docker``, ``aws`` and ``sam`` replaced by
recorders on PATH: each call's arguments (and the password piped into ``docker login``) are recorded, and the
recorder answers as a fresh or an already deployed account would. The test asserts what a real account needs:
the image's platform and single manifest, the ECR repository created once, the image repository and
parameters ``sam deploy`` gets, and the page's CloudFront origin wired into CORS without a manual second step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

ACCOUNT, REGION, STACK = "123456789012", "eu-west-1", "hp"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
PAGE_URL = "https://d111abcdef8.cloudfront.net"
OUTPUTS = {"PageUrl": PAGE_URL, "ApiUrl": f"https://abc123.execute-api.{REGION}.amazonaws.com/",
           "PageBucketName": "hp-pagebucket-1x2y", "AuthMode": "NONE", "UploadBucketName": f"hp-uploads-{ACCOUNT}",
           "ResultsBucketName": f"hp-results-{ACCOUNT}"}

# One recorder for the three tools; its state (repository made, stack deployed) lives in files under $FAKE_STATE.
RECORDER = r'''
import json, os, re, shutil, sys
from pathlib import Path
tool, args = sys.argv[1], sys.argv[2:]
state = Path(os.environ["FAKE_STATE"])
stdin = sys.stdin.read() if "--password-stdin" in args else None
with open(state / "calls.jsonl", "a") as f:
    f.write(json.dumps({"tool": tool, "args": args, "stdin": stdin, "region": os.environ.get("AWS_REGION")}) + "\n")
outputs = json.loads(os.environ["FAKE_OUTPUTS"])
if tool == "aws":
    cmd = args[:2]
    if cmd == ["sts", "get-caller-identity"]:
        print(os.environ["FAKE_ACCOUNT"])
    elif cmd == ["configure", "get"]:
        sys.exit(1)
    elif cmd == ["ecr", "describe-repositories"]:
        if not (state / "repo").exists():
            print("RepositoryNotFoundException", file=sys.stderr); sys.exit(254)
        print("{}")
    elif cmd == ["ecr", "create-repository"]:
        (state / "repo").touch(); print("{}")
    elif cmd == ["ecr", "get-login-password"]:
        print("ecr-password")
    elif cmd == ["cloudformation", "describe-stacks"]:
        if not (state / "stack").exists():
            print("Stack with id hp does not exist", file=sys.stderr); sys.exit(254)
        key = re.search(r"OutputKey=='(\w+)'", args[args.index("--query") + 1]).group(1)
        print(outputs.get(key, "None"))
    elif cmd[0] == "s3" and cmd[1] == "sync":
        shutil.copytree(args[2], state / "synced", dirs_exist_ok=True)
    else:
        print("unexpected aws call", args, file=sys.stderr); sys.exit(3)
elif tool == "sam":
    assert args[0] == "deploy", args
    (state / "stack").touch()
'''


def run_deploy(tmp_path: Path, *args: str, deployed: bool = False, repo: bool = False,
               outputs: dict[str, str] | None = None, tag: str | None = "t1") -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    (tmp_path / "recorder.py").write_text(RECORDER)
    for tool in ("aws", "docker", "sam"):
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "recorder.py"}" {tool} "$@"\n')
        fake.chmod(0o755)
    if deployed:
        (state / "stack").touch()
    if repo:
        (state / "repo").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", FAKE_STATE=str(state), FAKE_ACCOUNT=ACCOUNT,
               FAKE_OUTPUTS=json.dumps(outputs if outputs is not None else OUTPUTS))
    r = subprocess.run(["bash", str(ROOT / "scripts" / "deploy.sh"), "--stack", STACK, "--region", REGION,
                        *(["--tag", tag] if tag else []), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    log = state / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return r, calls


def of(calls: list[dict[str, Any]], tool: str, *first: str) -> list[list[str]]:
    return [c["args"] for c in calls if c["tool"] == tool and c["args"][:len(first)] == list(first)]


def overrides(sam_args: list[str]) -> dict[str, str]:
    i = sam_args.index("--parameter-overrides")
    return dict(a.split("=", 1) for a in sam_args[i + 1:])


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def template_parameters() -> set[str]:
    from cfnlint.decode import cfn_yaml

    return set(cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))["Parameters"])


def test_fresh_account_gets_repository_single_manifest_image_and_cors_wired(tmp_path: Path) -> None:
    r, calls = run_deploy(tmp_path, "MemorySize=3008")
    assert r.returncode == 0, r.stdout + r.stderr
    image = f"{REGISTRY}/{STACK}:t1"
    assert of(calls, "aws", "ecr", "create-repository")[0][:4] == ["ecr", "create-repository", "--repository-name",
                                                                     STACK]
    (login,) = [c for c in calls if c["tool"] == "docker" and c["args"][0] == "login"]
    assert login["args"] == ["login", "--username", "AWS", "--password-stdin", REGISTRY]
    assert login["stdin"].strip() == "ecr-password"
    (build,) = of(calls, "docker", "build")
    assert flag(build, "--platform") == "linux/amd64" and "--provenance=false" in build
    assert flag(build, "-t") == image and "WITH_M2FP=1" in build and build[-1] == "."
    assert of(calls, "docker", "push") == [["push", image]]
    # repository before login before build before push before the stack
    order = [i for i, c in enumerate(calls) if c["tool"] != "aws" or c["args"][:2] == ["ecr", "create-repository"]]
    assert [calls[i]["tool"] for i in order][:4] == ["aws", "docker", "docker", "docker"]
    deploys = of(calls, "sam", "deploy")
    assert len(deploys) == 2  # the first creates the distribution, the second puts its domain into CORS
    for d in deploys:
        assert flag(d, "--image-repository") == f"{REGISTRY}/{STACK}" and flag(d, "--stack-name") == STACK
        assert "CAPABILITY_IAM" in d and "--resolve-s3" in d and flag(d, "--region") == REGION
        p = overrides(d)
        assert p["ImageUri"] == image and p["Architecture"] == "x86_64" and p["MemorySize"] == "3008"
        assert set(p) <= template_parameters(), set(p) - template_parameters()
    assert overrides(deploys[0])["PageOrigin"] == "https://example.com"
    assert overrides(deploys[1])["PageOrigin"] == PAGE_URL
    assert all(c["region"] == REGION for c in calls)
    # the page, published by deploy_page.sh after the second deploy: same-origin API, CSP narrowed, no stray files
    synced = tmp_path / "state" / "synced"
    sync_at = next(i for i, c in enumerate(calls) if c["args"][:2] == ["s3", "sync"])
    last_deploy = max(i for i, c in enumerate(calls) if c["tool"] == "sam")
    assert sync_at > last_deploy
    config = (synced / "config.js").read_text()
    assert '"apiBase": "/api"' in config and '"auth": false' in config
    csp = re.search(r"connect-src ([^;]*);", (synced / "index.html").read_text())
    assert csp is not None
    assert f"https://hp-uploads-{ACCOUNT}.s3.{REGION}.amazonaws.com" in csp.group(1).split()
    assert f"https://hp-results-{ACCOUNT}.s3.amazonaws.com" in csp.group(1).split()
    page_files = {p.relative_to(ROOT / "frontend") for p in (ROOT / "frontend").rglob("*") if p.is_file()}
    published = {p.relative_to(synced) for p in synced.rglob("*") if p.is_file()}
    assert published == page_files  # config.js rewritten in place; no sed backup or temporary file left


def test_existing_stack_deploys_once_with_its_page_origin(tmp_path: Path) -> None:
    r, calls = run_deploy(tmp_path, deployed=True, repo=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not of(calls, "aws", "ecr", "create-repository")
    (deploy,) = of(calls, "sam", "deploy")
    assert overrides(deploy)["PageOrigin"] == PAGE_URL


def test_arm64_builds_for_arm_and_sets_the_functions_architecture(tmp_path: Path) -> None:
    r, calls = run_deploy(tmp_path, "--architecture", "arm64", "--lite", "--model-revision", "v1.0.2",
                          repo=True, deployed=True)
    assert r.returncode == 0, r.stdout + r.stderr
    (build,) = of(calls, "docker", "build")
    assert flag(build, "--platform") == "linux/arm64" and "--provenance=false" in build and "WITH_M2FP=0" in build
    assert "MODEL_REVISION=v1.0.2" in build
    (deploy,) = of(calls, "sam", "deploy")
    assert overrides(deploy)["Architecture"] == "arm64"


def test_given_page_origin_is_used_as_is(tmp_path: Path) -> None:
    r, calls = run_deploy(tmp_path, "PageOrigin=https://parse.example.org", "CreateCdn=false",
                          outputs={k: v for k, v in OUTPUTS.items() if k != "PageUrl"})
    assert r.returncode == 0, r.stdout + r.stderr
    (deploy,) = of(calls, "sam", "deploy")
    assert overrides(deploy)["PageOrigin"] == "https://parse.example.org"
    assert overrides(deploy)["CreateCdn"] == "false"
    config = (tmp_path / "state" / "synced" / "config.js").read_text()
    assert f'"apiBase": "{OUTPUTS["ApiUrl"].rstrip("/")}"' in config  # no CloudFront: the HTTP API's own URL


@pytest.mark.parametrize("args", [("ReservedConcurrency=10", "BackfillConcurrency=10"),
                                  ("ReservedConcurrency=10", "BackfillConcurrency=2", "VideoConcurrency=12"),
                                  ("ReservedConcurrency=3",), ("--architecture", "sparc"), ("Architecture=sparc",),
                                  ("--bogus",)])
def test_refused_before_anything_is_built(tmp_path: Path, args: tuple[str, ...]) -> None:
    r, calls = run_deploy(tmp_path, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert not [c for c in calls if c["tool"] != "aws"] and r.stderr.strip()


def test_image_is_reproducible_and_carries_no_local_emulation() -> None:
    """The Dockerfile installs the package without extras (no moto, no uvicorn) under constraints.txt, which
    pins every runtime dependency (torch: its own pinned step) to one version that satisfies pyproject."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    text = (ROOT / "Dockerfile").read_text()
    assert ".[local]" not in text and 'ARG EXTRAS=""' in text
    assert re.search(r"pip install [^\n]*-c constraints\.txt", text) and "constraints.txt" in text.split("COPY")[1]
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, deps + ["awslambdaric"]):
        name = canonicalize_name(dep.name)
        if name == "torch":
            assert f"torch{dep.specifier}" in text
            continue
        assert name in pins, name
        assert dep.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    for local_only in ("moto", "uvicorn"):
        assert local_only not in pins


def test_scripts_edit_files_portably() -> None:
    """No `sed -i`: GNU sed takes `-i` alone, BSD (macOS) sed takes the next argument as a backup suffix, so
    `sed -i -E` there writes `index.html-E` into the published page."""
    for script in (ROOT / "scripts").glob("*.sh"):
        code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not [line for line in code if re.search(r"\bsed\s+(-\w+\s+)*-i", line)], script.name


def test_skip_build_deploys_the_tagged_image(tmp_path: Path) -> None:
    r, calls = run_deploy(tmp_path, "--skip-build", "Architecture=arm64", repo=True, deployed=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not of(calls, "docker", "build") and not of(calls, "docker", "push")
    (deploy,) = of(calls, "sam", "deploy")
    assert overrides(deploy)["ImageUri"] == f"{REGISTRY}/{STACK}:t1" and overrides(deploy)["Architecture"] == "arm64"
    other = tmp_path / "untagged"
    other.mkdir()
    r, calls = run_deploy(other, "--skip-build", tag=None)
    assert r.returncode == 2 and "--tag" in r.stderr and not [c for c in calls if c["tool"] != "aws"]
