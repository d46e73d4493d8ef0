"""Windows, macOS and arm64 Linux without such a machine: the local store, the runner's start and stop and the
batch CLI run in a subprocess whose ``sitecustomize`` hides what only POSIX (or only Linux) has — ``fcntl``,
``os.O_DIRECTORY``, ``os.fchmod``, ``os.sched_getaffinity``, ``signal.SIGHUP`` — and the platform-specific
branches (record names Windows reserves or that pass 260 characters, held files, ``F_FULLFSYNC``, Ctrl-Break, a
registry that maps ``.js`` to text/plain, case-insensitive output names) are driven here on Linux."""

from __future__ import annotations

import json
import mimetypes
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import pytest
import requests
from humanparse.local.durable import DataDirError, DiskStore, Record, encode_key
from PIL import Image
from runner import ROOT, Runner

HIDE = textwrap.dedent("""
    # what Windows (and, for sched_getaffinity, macOS) lacks: `import fcntl` fails, the attributes are gone
    import os, signal, sys
    sys.modules["fcntl"] = None
    for name in ("O_DIRECTORY", "fchmod", "sched_getaffinity"):
        if hasattr(os, name):
            delattr(os, name)
    if hasattr(signal, "SIGHUP"):
        del signal.SIGHUP
""")
RESERVED = ["con", "prn", "aux", "nul", "com1", "com9", "lpt1", "lpt0"]


@pytest.fixture()
def hidden_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "hide-posix"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE)
    path = os.pathsep.join([str(site), str(ROOT / "function"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=ROOT,
                          capture_output=True, timeout=300)


# ------------------------------------------------------------------------------ POSIX-only parts hidden
def test_store_profile_and_cpu_count_without_posix_parts(hidden_env: dict[str, str], tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # with a 200-character record name the path passes 260 characters
    code = """
        import json, os, signal, stat, sys
        from pathlib import Path
        assert not hasattr(os, "O_DIRECTORY") and not hasattr(signal, "SIGHUP")
        from humanparse.local.durable import DataDirError, DiskStore, Record
        from humanparse.local.deployment import write_aws_profile
        from humanparse.local.s3local import LocalAws
        from humanparse.runtime import cpu_quota
        root, keys = Path(sys.argv[1]), json.loads(sys.argv[2])
        store = DiskStore(root)
        store.open()
        for bucket in ("aux", "uploads"):
            for k in keys:
                store.put(Record(bucket, k, k.encode() * 3, "e"))
        try:
            DiskStore(root).open()
            second = "opened"
        except DataDirError as exc:
            second = str(exc)
        store.delete("uploads", keys[0])
        store.close()
        store = DiskStore(root)
        store.open()
        found = {b: sorted(r.key for r in store.scan(b)) for b in store.buckets()}
        longest = max(len(str(store.path("uploads", k))) for k in keys)
        write_aws_profile(root / "aws" / "config", LocalAws("http://127.0.0.1:1", "us-east-1"))
        mode = stat.S_IMODE((root / "aws" / "config").stat().st_mode)
        print(json.dumps({"second": second, "found": found, "problems": store.verify(), "longest": longest,
                          "mode": mode, "cpus": cpu_quota(Path(sys.argv[1]) / "no-cgroup")}))
    """
    keys = [*RESERVED, "x" * 300, "uploads/" + "é" * 120, "a.jpg"]
    r = _python(code, hidden_env, str(deep / "data"), json.dumps(keys))
    assert r.returncode == 0, r.stderr.decode()
    got = json.loads(r.stdout)
    assert got["second"].startswith("another local runner is using")
    assert got["found"] == {"aux": sorted(keys), "uploads": sorted(keys[1:])}
    assert got["problems"] == [] and got["longest"] > 260
    assert got["mode"] == 0o600 and got["cpus"] >= 1


def test_runner_starts_and_stops_without_posix_parts(hidden_env: dict[str, str], tmp_path: Path) -> None:
    r = Runner(tmp_path / "data", "--model", "lite", env=hidden_env).start()
    try:
        page = requests.get(r.base + "/js/main.js", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/javascript")
    finally:
        rc = r.stop()
    assert rc == 0 and "stopped cleanly" in r.log(), r.log()[-2000:]


def test_batch_cli_without_posix_parts_utf8_json_and_case_collisions(hidden_env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = (np.indices((96, 64)).sum(axis=0) % 256).astype(np.uint8)
    Image.fromarray(np.dstack([rgb] * 3)).save(photos / "a.png")
    Image.fromarray(np.dstack([rgb] * 3)).save(photos / "A.jpg")
    Image.fromarray(np.dstack([rgb] * 3)).save(photos / "фото.jpg")
    out = tmp_path / "out"
    # cp1252: what a redirected stdout gets on Windows; "фото" is not in it
    env = {**hidden_env, "PYTHONIOENCODING": "cp1252"}
    r = subprocess.run([sys.executable, str(ROOT / "local_runner.py"), "parse", str(photos), "--out", str(out),
                        "--model", "lite", "--threads", "1", "--json"], env=env, cwd=ROOT, capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines()]
    assert sorted(Path(line["input"]).name for line in lines) == sorted(["A.jpg", "a.png", "фото.jpg"])
    labels = sorted(p.name for p in out.glob("*.label.png"))
    assert len({n.casefold() for n in labels}) == 3, labels  # no two differ by case alone
    assert "фото.label.png" in labels


# ------------------------------------------------------------------------------------- record names
def test_windows_device_names_are_escaped_and_round_trip() -> None:
    from urllib.parse import unquote

    for key in RESERVED:
        name = encode_key(key)
        assert name != key and name.casefold() not in RESERVED and unquote(name) == key
    # only the bare name is a device here: dots are always escaped, so `nul.txt` is `nul%2Etxt`
    assert encode_key("nul.txt") == "nul%2Etxt" and encode_key("console") == "console"


def test_folder_written_with_device_names_is_renamed_and_found(tmp_path: Path) -> None:
    """A folder an earlier release wrote on Linux (a bucket and a key named ``aux``/``con``) is found after
    an upgrade: ``open`` renames its entries, nothing is quarantined."""
    store = DiskStore(tmp_path / "d")
    store.open()
    store.close()
    legacy = store.objects / "aux"
    legacy.mkdir()
    (legacy / "con").write_bytes(Record("aux", "con", b"old bytes", "e").encode())
    (legacy / "a%2Ejpg").write_bytes(Record("aux", "a.jpg", b"plain", "e").encode())
    store = DiskStore(tmp_path / "d")
    store.open()
    try:
        assert store.buckets() == ["aux"] and not legacy.exists()
        got = store.get("aux", "con")
        assert got is not None and got.body == b"old bytes"
        assert sorted(r.key for r in store.scan("aux")) == ["a.jpg", "con"]
        assert store.verify() == [] and not (store.root / "quarantine").exists()
    finally:
        store.close()


def test_extended_length_form_of_windows_paths() -> None:
    from humanparse.local.durable import _extended

    assert _extended(PureWindowsPath("C:\\Users\\me\\data")) == "\\\\?\\C:\\Users\\me\\data"
    assert _extended(PureWindowsPath("\\\\nas\\share\\data")) == "\\\\?\\UNC\\nas\\share\\data"
    assert _extended(PureWindowsPath("\\\\?\\C:\\data")) == "\\\\?\\C:\\data"


# ---------------------------------------------------------------------------------------- held files
def test_a_held_file_is_retried_then_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Antivirus holding the new record for a moment (Windows: PermissionError from the rename) costs a retry,
    not the write; a file held for good still fails as StorageUnavailable."""
    from humanparse.local import durable

    real_replace, calls = os.replace, []

    def held_twice(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) <= 2:
            raise PermissionError(13, "The process cannot access the file because it is being used")
        real_replace(src, dst)

    store = DiskStore(tmp_path / "d")
    store.open()
    try:
        monkeypatch.setattr(durable.os, "replace", held_twice)
        monkeypatch.setattr(durable, "_RETRY_DELAYS", (0.0,) * 4)
        store.put(Record("b", "k", b"bytes", "e"))
        assert len(calls) == 3 and store.get("b", "k") is not None

        def held_for_good(src: Any, dst: Any) -> None:
            raise PermissionError(13, "The process cannot access the file because it is being used")

        monkeypatch.setattr(durable.os, "replace", held_for_good)
        with pytest.raises(durable.StorageUnavailable, match="being used"):
            store.put(Record("b", "k2", b"bytes", "e"))
        assert [p.name for p in store.path("b", "k").parent.iterdir()] == ["k"]  # no temp file left
    finally:
        store.close()


def test_macos_flushes_with_full_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from humanparse.local import durable

    class FakeFcntl:
        F_FULLFSYNC = 51
        refuse = False
        calls: list[tuple[int, int]] = []

        def fcntl(self, fd: int, op: int) -> int:
            self.calls.append((fd, op))
            if self.refuse:
                raise OSError(45, "Operation not supported")  # e.g. SMB: then plain fsync
            return 0

    fake = FakeFcntl()
    monkeypatch.setattr(durable.sys, "platform", "darwin")
    monkeypatch.setitem(sys.modules, "fcntl", fake)
    fsynced: list[int] = []
    monkeypatch.setattr(durable.os, "fsync", fsynced.append)
    with open(tmp_path / "f", "wb") as fh:
        durable.fsync_file(fh.fileno())
        assert fake.calls == [(fh.fileno(), 51)] and fsynced == []
        fake.refuse = True
        durable.fsync_file(fh.fileno())
        assert fsynced == [fh.fileno()]


# ------------------------------------------------------------------------------------------- runner
@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="stands SIGUSR1 in for Ctrl-Break")
def test_ctrl_break_asks_for_a_graceful_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    from humanparse.local.deployment import StopSignals

    monkeypatch.delattr(signal, "SIGHUP", raising=False)
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)  # Windows' Ctrl-Break, by number
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        stop = StopSignals.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested.wait(5) and stop.received == [signal.SIGUSR1]
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_port_probe_refuses_a_port_in_use() -> None:
    from humanparse.local.deployment import DeploymentError, check_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(DeploymentError, match="pick another with --port"):
            check_port("127.0.0.1", taken.getsockname()[1])


def test_page_scripts_are_javascript_whatever_the_registry_says() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from humanparse.local.web import build_site

    mimetypes.add_type("text/plain", ".js")  # what an editor's install may leave in Windows' registry
    try:
        site = TestClient(build_site(FastAPI(), ROOT / "frontend"))
        for path in ("/js/main.js", "/style.css"):
            assert site.get(path).headers["content-type"].split(";")[0] in ("text/javascript", "text/css")
        assert site.get("/js/main.js").headers["content-type"].startswith("text/javascript")
    finally:
        mimetypes.add_type("text/javascript", ".js")


# --------------------------------------------------------------------------------------- batch, files
def test_output_names_differing_only_by_case_are_told_apart(tmp_path: Path) -> None:
    from humanparse.entries.batch import find_inputs

    for name in ("a.png", "A.jpg", "B.png", "sub/x.jpg", "SUB/X.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    items = find_inputs([str(tmp_path)], tmp_path / "out").items
    rels = [i.rel.as_posix() for i in items]
    assert len(rels) == 5 and len({r.casefold() for r in rels}) == 5, rels


def test_lite_download_leaves_no_temp_file_when_the_source_fails(tmp_path: Path) -> None:
    from humanparse.exceptions import DownloadError
    from humanparse.models.download import download_lite

    (tmp_path / "empty").mkdir()
    with pytest.raises(DownloadError, match="could not fetch"):
        download_lite(tmp_path / "cache", source_dir=tmp_path / "empty")
    assert list((tmp_path / "cache").iterdir()) == []


def test_store_refuses_a_second_runner_and_frees_the_folder_on_close(tmp_path: Path) -> None:
    a = DiskStore(tmp_path / "d")
    a.open()
    with pytest.raises(DataDirError):
        DiskStore(tmp_path / "d").open()
    a.close()
    b = DiskStore(tmp_path / "d")
    b.open()
    b.close()


# ---------------------------------------------------------------------------------------------- CPU names
GRAVITON2 = "".join(f"""processor\t: {i}
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

""" for i in range(2))
GRAVITON3 = GRAVITON2.replace("0xd0c", "0xd40").replace("ssbs", "ssbs sb paca pacg dcpodp sve i8mm bf16 dgh rng")
BIG_LITTLE = "".join(f"processor\t: {i}\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: "
                     f"{'0xd05' if i < 4 else '0xd0b'}\n\n" for i in range(8))  # RK3588: 4x A55 + 4x A76
UNKNOWN_ARM = "processor\t: 0\nFeatures\t: fp\nCPU implementer\t: 0x6d\nCPU part\t: 0xd49\n"
X86 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
       "flags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n")


def test_cpu_named_from_proc_cpuinfo_on_x86_and_arm64() -> None:
    from humanparse.engine.cpu import flags_from_cpuinfo, model_from_cpuinfo

    assert model_from_cpuinfo(X86) == "AMD EPYC 7B13"  # unchanged: verdicts cached before stay valid
    assert model_from_cpuinfo(GRAVITON2) == "ARM Neoverse-N1 [0x41:0xd0c]"
    assert model_from_cpuinfo(GRAVITON3) == "ARM Neoverse-V1 [0x41:0xd40]"
    assert model_from_cpuinfo(BIG_LITTLE) == "ARM Cortex-A55 [0x41:0xd05] x4 + ARM Cortex-A76 [0x41:0xd0b] x4"
    assert model_from_cpuinfo(UNKNOWN_ARM) == "arm64 [0x6d:0xd49]"  # still its own key
    assert model_from_cpuinfo("") is None
    assert flags_from_cpuinfo(X86) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert "bf16" in flags_from_cpuinfo(GRAVITON3) and "bf16" not in flags_from_cpuinfo(GRAVITON2)


def test_cpu_named_by_sysctl_on_macos_and_the_registry_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    from humanparse.engine import cpu

    answers = {"machdep.cpu.brand_string": "Apple M2 Pro", "hw.optional.arm.FEAT_BF16": "1"}
    monkeypatch.setattr(cpu.sys, "platform", "darwin")
    monkeypatch.setattr(cpu, "sysctl", answers.get)
    assert cpu.cpu_model() == "Apple M2 Pro" and cpu.cpu_flags() == {"bf16"}
    answers = {"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz",
               "machdep.cpu.features": "FPU SSE4.2 AVX1.0", "machdep.cpu.leaf7_features": "AVX2 BMI2"}
    monkeypatch.setattr(cpu, "sysctl", answers.get)
    assert cpu.cpu_flags() == {"fpu", "sse4_2", "avx1_0", "avx2", "bmi2"}

    class Winreg:
        HKEY_LOCAL_MACHINE = 0
        name: str | None = "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"

        def OpenKey(self, root: int, path: str) -> Any:  # noqa: N802 - winreg's names
            import contextlib

            assert path.endswith("CentralProcessor\\0")
            if self.name is None:
                raise OSError(2, "not found")
            return contextlib.nullcontext()

        def QueryValueEx(self, key: Any, value: str) -> tuple[str, int]:  # noqa: N802
            return str(self.name), 1

    reg = Winreg()
    monkeypatch.setattr(cpu.sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "winreg", reg)
    assert cpu.cpu_model() == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz" and cpu.cpu_flags() == set()
    reg.name = None
    monkeypatch.setenv("PROCESSOR_IDENTIFIER", "ARMv8 (64-bit) Family 8 Model D4B Revision 0, Qualcomm")
    assert cpu.cpu_model().startswith("ARMv8 (64-bit) Family 8")


def test_bf16_counts_only_where_the_cpu_computes_it() -> None:
    from humanparse.engine.cpu import bf16_native, flags_from_cpuinfo

    assert not bf16_native(flags_from_cpuinfo(GRAVITON2), "aarch64")  # Lambda's arm64
    assert bf16_native(flags_from_cpuinfo(GRAVITON3), "aarch64")
    assert bf16_native({"bf16"}, "arm64")  # Apple silicon M2+
    assert not bf16_native(flags_from_cpuinfo(X86), "x86_64")
    assert bf16_native({"avx2", "avx512_bf16"}, "x86_64") and bf16_native({"amx_bf16"}, "AMD64")


def test_calibration_only_where_a_verdict_can_pay_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from humanparse.engine import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"fp", "asimd"})
    assert cpu.bf16_can_win("x86_64") and cpu.bf16_can_win("AMD64")  # AMX hosts may run the folder
    assert not cpu.bf16_can_win("aarch64")  # Graviton2, Lambda's arm64
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"fp", "asimd", "bf16"})
    assert cpu.bf16_can_win("aarch64") and cpu.bf16_can_win("arm64")  # Graviton3, Apple M2


def test_calibration_is_skipped_where_bf16_cannot_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from humanparse.engine import cpu
    from humanparse.entries.cli import main

    monkeypatch.setattr(cpu, "bf16_can_win", lambda: False)
    assert main(["calibrate", "--model-dir", str(tmp_path)]) == 0  # nothing loaded, nothing written
    assert "calibration skipped" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cpu_count_without_affinity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from humanparse.runtime import cpu_quota

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    assert cpu_quota(tmp_path) == 12


# ------------------------------------------------------------------------------------ lite-only installs
def test_lite_runs_where_torch_is_not_installed(tmp_path: Path) -> None:
    """An Intel Mac installs without torch (no wheel): the lite model parses, an M2FP folder found on the way
    is passed over with a notice, and asking for M2FP says what is missing."""
    site = tmp_path / "no-torch"
    site.mkdir()
    (site / "sitecustomize.py").write_text('import sys\nsys.modules["torch"] = None\n')
    folder = tmp_path / "m2fp"
    folder.mkdir()
    (folder / "configuration.json").write_text("{}")
    (folder / "pytorch_model.pt").write_bytes(b"")
    code = """
        import sys
        from pathlib import Path
        import numpy as np
        from humanparse.engine.loader import ModelSpec, load_parser
        from humanparse.exceptions import ModelError
        from humanparse.models import packaged_lite_dir
        folders = dict(m2fp_dirs=(Path(sys.argv[1]),), lite_dirs=(packaged_lite_dir(),), threads=1)
        loaded = load_parser(ModelSpec(kind="auto", **folders))
        result = loaded.parser.parse(np.full((64, 48, 3), 128, np.uint8))
        print(loaded.notice)
        print(result.label_map.shape)
        try:
            load_parser(ModelSpec(kind="m2fp", **folders))
        except ModelError as exc:
            print(exc)
        print("torch" in sys.modules and sys.modules["torch"] is not None)
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "function"), str(ROOT)])}
    r = _python(code, env, str(folder))
    assert r.returncode == 0, r.stderr.decode()
    notice, shape, error, imported = r.stdout.decode().strip().splitlines()
    assert notice.startswith("serving the LITE model") and "needs PyTorch, which is not installed" in notice
    assert shape == "(64, 48)" and "--model lite" in error and imported == "False"
