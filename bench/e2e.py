"""What a user waits for: a phone photo through ``POST /parse`` (or the S3 upload trigger) end to end, against
a 1024x768 photo.

    python bench/e2e.py [--engines m2fp,lite] [--sizes 0.8,12] [--rounds 5] [--threads 2] [--model-dir DIR]
                        [--baseline-rev REV] [--entry api|trigger] [--head random|lite-shaped]

``--entry trigger``: each photo is stored in the upload bucket (not timed) and its S3 notification handed to the
trigger as the Lambda handler does; the time is event in → every result file and ``status.json`` stored
(``receive`` = reading the upload, ``answer`` = writing the results; ``bench/_e2e_worker.py``).

Each (engine, size) is its own HTTP app in a fresh process (``bench/_e2e_worker.py``: ``create_app`` with the
real result cache on an embedded S3, the random-weight M2FP folder or the lite tier), all alive together and
posted to in turn (interleaved rounds: load from other work hits every size alike), after one warm-up request
each. Every request sends fresh bytes (the photo with a JPEG comment holding the round: same pixels, a cache
miss). Printed: per round the ratio of each size's wall time to 1024x768's in that round, their median and
range (``--baseline-rev``: the same for that git revision's package, its apps alive beside these and posted to
in the same rounds, and the paired ratio of the two at each size); per size the median of each stage (receive, decode, resize, forward, post, render, encode, extras =
keypoints + ATR/LIP maps, cache = look-up + storing the result, answer, other) and the process's peak RSS.

``--head lite-shaped``: M2FP's network runs as always, but its answer is replaced by one shaped like a trained
head's (made from the lite tier's parse of the photo: one query per person and part with its region as mask, and
near-duplicates; ``bench/_e2e_worker.py``). The random-weight head answers ~100 candidates with masks over the
whole image, so post-processing and everything after it cost far more than a trained head's outputs would make
them cost; neither is a trained model.

Photos are made from the photo the package ships (``calibration/astronaut.jpg``, public domain): cropped to
4:3, brought to the size (bicubic), with sensor-like noise (Gaussian, sigma 4: an enlarged small photo is
unusually smooth) and saved as JPEG q90 (12 MP: ~3 MB, under ``sync_max_bytes``); 48 MP is saved smooth at
q75 to fit the synchronous route's 4 MB body. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
SIDES = {0.8: (1024, 768), 3: (2000, 1500), 12: (4032, 3024), 48: (8064, 6048)}
PHOTO = ROOT / "function" / "humanparse" / "calibration" / "astronaut.jpg"
STAGES = ("receive", "cache", "decode", "resize", "forward", "post", "render", "encode", "extras", "answer", "other")


def make_photo(dest: Path, wh: tuple[int, int]) -> Path:
    im = Image.open(PHOTO).convert("RGB")
    w, h = im.size
    ch = w * 3 // 4
    im = im.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch)).resize(wh, Image.Resampling.BICUBIC)
    if wh[0] * wh[1] > 20e6:
        im.save(dest, quality=75)
        return dest
    arr = np.asarray(im, dtype=np.int16)
    noise = np.random.default_rng(0).normal(0.0, 4.0, arr.shape).round().astype(np.int16)
    Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8)).save(dest, quality=90)
    return dest


def worker_credentials() -> dict[str, str]:
    """The embedded S3's credentials (random per process: only its own clients can sign), for a worker's clients:
    without them every write of the app's (the result it keeps) is refused, and only logged."""
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    return {"E2E_AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "E2E_AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"]}


class App:
    """One worker process (one HTTP app, one photo)."""

    def __init__(self, engine: str, model_dir: Path, endpoint: str, buckets: tuple[str, str], photo: Path,
                 threads: int, code: Path, entry: str = "api", head: str = "random") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_e2e_worker.py"), engine, str(model_dir), endpoint, *buckets,
             str(photo), str(threads), str(code), entry, head], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env={**os.environ, **worker_credentials()})
        self._line("ready")

    def _line(self, word: str = "") -> str:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.proc.args!r} ended early")
            if word in line:
                return line

    def run(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        out: dict[str, Any] = json.loads(self._line("{"))
        if "error" in out:
            raise RuntimeError(out["error"])
        out["stages"]["other"] = out["wall"] - sum(out["stages"].values())
        return out

    def finish(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        rss = float(json.loads(self._line("peak_rss_mb"))["peak_rss_mb"])
        self.proc.wait()
        return rss


def bench_engine(engine: str, sizes: list[float], photos: dict[float, Path], model_dir: Path, endpoint: str,
                 s3: Any, rounds: int, threads: int, codes: dict[str, Path], entry: str = "api",
                 head: str = "random") -> dict[str, Any]:
    """``codes``: variant name → ``function`` folder; every (variant, size) app posted to once per round."""
    apps = {}
    for v, code in codes.items():
        for s in sizes:
            tag = f"{engine}-{v}-{str(s).replace('.', '-')}"
            for b in (f"e2e-up-{tag}", f"e2e-out-{tag}"):
                s3.create_bucket(Bucket=b)
            apps[v, s] = App(engine, model_dir, endpoint, (f"e2e-up-{tag}", f"e2e-out-{tag}"), photos[s], threads,
                             code, entry, head)
    for app in apps.values():
        app.run()  # warm-up: first-call costs (pose network load, allocator growth)
    runs: dict[tuple[str, float], list[dict[str, Any]]] = {k: [] for k in apps}
    for rnd in range(rounds):
        order = list(apps) if rnd % 2 == 0 else list(reversed(apps))
        for k in order:
            runs[k].append(apps[k].run())
        print(engine, f"round {rnd + 1}/{rounds}", {f"{v} {s}": round(runs[v, s][-1]["wall"], 2) for v, s in apps},
              flush=True)
        for v, s in apps:  # the stages of this round too: a run cut short still shows where the time went
            print(f"  {v} {s}:", {k: round(runs[v, s][-1]["stages"].get(k, 0.0), 3) for k in STAGES}, flush=True)
    result: dict[str, Any] = {}
    for v, s in apps:
        ratios = sorted(r["wall"] / b["wall"] for r, b in zip(runs[v, s], runs[v, sizes[0]], strict=True))
        walls = [r["wall"] for r in runs[v, s]]
        row = result.setdefault(v, {})[str(s)] = {
            "wall_s": statistics.median(walls), "wall_range": [min(walls), max(walls)],
            "ratio": statistics.median(ratios), "ratio_range": [ratios[0], ratios[-1]],
            "stages": {k: statistics.median(r["stages"].get(k, 0.0) for r in runs[v, s]) for k in STAGES},
            "size": runs[v, s][0]["size"], "bytes_in": runs[v, s][0]["bytes_in"],
            "bytes_out": runs[v, s][0]["bytes_out"], "peak_rss_mb": apps[v, s].finish()}
        if v != "now":  # paired per round: the baseline's wall over this code's, same size
            sp = sorted(b["wall"] / r["wall"] for r, b in zip(runs["now", s], runs[v, s], strict=True))
            row["speedup_now"] = statistics.median(sp)
            row["speedup_range"] = [sp[0], sp[-1]]
    return result


def print_table(engine: str, result: dict[str, Any]) -> None:
    print(f"\n{engine}: median seconds per stage (rounds interleaved)")
    print(f"{'code':>9} {'size':>5} " + " ".join(f"{k:>7}" for k in STAGES)
          + f" {'wall':>6} {'ratio (range)':>17} {'RSS MB':>6}")
    for v, rows in result.items():
        for s, r in rows.items():
            st = r["stages"]
            sp = f"  now {r['speedup_now']:.2f}x faster ({r['speedup_range'][0]:.2f}-{r['speedup_range'][1]:.2f})" \
                if "speedup_now" in r else ""
            print(f"{v:>9} {s:>5} " + " ".join(f"{st[k]:7.3f}" for k in STAGES) + f" {r['wall_s']:6.2f} "
                  f"{r['ratio']:5.2f} ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}) "
                  f"{r['peak_rss_mb']:6.0f}{sp}")


def checkout(rev: str, dest: Path) -> Path:
    """``rev``'s ``function`` folder, extracted (``git archive``) under ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "function"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "function"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="m2fp,lite")
    ap.add_argument("--sizes", default="0.8,12")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--baseline-rev", help="also run this git revision's package, interleaved")
    ap.add_argument("--entry", choices=("api", "trigger"), default="api",
                    help="POST /parse (api) or an upload's S3 notification through the trigger")
    ap.add_argument("--head", choices=("random", "lite-shaped"), default="random",
                    help="M2FP's answer: the random-weight head's, or one shaped like a trained head's from the "
                         "lite tier's parse of the photo (bench/_e2e_worker.py: lite_shaped_head)")
    a = ap.parse_args()
    sizes = [float(s) if "." in s else int(s) for s in a.sizes.split(",")]
    from humanparse.local.s3local import EmbeddedS3, LocalAws

    sys.path.insert(0, str(ROOT / "bench"))
    from _common import model_folder

    model_dir = model_folder(a.model_dir) if "m2fp" in a.engines else ROOT
    srv = EmbeddedS3()
    srv.start()
    s3 = LocalAws(srv.endpoint, "us-east-1").client("s3")
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            photos = {s: make_photo(Path(tmp) / f"{s}mp.jpg", SIDES[s]) for s in sizes}
            print({s: f"{p.stat().st_size / 1e6:.2f} MB" for s, p in photos.items()}, flush=True)
            codes = {"now": ROOT / "function"}
            if a.baseline_rev:
                codes["baseline"] = checkout(a.baseline_rev, Path(tmp) / "baseline")
            for engine in a.engines.split(","):
                results[engine] = bench_engine(engine, sizes, photos, model_dir, srv.endpoint, s3, a.rounds,
                                               a.threads, codes, a.entry, a.head)
                print_table(engine, results[engine])
    finally:
        srv.stop()
    print(json.dumps({"rounds": a.rounds, "threads": a.threads, "entry": a.entry, "head": a.head,
                      "results": results}))


if __name__ == "__main__":
    main()
