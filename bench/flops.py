"""How fast M2FP *could* run in fp32 on this CPU: dense FLOPs per stage against the machine's measured peak.

    python bench/flops.py [--model-dir DIR] [--height 640 --width 864]

Counts the multiply-adds of one forward (torch's FlopCounterMode on our reference arithmetic, same model as
ModelScope's) by stage, then measures this machine's best fp32 rates in the same process: a 3x3 convolution
(the backbone's and pixel decoder's shape) and a linear layer of the pixel decoder's shape (nn.Linear and the
fast path's OneDnnLinear; the better one counts). The lower bound
is FLOPs / rate per stage; deformable-attention sampling and post-processing come on top. Compare it with
``baseline_s / 6`` from bench/speed.py to see whether 6x is reachable in fp32 here. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def best_rate(fn: Callable[[], object], flops: float, runs: int = 5) -> float:
    """Best of ``runs`` timings → GFLOP/s."""
    fn()
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def main() -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--height", type=int, default=640)
    ap.add_argument("--width", type=int, default=864)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from _common import model_folder
    from humanparse.engine.m2fp import build_m2fp

    model_dir = model_folder(args.model_dir)  # FLOPs do not depend on the weights

    parser = build_m2fp(model_dir, fast=False)
    x = torch.randn(1, 3, args.height, args.width)
    counter = FlopCounterMode(display=False, depth=3)
    with torch.no_grad(), counter:
        parser.forward(x)
    counts = counter.get_flop_counts()
    stages = {
        "backbone": "M2FPNet.backbone",
        "pixel_decoder": "M2FPNet.sem_seg_head.pixel_decoder",
        "transformer_decoder": "M2FPNet.sem_seg_head.predictor",
    }
    gflop = {k: sum(counts.get(v, {}).values()) / 1e9 for k, v in stages.items()}
    conv_ops = {k: sum(n for op, n in counts.get(v, {}).items() if "convolution" in str(op)) / 1e9
                for k, v in stages.items()}

    conv = torch.nn.Conv2d(256, 256, 3, padding=1).eval().to(memory_format=torch.channels_last)
    xi = torch.randn(1, 256, args.height // 4, args.width // 4).to(memory_format=torch.channels_last)
    from humanparse.engine.m2fp.modeling import OneDnnLinear

    lin = torch.nn.Linear(256, 1024).eval()
    lin_onednn = OneDnnLinear(lin)  # what the fast path runs
    tokens = torch.randn(args.height * args.width // 64, 256)
    lin_flops = 2.0 * tokens.shape[0] * 256 * 1024
    with torch.no_grad():
        conv_rate = best_rate(lambda: conv(xi), 2.0 * xi.shape[2] * xi.shape[3] * 256 * 256 * 9)
        mkl_rate = best_rate(lambda: lin(tokens), lin_flops, runs=10)
        gemm_rate = max(mkl_rate, best_rate(lambda: lin_onednn(tokens), lin_flops, runs=10))
    floor = {k: conv_ops[k] / conv_rate + (gflop[k] - conv_ops[k]) / gemm_rate for k in stages}
    print(f"{'stage':22s} {'GFLOP':>8s} {'conv':>8s} {'floor s':>8s}")
    for k in stages:
        print(f"{k:22s} {gflop[k]:8.1f} {conv_ops[k]:8.1f} {floor[k]:8.3f}")
    print(f"best fp32 rates here: 3x3 conv {conv_rate:.0f} GFLOP/s, linear {gemm_rate:.0f} GFLOP/s "
          f"(nn.Linear via MKL: {mkl_rate:.0f}; {args.threads} threads)")
    at_peak = sum(gflop.values()) / max(conv_rate, gemm_rate)
    print(f"all of it at the best rate: {at_peak:.3f} s")
    print(json.dumps({"gflop": round(sum(gflop.values()), 1), "conv_gflops_per_s": round(conv_rate),
                      "linear_gflops_per_s": round(gemm_rate),
                      "mkl_linear_gflops_per_s": round(mkl_rate), "fp32_floor_s": round(sum(floor.values()), 3),
                      "fp32_floor_at_best_rate_s": round(at_peak, 3),
                      "canvas": [args.height, args.width]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
