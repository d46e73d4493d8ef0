"""What a job's try-on files add to the job's parse, as a ratio (lite model, the use case every entry runs).

Each round: ``usecase.parse_image`` on the photo's bytes (decode, parse, render — the render now includes the
outfit summary in result.json), then on that very result (a) the files every job stores besides the parse:
``keypoints.json``, ``atr.png``, ``lip.png`` ("job"); (b) those plus every person's mask, agnostic image and
agnostic parse for all four categories, as ``job_tryon_masks`` stores them ("job+masks"); and (c) the outfit alone
(already inside the parse's render; timed apart to say what it costs). Ratios are (parse + extra) / parse per
round; medians with p25–p75. Last line: JSON.

    python bench/tryon_jobs.py [--rounds 11] [--image PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[1], q[0], q[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "cihp" / "images" / "0012008.jpg"))
    args = ap.parse_args()

    import humanparse
    from humanparse.config import Settings
    from humanparse.entries.library import Parsed
    from humanparse.pipeline.outfit import outfit
    from humanparse.pipeline.tryon_files import extra_files, job_extras

    data = Path(args.image).read_bytes()
    hp = humanparse.load("lite")
    plain, masks = job_extras(Settings()), job_extras(Settings(job_tryon_masks=True))
    times: dict[str, list[float]] = {"parse": [], "job": [], "job+masks": [], "outfit": []}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        out = humanparse.pipeline.usecase.parse_image(data, hp.parser, hp.options)
        times["parse"].append(time.perf_counter() - t0)
        for name, extras in (("job", plain), ("job+masks", masks)):
            parsed = Parsed.from_output(out)  # fresh caches: keypoints matched again
            t0 = time.perf_counter()
            files = extra_files(parsed, extras)
            times[name].append(time.perf_counter() - t0)
            sizes[name] = sum(len(b) for b in files.values())
        assert out.rgb is not None
        t0 = time.perf_counter()
        outfit(out.rgb, out.labels, out.persons, len(out.result.persons))
        times["outfit"].append(time.perf_counter() - t0)
    report: dict[str, Any] = {"image": Path(args.image).name, "width": out.result.width, "height": out.result.height,
                              "persons": len(out.result.persons), "rounds": args.rounds}
    print(f"image {report['image']} {report['width']}x{report['height']}, {report['persons']} people, "
          f"{args.rounds} rounds (lite)")
    for name, xs in times.items():
        med, lo, hi = quartiles([1000 * x for x in xs])
        line = f"{name:10s} {med:7.1f} ms [{lo:.1f}-{hi:.1f}]"
        report[f"{name}_ms"] = round(med, 1)
        if name != "parse":
            r = quartiles([(p + x) / p for p, x in zip(times["parse"], xs, strict=True)])
            line += f"   ratio {r[0]:.3f} [{r[1]:.3f}-{r[2]:.3f}]"
            report[f"{name}_ratio"] = round(r[0], 3)
        if name in sizes:
            line += f"   {sizes[name] / 1e3:.0f} kB"
            report[f"{name}_kb"] = round(sizes[name] / 1e3)
        print(line)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
