"""Peak memory of the local runner against concurrent form uploads to its embedded S3 (docs/memory-and-limits.md).

Starts ``local_runner.py serve`` (lite model) in a subprocess, then for each concurrency N sends N permitted
uploads of ``--mb`` MB at once (presigned POSTs from ``POST /api/uploads``, bodies generated while sent), waits for
their jobs to end, and prints the runner's peak RSS over its RSS before the round (``VmHWM`` after a reset through
``/proc/<pid>/clear_refs``; Linux only). Then the same with N unsigned forms with no policy (refused).

    python bench/upload_memory.py --mb 64 --concurrency 1 4 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
BLOCK = os.urandom(MB)


def _rss(pid: int, field: str) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _post(url: str, fields: dict[str, str], size: int) -> int:
    boundary = uuid.uuid4().hex
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.mp4"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for i in range(0, size, MB):
            yield BLOCK[:min(MB, size - i)]
        yield tail

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    conn.request("POST", u.path or "/", body=body(), headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail))})
    status = conn.getresponse().status
    conn.close()
    return status


def _round(base: str, pid: int, s3: str, n: int, size: int, permitted: bool) -> dict[str, object]:
    jobs: list[str] = []
    statuses: dict[int, int] = {}
    if permitted:
        answers = [requests.post(base + "/api/uploads", json={"content_type": "video/mp4"}, timeout=30).json()
                   for _ in range(n)]
        targets = [(a["upload"]["url"], a["upload"]["fields"]) for a in answers]
        jobs = [a["job_id"] for a in answers]
    else:
        targets = [(f"{s3}/humanparse-uploads", {"key": f"uploads/x{i}/c.mp4"}) for i in range(n)]
    time.sleep(1.0)
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _rss(pid, "VmRSS")
    threads = [threading.Thread(target=lambda i=i, u=u, f=f: statuses.__setitem__(i, _post(u, f, size)))
               for i, (u, f) in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, job in enumerate(jobs):
        while statuses[i] < 300 and requests.get(f"{base}/api/jobs/{job}", timeout=30).json()["status"] not in ("done", "failed"):
            time.sleep(0.3)
    return {"concurrent": n, "mb_each": size // MB, "permitted": permitted, "statuses": sorted(statuses.values()),
            "rss_before_mb": round(before), "peak_over_mb": round(_rss(pid, "VmHWM") - before, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = 18000 + os.getpid() % 1000
        log = Path(tmp) / "runner.log"
        proc = subprocess.Popen([sys.executable, str(ROOT / "local_runner.py"), "serve", "--port", str(port),
                                 "--data-dir", str(Path(tmp) / "data")], stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            while not re.search(r"embedded S3 at (\S+) ", log.read_text()):
                time.sleep(0.3)
            s3 = re.search(r"embedded S3 at (\S+) ", log.read_text()).group(1)  # type: ignore[union-attr]
            while requests.get(base + "/api/healthz", timeout=5).status_code != 200:
                time.sleep(0.3)
            for permitted in (True, False):
                for n in args.concurrency:
                    print(json.dumps(_round(base, proc.pid, s3, n, args.mb * MB, permitted)), flush=True)
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
