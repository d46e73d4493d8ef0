"""What the result cache saves on the local runner: time from drop to result, hit vs miss, for the
page's path (POST /uploads with the file's SHA-256 → presigned POST → `done`; a hit skips the upload) and for a
file put straight into the bucket with an S3 client (→ `done` seen through GET /jobs?key=). Lite model, one
running deployment, the four kinds interleaved round by round. A miss gets new bytes each time (the same
pixels re-encoded with a different JPEG comment, so the parse costs the same); a hit re-sends bytes parsed before.

    python bench/cache.py [--rounds 8] [--image PATH]

Prints median and p25–p75 per kind and the miss/hit ratio of medians; last line: JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from _common import free_port, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def variant(image: Path, i: int) -> bytes:
    """The same pixels, different bytes (a JPEG comment)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(image).convert("RGB").save(buf, "JPEG", quality=92, comment=f"bench {i}".encode())
    return buf.getvalue()


def wait_done(url: str) -> dict[str, Any]:
    while True:
        r = requests.get(url, timeout=30)
        if r.status_code == 200 and r.json()["status"] in ("done", "failed"):
            doc: dict[str, Any] = r.json()
            assert doc["status"] == "done", doc
            return doc
        time.sleep(0.01)


def page_path(base: str, data: bytes) -> tuple[float, bool]:
    """POST /uploads with the hash; upload only if the answer is not cached; until `done` is seen."""
    t = time.perf_counter()
    sha = hashlib.sha256(data).hexdigest()
    up = requests.post(base + "/uploads", json={"content_type": "image/jpeg", "sha256": sha}, timeout=30).json()
    if not up.get("cached"):
        r = requests.post(up["upload"]["url"], data=up["upload"]["fields"],
                          files={"file": ("p.jpg", data, "image/jpeg")}, timeout=30)
        r.raise_for_status()
    doc = wait_done(f"{base}/jobs/{up['job_id']}")
    return time.perf_counter() - t, bool(doc.get("cached"))


def drop_path(base: str, s3: Any, bucket: str, key: str, data: bytes) -> tuple[float, bool]:
    """put_object with any S3 client, until GET /jobs?key= says `done`."""
    t = time.perf_counter()
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
    doc = wait_done(f"{base}/jobs?key={quote(key, safe='')}")
    return time.perf_counter() - t, bool(doc.get("cached"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "cihp" / "images" / "0026375.jpg"))
    args = ap.parse_args()

    from humanparse.config import Settings
    from humanparse.engine.loader import load_parser
    from humanparse.local.deployment import DeploymentOptions, LocalDeployment
    from humanparse.local.s3local import LocalAws
    from humanparse.runtime import configure_threads

    image = Path(args.image)
    settings = Settings(model_kind="lite")
    parser = load_parser(settings, threads=configure_threads(settings.threads)).parser
    times: dict[str, list[float]] = {k: [] for k in ("page_miss", "page_hit", "drop_miss", "drop_hit")}
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        opts = DeploymentOptions(data_dir=Path(d) / "data", frontend_dir=ROOT / "frontend", port=free_port())
        with LocalDeployment(settings, parser, opts) as dep:
            base = opts.origin + "/api"
            assert dep.settings.s3_endpoint_url
            s3 = LocalAws(dep.settings.s3_endpoint_url, "us-east-1").client("s3")
            seen = variant(image, -1)
            page_path(base, seen)  # warm-up, and the bytes every hit re-sends
            for i in range(args.rounds):
                kinds = ["page_miss", "page_hit", "drop_miss", "drop_hit"]
                for kind in kinds if i % 2 == 0 else kinds[::-1]:
                    data = variant(image, i * 10 + kinds.index(kind)) if kind.endswith("miss") else seen
                    if kind.startswith("page"):
                        took, cached = page_path(base, data)
                    else:
                        took, cached = drop_path(base, s3, settings.upload_bucket, f"uploads/bench/{kind} {i}.jpg",
                                                 data)
                    assert cached == kind.endswith("hit"), (kind, cached)
                    times[kind].append(took)
    out = {k: summary(v) for k, v in times.items()}
    for path in ("page", "drop"):
        miss, hit = out[f"{path}_miss"], out[f"{path}_hit"]
        print(f"{path:4s}  miss {miss['median_ms']:7.1f} ms [{miss['p25_ms']}–{miss['p75_ms']}]   "
              f"hit {hit['median_ms']:7.1f} ms [{hit['p25_ms']}–{hit['p75_ms']}]   "
              f"miss/hit {miss['median_ms'] / hit['median_ms']:.1f}  (n={hit['n']})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
