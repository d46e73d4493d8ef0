"""Speed of our M2FP paths against ModelScope's eager pipeline, same image, same machine, one run.

    python bench/speed.py [--model-dir DIR] [--image IMG] [--runs 5] [--threads 1,2] [--isa native,avx2]
                          [--baseline-rev REV]

Measured image in → label map out (decode excluded for all): ModelScope = its pipeline preprocess, model
forward and model post-processing (reference venv, bench/setup_parity_env.sh); ours = ``parser.parse``.
Paths: ``portable`` = fp32 fast path (any x86-64 CPU), ``fast`` = bf16 autocast fast path (needs AVX512-BF16
or AMX to be fast), ``eager`` = our reference arithmetic. Each of ours runs in a fresh process (cold start and
peak RSS are its own) beside a fresh ModelScope process, the two parsing in turn (interleaved: load from
other work on a shared CPU hits both alike). Medians over --runs after one warm-up each. Agreement = share of pixels whose label equals
ModelScope's; per-class IoU against ModelScope's label map. ``--threads 1,2``: a sweep in the same run, one
block per thread count (ModelScope, then each of our paths, at that count); every row names the fast path's
kernel choices (``engine/m2fp/autotune.py``), measured at the worker's load into a cache dir fresh for this run,
so each thread count's first cold start includes the measurement. ``--isa avx2``: every process of the block
(ModelScope's and ours) runs with torch's kernels, oneDNN, MKL and FBGEMM held to AVX2 (environment variables,
each checked: torch's capability and oneDNN's ISA are printed per block), to show an AVX2-only CPU's figures on
an AVX-512 one; ``--isa native,avx2`` runs both blocks. Ratios are also paired: ModelScope's time over ours in
each round (median and range printed), so a burst of load shows as spread, not as a shifted ratio.
``--baseline-rev REV``: our code as it was at that git revision (``function/`` and the worker, exported to a temp
dir) runs in the same rounds, a third process; give it ``--runs 3`` (or 6): the order rotates by one a round, so
only a multiple of 3 rounds puts each process in each place (right after ModelScope's parse, or not) equally
often. Last line: JSON (the first block's figures at top level, all of
them under ``sweep``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
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

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, **(env or {})})
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


# An AVX2-only CPU on an AVX-512 one: each library's own switch (torch's kernels, oneDNN, MKL, FBGEMM).
ISA_ENV: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"},
}
_ISA_PROBE = ("import torch; x = torch.ones(1, 64, 32, 32).contiguous(memory_format=torch.channels_last); "
              "torch.nn.functional.conv2d(x, torch.ones(64, 64, 3, 3)); "
              "print('capability', torch.backends.cpu.get_cpu_capability())")


def isa_check(python: str, env: dict[str, str]) -> dict[str, str]:
    """What a process started with ``env`` really runs: torch's kernel capability and oneDNN's ISA."""
    out = subprocess.run([python, "-c", _ISA_PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env, "ONEDNN_VERBOSE": "1"}).stdout
    found = {"torch": "?", "onednn": "?"}
    for line in out.splitlines():
        if line.startswith("capability"):
            found["torch"] = line.split()[1]
        elif ",isa:" in line:
            found["onednn"] = line.split(",isa:")[1].strip()
    return found


def export_revision(rev: str, dest: Path) -> Path:
    """``function/`` and the speed worker as they were at git revision ``rev``, under ``dest``."""
    tar = subprocess.run(["git", "archive", rev, "function", "bench/_speed_worker.py"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest / "bench" / "_speed_worker.py"


def interleaved(args: argparse.Namespace, model_dir: Path, image: Path, tmp: Path, mode: str, threads: int,
                isa: str, workers: dict[str, Path]) -> tuple[float, dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """ModelScope and our path (and, with --baseline-rev, our path at that revision) alive side by side, parsing
    in turn (who goes first rotates), one warm-up each then ``--runs`` timed: a burst of other load on a shared
    CPU hits all alike. Started one after the other, so our cold start is measured alone. Returns ModelScope's
    median, our workers' rows (each with its paired ratios to ModelScope), ModelScope's npz."""
    env = ISA_ENV[isa]
    ref_npz = tmp / f"ref{threads}{isa}.npz"
    ms = Server([str(args.venv / "bin" / "python"), str(ROOT / "bench" / "_modelscope_ref.py"), "serve",
                 str(model_dir), str(image), str(ref_npz), str(threads), args.modelscope_malloc], env)
    prec = {"portable": "fp32", "fast": "bf16", "eager": "eager"}[mode]
    ours = {name: Server([sys.executable, str(worker), str(model_dir), str(image), str(tmp / f"{name}{threads}{isa}.npy"),
                          prec, str(args.runs), str(threads), str(tmp / f"kernels-{isa}-{name}"), "serve"], env)
            for name, worker in workers.items()}
    servers: list[tuple[str, Server]] = [("modelscope", ms), *ours.items()]
    times: dict[str, list[float]] = {name: [] for name, _ in servers}
    for i in range(args.runs + 1):
        for name, server in servers[i % len(servers):] + servers[:i % len(servers)]:
            t = server.run()
            if i:
                times[name].append(t)
    rows: dict[str, dict[str, Any]] = {}
    for name, server in ours.items():
        rows[name] = json.loads(server.finish().strip().splitlines()[-1])
        ratios = [a / b for a, b in zip(times["modelscope"], times[name], strict=True)]
        rows[name]["paired_speedup"] = {"median": round(statistics.median(ratios), 2),
                                        "min": round(min(ratios), 2), "max": round(max(ratios), 2)}
        rows[name]["label_map"] = np.load(tmp / f"{name}{threads}{isa}.npy")
    ms.finish()
    return float(np.median(times["modelscope"])), rows, dict(np.load(ref_npz))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", default="2", help="comma list of thread counts, e.g. 1,2 (a sweep, same run)")
    ap.add_argument("--isa", default="native", help="comma list of native, avx2 (AVX2 emulated: see above)")
    ap.add_argument("--baseline-rev", default=None, help="also run our code as it was at this git revision")
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
        workers = {"ours": ROOT / "bench" / "_speed_worker.py"}
        if args.baseline_rev:
            workers[f"at {args.baseline_rev}"] = export_revision(args.baseline_rev, Path(tmp) / "baseline")
        for isa in [i.strip() for i in args.isa.split(",") if i.strip()]:
            checked = {"modelscope": isa_check(str(args.venv / "bin" / "python"), ISA_ENV[isa]),
                       "ours": isa_check(sys.executable, ISA_ENV[isa])}
            print(json.dumps({"isa": isa, "env": ISA_ENV[isa], "checked": checked}))
            for threads in thread_counts:
                sweep.append(block(args, model_dir, image, Path(tmp), modes, threads, isa, workers))
                print(json.dumps(sweep[-1]))
    print(json.dumps({**sweep[0], "sweep": sweep}))
    return 0


def block(args: argparse.Namespace, model_dir: Path, image: Path, tmp: Path, modes: list[str], threads: int,
          isa: str, workers: dict[str, Path]) -> dict[str, Any]:
    """Every path at one thread count and ISA: a line per path, then the block's summary."""
    results, baselines = {}, []
    for mode in modes:
        baseline, rows, ref = interleaved(args, model_dir, image, tmp, mode, threads, isa, workers)
        baselines.append(baseline)
        print(json.dumps({"threads": threads, "isa": isa, "path": "modelscope-eager-fp32",
                          "median_s": round(baseline, 3), "interleaved_with": mode}))
        for name, row in rows.items():
            lab = row.pop("label_map")
            row["agreement"] = round(float((lab == ref["label_map"]).mean()), 6)
            row["per_class_iou"] = ious(ref["label_map"], lab)
            row["speedup"] = round(baseline / row["median_s"], 2)
            print(json.dumps({"threads": threads, "isa": isa, "path": mode, "code": name,
                              **{k: row[k] for k in ("precision", "median_s", "speedup", "paired_speedup",
                                                     "agreement", "cold_start_s", "peak_rss_mb", "timings",
                                                     "kernels", "kernels_reason")},
                              "per_class_iou": row["per_class_iou"]}))
        results[mode] = rows["ours"]
        if len(rows) > 1:
            results[f"{mode} {next(n for n in rows if n != 'ours')}"] = next(r for n, r in rows.items() if n != "ours")
    return {"isa": isa, **summarise(threads, float(np.median(baselines)), results)}


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
            "fast_precision": fast["precision"], "portable_kernels": port["kernels"],
            "portable_paired_speedup": port["paired_speedup"],
            **{f"{name}_speedup": r["speedup"] for name, r in results.items() if " at " in name},
            **{f"{name}_paired_speedup": r["paired_speedup"] for name, r in results.items() if " at " in name}}


if __name__ == "__main__":
    raise SystemExit(main())
