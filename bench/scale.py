"""Parse cost against photo size: one CIHP photo at 0.3, 0.8 (1024x768), 3, 12 and 48 MP, lite and M2FP.

    python bench/scale.py [--model-dir DIR] [--engines lite,m2fp] [--sizes 0.3,0.8,3,12,48] [--runs 3]
                          [--rounds 1] [--agreement]

Each (engine, size) runs in a fresh subprocess: bytes in → every output encoded (decode, forward, post-processing,
render + encode, split), medians over --runs after one warm-up, and the process's peak RSS (ru_maxrss, model
load included). Ratios are against 1024x768 in the same run; with ``--rounds N`` every size runs N times in turn
(interleaved: a load that comes and goes hits all sizes) and each size's ratio is paired with the 1024x768 run of
its round (median and range printed; the other numbers are medians over rounds, spread = range of totals). ``--agreement`` also decides every photo pixel
(``full_resolution=True``, the earlier full-resolution result) for M2FP at each size and prints the share of equal pixels and the
lowest per-class IoU. The photos are made in a temp dir (a CIHP photo cropped to 4:3 and resized, JPEG q92), never
kept. ModelScope's pipeline is not run here (bench/speed.py does, at 1024x768; at 12 MP it was killed for
memory at 24 GB). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDES = {0.3: (640, 480), 0.8: (1024, 768), 3: (2000, 1500), 12: (4032, 3024), 48: (8064, 6048)}


def make_photo(dest: Path, wh: tuple[int, int]) -> Path:
    src = ROOT.parent / "shared" / "data" / "cihp" / "images" / "0002190.jpg"
    im = Image.open(src).convert("RGB")
    w, h = im.size
    cw = min(w, h * 4 // 3)
    im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h)).resize(wh, Image.Resampling.BICUBIC).save(dest, quality=92)
    return dest


WORKER = r"""
import json, resource, statistics, sys, time
sys.path.insert(0, sys.argv[1] + "/function")
engine, image, runs, model_dir, agreement = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1"
from humanparse.runtime import configure_threads
configure_threads(2)
from humanparse.pipeline.imageio import decode_image
from humanparse.pipeline.rendering import render_all
if engine == "m2fp":
    from humanparse.engine.m2fp import build_m2fp
    parser = build_m2fp(model_dir, precision="fp32")
else:
    from pathlib import Path
    from humanparse.engine.lite import LiteParser, find_lite_models
    parser = LiteParser(*find_lite_models([Path(sys.argv[1]).parent / "shared" / "models"]), threads=2)
data = open(image, "rb").read()
rows = []
for i in range(runs + 1):
    t0 = time.perf_counter()
    d = decode_image(data)
    t1 = time.perf_counter()
    res = parser.parse(d.rgb)
    t2 = time.perf_counter()
    files = render_all(res, d.rgb)
    t3 = time.perf_counter()
    if i:
        tm = res.timings
        fwd = tm.get("forward", tm.get("inference", 0.0))
        rows.append({"decode": t1 - t0, "forward": fwd, "post": (t2 - t1) - fwd, "render": t3 - t2, "total": t3 - t0})
out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
out["spread"] = max(r["total"] for r in rows) - min(r["total"] for r in rows)
out["shape"] = list(res.label_map.shape)
out["bytes_out"] = sum(len(v) for v in files.values())
if agreement and engine == "m2fp":
    import numpy as np, torch
    from humanparse.engine.m2fp.postprocess import m2fp_postprocess
    from humanparse.engine.m2fp.predictor import preprocess
    x, hw = preprocess(d.rgb)
    cls, masks = parser.forward(x)
    kw = dict(padded_hw=tuple(x.shape[2:]), image_hw=hw, out_hw=d.rgb.shape[:2], num_parsing=20, ins_score_thr=0.3)
    a = m2fp_postprocess(cls, masks, full_resolution=True, **kw).label_map
    b = m2fp_postprocess(cls, masks, **kw).label_map
    ious = [((a == c) & (b == c)).sum() / ((a == c) | (b == c)).sum() for c in np.unique(a) if (a == c).sum() > 1000]
    out["agreement"] = float((a == b).mean())
    out["min_class_iou"] = float(min(ious))
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
print(json.dumps(out))
"""


def run_one(engine: str, image: Path, runs: int, model_dir: Path, agreement: bool) -> dict[str, float]:
    p = subprocess.run([sys.executable, "-c", WORKER, str(ROOT), engine, str(image), str(runs), str(model_dir),
                        "1" if agreement else "0"], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"rc {p.returncode}"}  # type: ignore[dict-item]
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _combine(rows: list[dict[str, float]]) -> dict[str, float]:
    """Several rounds of one size: the median of each number (the first error, if any round failed)."""
    errors = [r for r in rows if "error" in r]
    if errors:
        return errors[0]
    out = {k: statistics.median(r[k] for r in rows) if isinstance(rows[0][k], float) else rows[0][k] for k in rows[0]}
    if len(rows) > 1:
        out["spread"] = max(r["total"] for r in rows) - min(r["total"] for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--engines", default="lite,m2fp")
    ap.add_argument("--sizes", default="0.3,0.8,3,12,48")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="repeat every size this many times, interleaved")
    ap.add_argument("--agreement", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "function"))
    model_dir = a.model_dir
    if model_dir is None and "m2fp" in a.engines:
        from _common import model_folder

        model_dir = model_folder(None)
    sizes = [float(s) if "." in s else int(s) for s in a.sizes.split(",")]
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos = {s: make_photo(Path(tmp) / f"{s}mp.jpg", SIDES[s]) for s in sizes}
        for engine in a.engines.split(","):
            rounds: dict[float, list[dict[str, float]]] = {s: [] for s in sizes}
            for rnd in range(a.rounds):  # each round runs every size once: load hits all sizes alike
                for s in sizes:
                    r = run_one(engine, photos[s], a.runs, model_dir or ROOT, a.agreement)
                    rounds[s].append(r)
                    print(engine, f"{s} MP", f"round {rnd + 1}/{a.rounds}" if a.rounds > 1 else "",
                          {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
            results[engine] = {str(s): _combine(rs) for s, rs in rounds.items()}
            if 0.8 in rounds and all("total" in r for rs in rounds.values() for r in rs):
                for s, rs in rounds.items():
                    # paired per round: each size against the 1024x768 run of the same round
                    ratios = sorted(r["total"] / b["total"] for r, b in zip(rs, rounds[0.8], strict=True))
                    out = results[engine][str(s)]
                    out["ratio_vs_1024x768"] = statistics.median(ratios)
                    out["ratio_range"] = [ratios[0], ratios[-1]]  # type: ignore[assignment]
                    print(engine, f"{s} MP: {out['total']:.2f} s = {out['ratio_vs_1024x768']:.2f}x 1024x768"
                          + (f" (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})" if a.rounds > 1 else ""), flush=True)
    print(json.dumps({"median_of": a.runs, "rounds": a.rounds, "results": results}))


if __name__ == "__main__":
    main()
