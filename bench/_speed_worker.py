"""One of our paths in a fresh process: cold start, median parse time, peak RSS, label map (bench/speed.py).

argv: model_dir image out.npy mode runs threads [kernel_cache_dir [serve]]. ``serve``: print ``ready``, then one
parse per ``run`` line on stdin (its seconds printed), so bench/speed.py can interleave it with ModelScope's;
``done`` ends it (the first run is the warm-up)."""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def main() -> None:
    model_dir, image, out, mode, runs, threads = sys.argv[1:7]
    kernel_cache = sys.argv[7] if len(sys.argv) > 7 else None
    serving = len(sys.argv) > 8 and sys.argv[8] == "serve"
    import numpy as np
    from humanparse.runtime import configure_threads

    configure_threads(int(threads))  # the process set-up every entry uses (threads, allocator)
    from humanparse.engine.m2fp import build_m2fp
    from humanparse.pipeline.imageio import decode_image

    if mode == "eager":
        parser = build_m2fp(model_dir, fast=False)
    else:
        parser = build_m2fp(model_dir, fast=True, precision=mode, kernel_cache_dir=kernel_cache)
    cold = time.perf_counter() - T_START  # process start → model ready (imports included)
    rgb = decode_image(open(image, "rb").read()).rgb
    times, res = [], None
    if serving:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            t = time.perf_counter()
            res = parser.parse(rgb)
            times.append(time.perf_counter() - t)
            print(times[-1], flush=True)
        times = times[1:]  # the first was the warm-up
    else:
        parser.parse(rgb)  # warm-up
        for _ in range(int(runs)):
            t = time.perf_counter()
            res = parser.parse(rgb)  # image in (decoded RGB) → label map out
            times.append(time.perf_counter() - t)
    assert res is not None
    np.save(out, res.label_map)
    print(json.dumps({"mode": mode, "precision": getattr(parser, "precision", "fp32"), "median_s": statistics.median(times),
                      "times": times, "cold_start_s": cold, "timings": res.timings,
                      "kernels": parser.info.kernels, "kernels_reason": parser.info.kernels_reason,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
