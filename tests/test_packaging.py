"""What a wheel carries (the pinned lite models, licences, the calibration photo, the console script), that
look-up finds models only in the places it is given, and the command line as people type it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
from humanparse.models import LITE_SHA256, packaged_lite_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    src = tmp_path_factory.mktemp("src")  # build from a copy: setuptools writes build/ and *.egg-info in place
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("humanparse-*.whl")
    return whl


def test_wheel_carries_pinned_models_licences_and_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name, digest in LITE_SHA256.items():
            assert hashlib.sha256(z.read(f"humanparse/models/lite/{name}")).hexdigest() == digest
        for extra in ("LICENSE-bodypix.txt", "LICENSE-pan.txt", "NOTICE"):
            assert f"humanparse/models/lite/{extra}" in names
        assert {"humanparse/calibration/astronaut.jpg", "humanparse/calibration/LICENSE.txt"} <= names
        (ep,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "humanparse = humanparse.entries.cli:main" in z.read(ep).decode()


def test_wheel_carries_the_page_and_serve_finds_it(wheel: Path, tmp_path: Path) -> None:
    """``humanparse serve`` from an installed wheel (no checkout beside it) serves the page the wheel carries."""
    page = ROOT / "frontend"
    wanted = {f"humanparse/frontend/{p.relative_to(page).as_posix()}" for p in page.rglob("*") if p.is_file()}
    assert "humanparse/frontend/index.html" in wanted and any(n.startswith("humanparse/frontend/js/") for n in wanted)
    with zipfile.ZipFile(wheel) as z:
        assert wanted <= set(z.namelist())
        assert "humanparse/py.typed" in z.namelist()
        z.extractall(tmp_path / "site")
    r = subprocess.run([sys.executable, "-c", "from humanparse.entries.cli import frontend_dir; print(frontend_dir())"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == tmp_path / "site" / "humanparse" / "frontend"


def test_packaged_models_are_found_and_verified(tmp_path: Path) -> None:
    from humanparse.engine.lite import find_lite_models
    from humanparse.exceptions import ModelError, ModelNotFound

    bp, pan = find_lite_models([tmp_path / "absent", packaged_lite_dir()])
    assert bp.parent == packaged_lite_dir() and pan.parent == packaged_lite_dir()
    with pytest.raises(ModelNotFound, match="lite models not found in") as info:
        find_lite_models([tmp_path])
    assert "local_runner" not in str(info.value)  # the engine names no command; the CLI adds the hint
    for f in (bp, pan):
        (tmp_path / f.name).write_bytes(f.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="not the pinned"):
        find_lite_models([tmp_path, packaged_lite_dir()])


def test_no_development_path_in_the_package() -> None:
    pkg = ROOT / "function" / "humanparse"
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py") if '"shared"' in p.read_text()]
    assert offenders == []


def test_help_shows_an_example_per_command() -> None:
    from humanparse.entries.cli import COMMANDS, build_parser

    top = build_parser().format_help()
    for cmd in COMMANDS:
        assert f"python local_runner.py {cmd}" in top or cmd == "serve"
    assert "python local_runner.py --port 8000" in top
    assert "humanparse parse photos/*.jpg --out out/" in build_parser("humanparse").format_help()


def test_serve_options_without_the_word_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    from humanparse.entries import cli

    seen: dict[str, object] = {}
    monkeypatch.setattr(cli, "cmd_serve", lambda a: seen.update(port=a.port, cmd=a.cmd) or 0)
    assert cli.main(["--port", "8123"]) == 0
    assert seen == {"port": 8123, "cmd": "serve"}


def test_download_lite_refreshes_with_checked_hashes(tmp_path: Path) -> None:
    from humanparse.exceptions import DownloadError
    from humanparse.models.download import download_lite

    got = download_lite(tmp_path / "cache", source_dir=packaged_lite_dir())
    assert sorted(p.name for p in got) == sorted(LITE_SHA256)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in LITE_SHA256:
        (bad / name).write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="does not match the pinned"):
        download_lite(tmp_path / "other", source_dir=bad)
    assert not any((tmp_path / "other").glob("*.onnx"))


def test_cli_adds_the_download_hint_to_a_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from humanparse.entries.cli import main

    rc = main(["parse", str(tmp_path / "x.jpg"), "--out", str(tmp_path / "o"), "--model", "m2fp",
               "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 2 and "no M2FP model folder" in err and "python local_runner.py download m2fp" in err


def _venv_env(venv: Path, home: Path) -> dict[str, str]:
    """A person's shell with only this venv: no PYTHONPATH to the checkout, a fresh HOME, no HUMANPARSE_*."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("HUMANPARSE_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    return {**keep, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}{os.pathsep}{keep.get('PATH', '/usr/bin:/bin')}",
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))}


def _serve_answers(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Start ``humanparse serve``, fetch the page and /healthz, stop it with Ctrl-C; its exit status and output."""
    port = str(_free_port())
    proc = subprocess.Popen([*cmd, "--port", port], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # the runner prints this line once page, API and S3 all listen
        lines.append(line)
        if "humanparse is up" in line:
            break
    try:
        assert "humanparse is up" in "".join(lines), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert b"humanparse" in page.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/healthz", timeout=30) as health:
            assert json.loads(health.read())["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    return proc.returncode, "".join(lines) + rest


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_wheel_in_a_fresh_venv_runs_every_documented_command(wheel: Path, tmp_path: Path) -> None:
    """The README's install, as a stranger does it: the wheel into a new venv (no system site-packages, so
    nothing of this machine's extras is visible), commands run from an unrelated folder. Without ``[local]``
    ``parse`` works and ``serve`` exits 2 naming the pip command; that very command adds the extra, then
    ``serve`` serves the page. ~1 min: torch and the rest install from the local pip cache."""
    venv, work, home = tmp_path / "venv", tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _venv_env(venv, home)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    r = subprocess.run([*pip, str(wheel)], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    cli = str(venv / "bin" / "humanparse")
    shutil.copy(ROOT / "function" / "humanparse" / "calibration" / "astronaut.jpg", work / "me.jpg")

    r = subprocess.run([cli, "parse", "me.jpg", "--out", "out", "--quiet"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert {"me.label.png", "me.color.png", "me.overlay.jpg", "me.json"} <= {p.name for p in (work / "out").iterdir()}

    r = subprocess.run([cli, "serve", "--port", str(_free_port())], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()  # one line: what is missing and the exact command
    assert "[local]" in line and "-m pip install" in line, line
    command = line.split(": ", 2)[-1]
    assert command.startswith(str(venv / "bin" / "python")), command
    r = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr

    rc, out = _serve_answers([cli, "serve"], work, env)
    assert rc == 0, out
    assert (work / ".humanparse-data").is_dir()  # an installed package keeps its data where it is started


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Fast twin of the venv test: with ``moto`` not importable, ``serve`` exits 2 before loading anything and
    ``download m2fp`` names its own extra; ``parse`` is not held back by either."""
    import importlib.util

    from humanparse.entries import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("moto", "modelscope") else real(name, *a))
    monkeypatch.setattr(cli, "cmd_serve", lambda a: pytest.fail("serve ran without its extra"))
    assert cli.main(["serve", "--port", "8123"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: `serve` needs the [local] extra (moto not installed): ")
    assert f"{sys.executable} -m pip install " in line and "[local]'" in line
    assert cli.main(["download", "m2fp", "--no-calibrate"]) == 2
    assert "needs the [download] extra (modelscope not installed)" in capsys.readouterr().err
    monkeypatch.setattr(cli, "cmd_parse", lambda a: 0)
    assert cli.main(["parse", "x.jpg", "--out", "o"]) == 0
