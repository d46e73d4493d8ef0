"""``local_runner.py`` as a user runs it: a subprocess on free ports, uploads through the presigned POST it
returns, results fetched over HTTP. Also a 50-upload burst (none lost, memory bounded) and persistence."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import requests
from conftest import PEOPLE_PHOTO
from PIL import Image
from runner import Runner


def upload(base: str, data: bytes, ctype: str = "image/jpeg", name: str = "p.jpg") -> str:
    up = requests.post(base + "/api/uploads", json={"content_type": ctype, "filename": name}, timeout=30).json()
    r = requests.post(up["upload"]["url"], data=up["upload"]["fields"], files={"file": (name, data, ctype)}, timeout=60)
    assert r.status_code in (200, 204), r.text
    assert up["status_url"] == f"/api/jobs/{up['job_id']}"  # usable as given against the runner's one port
    return str(up["job_id"])


def wait(base: str, job: str, timeout: float = 300) -> dict:  # type: ignore[type-arg]
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = requests.get(f"{base}/api/jobs/{job}", timeout=30).json()
        if j["status"] in ("done", "failed"):
            return j  # type: ignore[no-any-return]
        time.sleep(0.25)
    raise TimeoutError(job)


class PeakRss:
    """Samples the RSS of a process and its children in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *a: object) -> None:
        self._stop.set()
        self._t.join()


def test_end_to_end_and_restart(tmp_path: Path, shared_models: Path) -> None:
    data_dir = tmp_path / "data"
    r = Runner(data_dir).start()
    try:
        photo = PEOPLE_PHOTO
        job = upload(r.base, photo.read_bytes())
        j = wait(r.base, job)
        assert j["status"] == "done", j
        png = requests.get(j["results"]["color.png"], timeout=30)
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        color = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB"))
        rgb = Image.open(photo)
        assert color.shape[:2] == (rgb.height, rgb.width)
        # the same label map as the Python API gives for this photo with the same (lite) model
        label = np.asarray(Image.open(io.BytesIO(requests.get(j["results"]["label.png"], timeout=30).content)))
        import humanparse

        assert np.array_equal(label, humanparse.load(model="lite", threads=1)(photo).labels)
        assert 0.05 < (label > 0).mean() < 0.9  # a person found, not the whole frame
    finally:
        assert r.stop() == 0
    assert "stopped cleanly" in r.log()
    # results survive a restart from the same data folder
    r2 = Runner(data_dir).start()
    try:
        j2 = requests.get(f"{r2.base}/api/jobs/{job}", timeout=30).json()
        assert j2["status"] == "done"
        assert requests.get(j2["results"]["label.png"], timeout=30).status_code == 200
        assert "1 objects restored" not in r2.log() and "restored" in r2.log()
    finally:
        r2.stop()


def test_burst_of_50_uploads(tmp_path: Path, shared_models: Path, people_photos: list[Path]) -> None:
    r = Runner(tmp_path / "data", workers=1).start()
    photos = [p.read_bytes() for p in people_photos]
    try:
        with PeakRss(r.proc.pid) as mem:  # type: ignore[union-attr]
            with ThreadPoolExecutor(max_workers=10) as pool:
                jobs = list(pool.map(lambda i: upload(r.base, photos[i % len(photos)], name=f"{i}.jpg"), range(50)))
            t0 = time.time()
            results = [wait(r.base, j, timeout=600) for j in jobs]
            elapsed = time.time() - t0
        assert len(set(jobs)) == 50
        assert [x["status"] for x in results] == ["done"] * 50
        peak_mb = mem.peak / 2**20
        print(f"\nburst: 50 uploads done in {elapsed:.1f}s after the last upload; peak RSS {peak_mb:.0f} MB")
        (tmp_path / "burst.json").write_text(json.dumps({"peak_rss_mb": peak_mb, "seconds": elapsed}))
        assert peak_mb < 2500  # one parse at a time: memory does not grow with the backlog
    finally:
        r.stop()


def test_bad_upload_through_runner(tmp_path: Path, shared_models: Path) -> None:
    r = Runner(tmp_path / "data").start()
    try:
        j = wait(r.base, upload(r.base, b"definitely not a jpeg"))
        assert j["status"] == "failed" and j["error"] == "not_an_image" and j["detail"]
        assert requests.get(r.base + "/api/healthz", timeout=10).status_code == 200  # still serving
    finally:
        r.stop()


def test_load_200_requests_20_clients(tmp_path: Path, shared_models: Path, people_photos: list[Path]) -> None:
    """Bounded burst on loopback: only intended back-pressure (503 busy on /parse), memory bounded."""
    import random

    r = Runner(tmp_path / "data").start()
    small = people_photos[3].read_bytes()
    done_job = upload(r.base, small)
    wait(r.base, done_job)
    rnd = random.Random(0)
    plan = (["health"] * 60 + ["config"] * 20 + ["upload"] * 40 + ["job"] * 50 + ["missing"] * 10
            + ["parse"] * 20)
    rnd.shuffle(plan)
    assert len(plan) == 200

    def one(kind: str) -> tuple[str, int]:
        s = requests.Session()
        if kind == "health":
            return kind, s.get(r.base + "/api/healthz", timeout=60).status_code
        if kind == "config":
            return kind, s.get(r.base + "/api/config", timeout=60).status_code
        if kind == "upload":
            return kind, s.post(r.base + "/api/uploads", json={"content_type": "image/png"}, timeout=60).status_code
        if kind == "job":
            return kind, s.get(f"{r.base}/api/jobs/{done_job}", timeout=60).status_code
        if kind == "missing":
            return kind, s.get(r.base + "/api/jobs/" + "f" * 32, timeout=60).status_code
        return kind, s.post(r.base + "/api/parse", data=small, headers={"content-type": "image/jpeg"},
                            timeout=120).status_code

    try:
        with PeakRss(r.proc.pid) as mem:  # type: ignore[union-attr]
            t0 = time.time()
            with ThreadPoolExecutor(max_workers=20) as pool:
                results = list(pool.map(one, plan))
            elapsed = time.time() - t0
        allowed = {"health": {200}, "config": {200}, "upload": {201}, "job": {200}, "missing": {404},
                   "parse": {200, 503}}
        bad = [(k, c) for k, c in results if c not in allowed[k]]
        assert not bad, bad
        parsed = sum(1 for k, c in results if k == "parse" and c == 200)
        busy = sum(1 for k, c in results if k == "parse" and c == 503)
        assert parsed >= 1 and parsed + busy == 20
        print(f"\nload: 200 requests / 20 clients in {elapsed:.1f}s; /parse {parsed} ok + {busy} busy (503); "
              f"peak RSS {mem.peak / 2**20:.0f} MB")
        assert mem.peak / 2**20 < 2500
        assert requests.get(r.base + "/api/healthz", timeout=10).status_code == 200
    finally:
        r.stop()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from conftest import ROOT

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, str(ROOT / "local_runner.py"), "serve", "--port", str(port),
                            "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot listen" in r.stderr and "--port" in r.stderr
