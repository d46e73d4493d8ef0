"""What stops our fast path scaling with threads: per-op wall time of one parse at each thread count, one process.

    python bench/scaling.py [--model-dir DIR] [--threads 1,2] [--runs 3]

The parse (bench/speed.py's 1024x768 photo) runs under ``torch.profiler`` at each thread count in turn, rounds
interleaved (1, 2, 1, 2, ...), after a warm-up at each. Per aten op (self time, summed over the parse; medians
over the rounds): its milliseconds at each count and its speed-up from the first count to the last. An op that
takes a large share at the highest count and gains little is what limits scaling (single-threaded kernels,
Python between ops). The ``python (not in ops)`` row is the parse's wall time minus all ops' self time. Last line:
JSON. Run on the machine whose scaling matters (the 16-core device machine: ``--threads 2,6,16``).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "function"), str(ROOT / "bench")]


def profile_parse(parser: Any, rgb: Any) -> tuple[float, dict[str, float]]:
    """One parse under the profiler: wall seconds and self milliseconds per op name."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        parser.parse(rgb)
        wall = time.perf_counter() - t
    ops: dict[str, float] = collections.defaultdict(float)
    for ev in prof.key_averages():
        ops[ev.key] += ev.self_cpu_time_total / 1000.0
    return wall, dict(ops)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    import torch
    from _common import model_folder
    from humanparse.engine.m2fp import build_m2fp
    from humanparse.pipeline.imageio import decode_image
    from humanparse.runtime import configure_threads
    from speed import bench_image

    counts = [int(t) for t in args.threads.split(",")]
    configure_threads(counts[0])
    parser = build_m2fp(model_folder(args.model_dir), precision="fp32", kernels="default")  # one formulation at every count
    with tempfile.TemporaryDirectory() as tmp:
        rgb = decode_image(bench_image(Path(tmp) / "photo.jpg").read_bytes()).rgb
    walls: dict[int, list[float]] = {n: [] for n in counts}
    per_op: dict[int, dict[str, list[float]]] = {n: collections.defaultdict(list) for n in counts}
    for rnd in range(args.runs + 1):
        for n in counts:
            torch.set_num_threads(n)
            wall, ops = profile_parse(parser, rgb)
            if rnd:  # the first round warms each count up
                walls[n].append(wall)
                for k, v in ops.items():
                    per_op[n][k].append(v)
                per_op[n]["python (not in ops)"].append(1000 * wall - sum(ops.values()))
    lo, hi = counts[0], counts[-1]
    med = {n: {k: statistics.median(v) for k, v in per_op[n].items()} for n in counts}
    rows = []
    for k in sorted(med[hi], key=lambda k: -med[hi][k])[: args.top]:
        row = {"op": k, **{f"ms_{n}t": round(med[n].get(k, 0.0), 1) for n in counts}}
        row["speedup"] = round(med[lo].get(k, 0.0) / med[hi][k], 2) if med[hi][k] else None
        row["share_at_max"] = round(med[hi][k] / (1000 * statistics.median(walls[hi])), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    wall_med = {n: round(statistics.median(walls[n]), 3) for n in counts}
    print(json.dumps({"threads": counts, "parse_s_median": wall_med,
                      "parse_speedup": round(wall_med[lo] / wall_med[hi], 2), "ops": rows,
                      "note": "wall under the profiler (adds ~5 %); kernels=default at every count"}))


if __name__ == "__main__":
    main()
