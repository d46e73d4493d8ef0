"""CPU quota detection (the thread count we give torch) and the container image's recipe, checked by
construction since no Docker engine runs here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT
from humanparse.runtime import configure_threads, cpu_quota


def test_cpu_quota_from_cgroup_v2(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cpu_quota(tmp_path) == 3  # 2.5 CPUs → 3 threads
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) >= 1  # unlimited: falls back to affinity


def test_cpu_quota_from_cgroup_v1(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpu_quota(tmp_path) == 2


def test_configure_threads_sets_torch() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


_FAULTS = """
import random, resource, sys
sys.path.insert(0, sys.argv[1])
import torch
if sys.argv[2] == "1":
    from humanparse.runtime import configure_threads
    configure_threads(1)
rng = random.Random(0)
sizes = [rng.randint(1 << 17, 3 << 18) for _ in range(120)]  # 0.5-3 MB float planes, as a post-processing's
def churn():
    live = [torch.empty(n).fill_(1.0) for n in sizes]
    rng.shuffle(live)
    while live:
        live.pop()
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_configured_process_reuses_freed_memory() -> None:
    """keep_freed_memory (via configure_threads): a second round of the same allocations finds its blocks in
    memory the first round freed, where glibc's default hands freed blocks back and faults fresh pages in again
    (measured: 283 k page faults per 864x640 post-processing → 0 before the in-place post-processing passes made that
    workload churn less; the pattern here — 120 planes of 0.5-3 MB alive together, freed in random order — gave
    53 k faults with the default and 230-400 configured)."""
    import platform
    import subprocess
    import sys

    import pytest

    if platform.libc_ver()[0] != "glibc":  # macOS, Windows, musl: the allocator is left as it is
        pytest.skip("the C library is not glibc")

    def faults(configured: bool) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, str(ROOT / "function"), "1" if configured else "0"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.split()[-1])

    default, configured = faults(False), faults(True)
    assert default > 20_000 and configured < default / 20, (default, configured)


def test_dockerfile_recipe() -> None:
    text = (ROOT / "Dockerfile").read_text()
    # every COPY source from the build context exists
    for line in text.splitlines():
        m = re.match(r"COPY\s+(?:--chmod=\S+\s+)?(?!--from)(.+)\s+\S+$", line.strip())
        if m:
            for src in m.group(1).split():
                assert (ROOT / src.rstrip("/")).exists(), src
    assert "torch==2.13.0" in text and "whl/cpu" in text  # CPU-only torch, never a CUDA build
    assert "USER 1000" in text and "HEALTHCHECK" in text
    assert not (ROOT / ".dockerignore").read_text().count("\nfunction")


def test_image_prune_keeps_what_the_functions_use() -> None:
    """scripts/prune_venv.sh: the Dockerfile applies every cut it names, and its botocore cut keeps the API model of
    every service the code builds a client for (a client of a removed model fails at run time: UnknownServiceError)
    and X-Ray's (powertools' tracer builds its sampling client at import)."""
    script = (ROOT / "scripts" / "prune_venv.sh").read_text()
    cuts = re.search(r'^CUTS="([^"]+)"', script, re.M)
    kept = re.search(r'^BOTOCORE_SERVICES="([^"]+)"', script, re.M)
    assert cuts and kept
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert all(re.search(rf"prune_venv\.sh /opt/venv [^\n]*\b{c}\b", dockerfile) for c in cuts.group(1).split())
    called = {name for f in (ROOT / "function").rglob("*.py")
              for name in re.findall(r"\.client\(\s*[\"']([a-z0-9-]+)[\"']", f.read_text())}
    assert {"s3", "sqs", "stepfunctions"} <= called
    assert called | {"xray"} <= set(kept.group(1).split()), called - set(kept.group(1).split())


def test_handler_names_in_image_and_template_exist() -> None:
    """The handler names the image CMD and the template's ImageConfig use are module-level functions of
    humanparse/handler.py (checked in its source: importing it would load a model)."""
    tree = ast.parse((ROOT / "function" / "humanparse" / "handler.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    names = re.findall(r"humanparse\.handler\.(\w+)", (ROOT / "Dockerfile").read_text()
                       + (ROOT / "infra" / "template.yaml").read_text())
    assert names and set(names) <= defined, (set(names) - defined)


def test_configure_threads_survives_cpuinfo_failure(monkeypatch: object) -> None:
    """Where cpuinfo cannot read sysfs, torch.set_num_threads raises: start anyway with our own count."""
    import pytest
    import torch

    mp = pytest.MonkeyPatch()
    try:
        def broken(n: int) -> None:
            raise RuntimeError("[enforce fail at ThreadPool.cc:44] cpuinfo_initialize(). cpuinfo initialization failed")

        mp.setattr(torch, "set_num_threads", broken)
        assert configure_threads(2) == 2
    finally:
        mp.undo()
