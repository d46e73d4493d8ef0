"""Speed of our M2FP paths against ModelScope's eager pipeline, same image, same machine, one run.

    python bench/speed.py [--model-dir DIR] [--image IMG] [--runs 5] [--threads 1,2]

Measured image in → label map out (decode excluded for all): ModelScope = its pipeline preprocess, model
forward and model post-processing (reference venv, bench/setup_parity_env.sh); ours = ``parser.parse``.
Paths: ``portable`` = fp32 fast path (any x86-64 CPU), ``fast`` = bf16 autocast fast path (needs AVX512-BF16
or AMX to be fast), ``eager`` = our reference arithmetic. Each of ours runs in a fresh process (cold start and
peak RSS are its own) beside a fresh ModelScope process, the two parsing in turn (interleaved: load from
other work on a shared CPU hits both alike). Medians over --runs after one warm-up each. Agreement = share of pixels whose label equals
ModelScope's; per-class IoU against ModelScope's label map. ``--threads 1,2``: a sweep in the same run, one
block per thread count (ModelScope, then each of our paths, at that count); every row names the fast path's
kernel choices (``engine/m2fp/autotune.py``), measured at the worker's load into a cache dir fresh for this run,
so each thread count's first cold start includes the measurement. Last line: JSON (the first thread count's
figures at top level, all of them under ``sweep``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def bench_image(dest: Path) -> Path:
    """A 4:3 1024x768 photo (→ the pipeline's 864x640 canvas): a CIHP photo cropped to 4:3 and resized."""
    src = ROOT.parent / "shared" / "data" / "cihp" / "images" / "0002190.jpg"
    im = Image.open(src).convert("RGB")
    w, h = im.size
    cw = min(w, h * 4 // 3)
    im = im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h)).resize((1024, 768), Image.Resampling.BICUBIC)
    im.save(dest, quality=95)
    return dest


def ious(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    from humanparse.pipeline.labels import CIHP_LABELS

    out = {}
    for c in np.union1d(np.unique(ref), np.unique(got)):
        a, b = ref == c, got == c
        out[CIHP_LABELS[int(c)]] = round(float((a & b).sum() / max(1, (a | b).sum())), 5)
    return out


class Server:
    """A parser process that parses the bench image once per ``run()`` (``serve`` mode of the worker scripts)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self._expect("ready")

    def _expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.proc.args!r} ended before printing {word!r}")
            if word in line or not word:
                return line

    def run(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self._expect(""))

    def finish(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        if self.proc.wait() != 0:
            raise RuntimeError(f"{self.proc.args!r} failed")
        return out


def interleaved(args: argparse.Namespace, model_dir: Path, image: Path, tmp: Path, mode: str, threads: int,
                kernel_cache: Path) -> tuple[float, dict[str, Any], dict[str, np.ndarray]]:
    """ModelScope and one of our paths alive side by side, parsing in turn (who goes first alternates), one
    warm-up each then ``--runs`` timed: a burst of other load on a shared CPU hits both alike. Started one after
    the other, so our cold start is measured alone. Returns ModelScope's median, our worker's row, its npz."""
    ref_npz, out = tmp / f"ref{threads}.npz", tmp / f"{mode}{threads}.npy"
    ms = Server([str(args.venv / "bin" / "python"), str(ROOT / "bench" / "_modelscope_ref.py"), "serve",
                 str(model_dir), str(image), str(ref_npz), str(threads), args.modelscope_malloc])
    prec = {"portable": "fp32", "fast": "bf16", "eager": "eager"}[mode]
    us = Server([sys.executable, str(ROOT / "bench" / "_speed_worker.py"), str(model_dir), str(image), str(out), prec,
                 str(args.runs), str(threads), str(kernel_cache), "serve"])
    ms_times = []
    for i in range(args.runs + 1):
        pair = (ms, us) if i % 2 == 0 else (us, ms)
        for server in pair:
            t = server.run()
            if server is ms and i:
                ms_times.append(t)
    row: dict[str, Any] = json.loads(us.finish().strip().splitlines()[-1])
    ms.finish()
    return float(np.median(ms_times)), row, dict(np.load(ref_npz))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", default="2", help="comma list of thread counts, e.g. 1,2 (a sweep, same run)")
    ap.add_argument("--venv", type=Path, default=ROOT / ".cache" / "parity-venv")
    ap.add_argument("--paths", default="portable,fast", help="comma list of portable, fast, eager")
    ap.add_argument("--modelscope-malloc", choices=("default", "kept"), default="default",
                    help="kept: ModelScope's process gets our allocator setting too (runtime.keep_freed_memory), "
                         "so the ratio shows the model code alone")
    args = ap.parse_args()
    from _common import prepare

    model_dir = prepare(args.venv, args.model_dir)
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    modes = [m.strip() for m in args.paths.split(",") if m.strip()]
    sweep = []
    with tempfile.TemporaryDirectory() as tmp:
        image = args.image or bench_image(Path(tmp) / "bench.jpg")
        kernel_cache = Path(tmp) / "kernels"
        for threads in thread_counts:
            results, baselines = {}, []
            for mode in modes:
                baseline, row, ref = interleaved(args, model_dir, image, Path(tmp), mode, threads, kernel_cache)
                baselines.append(baseline)
                print(json.dumps({"threads": threads, "path": "modelscope-eager-fp32", "median_s": round(baseline, 3),
                                  "interleaved_with": mode}))
                lab = np.load(Path(tmp) / f"{mode}{threads}.npy")
                row["agreement"] = round(float((lab == ref["label_map"]).mean()), 6)
                row["per_class_iou"] = ious(ref["label_map"], lab)
                row["speedup"] = round(baseline / row["median_s"], 2)
                results[mode] = row
                print(json.dumps({"threads": threads, "path": mode,
                                  **{k: row[k] for k in ("precision", "median_s", "speedup", "agreement",
                                                         "cold_start_s", "peak_rss_mb", "timings", "kernels",
                                                         "kernels_reason")},
                                  "per_class_iou": row["per_class_iou"]}))
            sweep.append(summarise(threads, float(np.median(baselines)), results))
            print(json.dumps(sweep[-1]))
    print(json.dumps({**sweep[0], "sweep": sweep}))
    return 0


def summarise(threads: int, baseline: float, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fast = results.get("fast", results.get("portable"))
    port = results.get("portable", fast)
    assert fast is not None and port is not None
    return {"threads": threads, "baseline_s": round(baseline, 3), "fast_s": round(fast["median_s"], 3),
            "speedup": fast["speedup"], "portable_s": round(port["median_s"], 3),
            "portable_speedup": port["speedup"], "agreement": fast["agreement"],
            "portable_agreement": port["agreement"],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results.values()), 1),
            "cold_start_s": round(max(r["cold_start_s"] for r in results.values()), 2),
            "fast_precision": fast["precision"], "portable_kernels": port["kernels"]}


if __name__ == "__main__":
    raise SystemExit(main())
