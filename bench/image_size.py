"""The Lambda image's Python payload, uncompressed, and what each cut of ``scripts/prune_venv.sh`` saves.

No Docker engine needed: the image's virtual environment is rebuilt as the Dockerfile builds it (a venv, the
pinned CPU-only torch, then ``pip install --no-compile -c constraints.txt . awslambdaric``), measured, cut one
named cut at a time (sizes after each), compiled to bytecode as the Dockerfile does (the ``.pyc`` files are in the
image too), and then used: the Lambda module is imported from it and parses the package's calibration photo
with the lite tier and with an M2FP folder (``--model-dir``, default the random-weight folder in ModelScope's
layout), and boto3 builds a client for every service the functions call.

    python bench/image_size.py --work /tmp/image-size                          # torch from PyTorch's CPU index
    python bench/image_size.py --work /tmp/image-size --find-links /opt/wheels  # torch's CPU wheel on disk

Sizes are apparent sizes (bytes of the files, as an uncompressed image layer holds them), in MB (10^6).
``--reuse``: the dependencies installed in ``--work``/venv-raw by an earlier run, this checkout's package
reinstalled over them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRUNE = ROOT / "scripts" / "prune_venv.sh"
MB = 1e6


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (each hard-linked file once, links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen and not os.path.islink(os.path.join(dirpath, name)):
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def torch_pin() -> str:
    """The torch version the Dockerfile installs (``torch==X``)."""
    m = re.search(r"torch==([0-9][^\s]*)", (ROOT / "Dockerfile").read_text())
    if not m:
        raise SystemExit("no torch==<version> in the Dockerfile")
    return m.group(1)


PIP = ["install", "-q", "--no-compile", "--disable-pip-version-check"]


def build(venv: Path, find_links: str | None) -> None:
    """The Dockerfile's build-stage install, into ``venv`` (nothing compiled: --no-compile, as there)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    where = ["--find-links", find_links] if find_links else ["--index-url", "https://download.pytorch.org/whl/cpu"]
    version = torch_pin() + ("+cpu" if find_links and "+" not in torch_pin() else "")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *PIP, *where, f"torch=={version}"], check=True)
    install_package(venv, ["-c", "constraints.txt", ".", "awslambdaric"])


def install_package(venv: Path, args: list[str]) -> None:
    """``pip install args`` in a copy of the build context (what the Dockerfile COPYs before its pip install)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "constraints.txt"):
            shutil.copy2(ROOT / name, src / name)
        for name in ("function", "frontend"):
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *PIP, *args], check=True, cwd=src)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def largest(venv: Path, n: int = 12) -> dict[str, float]:
    """The ``n`` largest top-level entries of site-packages, MB."""
    site = site_packages(venv)
    sizes = {p.name: tree_bytes(p) if p.is_dir() else p.stat().st_size for p in site.iterdir()}
    return {k: round(v / MB, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:n]}


def prune(venv: Path, cuts: list[str]) -> list[dict[str, object]]:
    """Apply ``cuts`` one by one; the size after each and what it saved."""
    rows: list[dict[str, object]] = []
    before = tree_bytes(venv)
    for cut in cuts:
        subprocess.run(["sh", str(PRUNE), str(venv), cut], check=True)
        after = tree_bytes(venv)
        rows.append({"cut": cut, "saved_mb": round((before - after) / MB, 1), "venv_mb": round(after / MB, 1)})
        print(f"{cut:16s} saved {(before - after) / MB:7.1f} MB -> {after / MB:7.1f} MB", flush=True)
        before = after
    return rows


def bytecode(venv: Path) -> int:
    """Compile as the Dockerfile does; returns the bytes the .pyc files add."""
    before = tree_bytes(venv)
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j0", "-f", "--invalidation-mode",
                    "unchecked-hash", str(site_packages(venv))], check=False, capture_output=True)
    return tree_bytes(venv) - before


USE = """
import json, sys, time
from pathlib import Path
import numpy as np
from PIL import Image
import boto3
import humanparse
from humanparse import handler
photo = Path(humanparse.__file__).parent / "calibration" / "astronaut.jpg"
rgb = np.asarray(Image.open(photo).convert("RGB"))
result = handler.parser.parse(rgb)
clients = [boto3.client(s, region_name="us-east-1").meta.service_model.service_name
           for s in ("s3", "sqs", "stepfunctions", "xray", "sts")]
print(json.dumps({"model": result.model.kind, "labels": int(np.unique(result.label_map).size),
                  "persons": len(result.persons), "from": str(Path(humanparse.__file__).parent),
                  "clients": clients}))
"""


def use(venv: Path, model_dir: Path | None) -> dict[str, object]:
    """Import the Lambda module from ``venv`` (its own installed copy, not this checkout) and parse one photo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUMANPARSE_", "PYTHON"))}
    env.update({"HUMANPARSE_UPLOAD_BUCKET": "size-check", "AWS_REGION": "us-east-1", "HUMANPARSE_KERNELS": "default",
                "HUMANPARSE_SHARE_KERNEL_VERDICT": "false", "HUMANPARSE_THREADS": "2",
                "HUMANPARSE_MODEL_KIND": "m2fp" if model_dir else "lite", "PYTHONDONTWRITEBYTECODE": "1"})
    if model_dir:
        env["HUMANPARSE_MODEL_DIR"] = str(model_dir)
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: its function/ must not shadow the venv's copy
        r = subprocess.run([str(venv / "bin" / "python"), "-c", USE], env=env, cwd=cwd, capture_output=True,
                           text=True)
    if r.returncode:
        raise SystemExit(f"the pruned environment failed to import or parse:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the environment (about 3 GB at peak)")
    ap.add_argument("--find-links", default=None, help="a folder holding torch's CPU wheel (offline)")
    ap.add_argument("--reuse", action="store_true", help="reuse --work/venv-raw from an earlier run")
    ap.add_argument("--model-dir", type=Path, default=None, help="M2FP folder for the use check")
    args = ap.parse_args()
    raw, venv = args.work / "venv-raw", args.work / "venv"
    if not (args.reuse and (raw / "bin" / "python").exists()):
        shutil.rmtree(raw, ignore_errors=True)
        build(raw, args.find_links)
    else:  # the dependencies as they were; this checkout's package
        install_package(raw, ["--no-deps", "--force-reinstall", "."])
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(["cp", "-a", str(raw), str(venv)], check=True)
    report: dict[str, object] = {"installed_mb": round(tree_bytes(venv) / MB, 1), "largest_before": largest(venv)}
    print(f"installed        {report['installed_mb']} MB", flush=True)
    cuts = subprocess.run(["sh", str(PRUNE), "--list"], check=True, capture_output=True, text=True).stdout.split()
    report["cuts"] = prune(venv, cuts)
    report["pruned_mb"] = round(tree_bytes(venv) / MB, 1)
    report["largest_after"] = largest(venv)
    report["bytecode_mb"] = round(bytecode(venv) / MB, 1)
    report["with_bytecode_mb"] = round(tree_bytes(venv) / MB, 1)
    model_dir = args.model_dir
    if model_dir is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from m2fp_random import make_random_m2fp_folder

        model_dir = make_random_m2fp_folder(args.work / "m2fp-random")
    report["use"] = {"lite": use(venv, None), "m2fp": use(venv, model_dir)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
