"""What durability costs the local runner: upload latency (presigned POST → 2xx) and job latency (POST → `done`
seen by polling) with fsync on (the product) and off (the same writes, only not forced to the disk),
interleaved on one running deployment, lite model.

    python bench/durability.py [--uploads 30] [--jobs 8] [--data-dir DIR]

Prints median and p25–p75 per mode and the ratio of medians; last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from _common import free_port, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def upload(base: str, data: bytes) -> tuple[str, float]:
    up = requests.post(base + "/uploads", json={"content_type": "image/jpeg"}, timeout=30).json()
    t = time.perf_counter()
    r = requests.post(up["upload"]["url"], data=up["upload"]["fields"], files={"file": ("p.jpg", data, "image/jpeg")},
                      timeout=30)
    r.raise_for_status()
    return str(up["job_id"]), time.perf_counter() - t


def job_latency(base: str, data: bytes) -> float:
    t = time.perf_counter()
    job, _ = upload(base, data)
    while requests.get(f"{base}/jobs/{job}", timeout=30).json()["status"] == "pending":
        time.sleep(0.01)
    return time.perf_counter() - t


def store_put(store: Any, data: bytes, n: int, results: dict[str, dict[str, list[float]]]) -> None:
    """The disk write alone: one record of the photo's size, as the embedded S3 writes it."""
    from humanparse.local.durable import Record

    for i in range(n):
        for mode in ("fsync", "no_fsync") if i % 2 == 0 else ("no_fsync", "fsync"):
            store.fsync = mode == "fsync"
            t = time.perf_counter()
            store.put(Record("bench", f"k{i}-{mode}", data, "etag"))
            results[mode]["store_put"].append(time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--data-dir", help="default: a temporary folder under the current directory's disk")
    ap.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "cihp" / "images" / "0026375.jpg"))
    args = ap.parse_args()

    from humanparse.config import Settings
    from humanparse.engine.loader import load_parser
    from humanparse.local.deployment import DeploymentOptions, LocalDeployment
    from humanparse.runtime import configure_threads

    data = Path(args.image).read_bytes()
    settings = Settings(model_kind="lite")
    parser = load_parser(settings, threads=configure_threads(settings.threads)).parser
    with tempfile.TemporaryDirectory(dir=args.data_dir or ROOT) as d:
        opts = DeploymentOptions(data_dir=Path(d) / "data", frontend_dir=ROOT / "frontend", port=free_port(),
                                 drain_timeout=5)  # queued parses of the upload trials are left
        with LocalDeployment(settings, parser, opts) as dep:
            base = opts.origin + "/api"
            results: dict[str, dict[str, list[float]]] = {m: {"store_put": [], "upload": [], "job": []}
                                                   for m in ("fsync", "no_fsync")}
            job_latency(base, data)  # warm-up
            # jobs first (each waits for its own parse), then uploads with the workers stopped (their
            # parses would share the CPU with the uploads being timed)
            for kind, n in (("job", args.jobs), ("upload", args.uploads)):
                if kind == "upload" and dep.worker is not None:
                    dep.worker.stop(60)
                for i in range(n):
                    for mode in ("fsync", "no_fsync") if i % 2 == 0 else ("no_fsync", "fsync"):
                        dep.store.fsync = mode == "fsync"
                        t = job_latency(base, data) if kind == "job" else upload(base, data)[1]
                        results[mode][kind].append(t)
            store_put(dep.store, data, args.uploads, results)
    out = {m: {k: summary(v) for k, v in r.items()} for m, r in results.items()}
    for kind in ("store_put", "upload", "job"):
        a, b = out["fsync"][kind], out["no_fsync"][kind]
        print(f"{kind:9s}  fsync {a['median_ms']:7.1f} ms [{a['p25_ms']}–{a['p75_ms']}]   "
              f"no fsync {b['median_ms']:7.1f} ms [{b['p25_ms']}–{b['p75_ms']}]   "
              f"ratio {a['median_ms'] / b['median_ms']:.2f}  (n={a['n']})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
