"""Lambda power tuning: latency and cost per 1,000 photos at each memory size, for the request the API function
answers (``POST /parse`` through ``humanparse.handler.http_handler``), M2FP and the lite tier, 1024x768 and 12 MP.

    flock /tmp/bench.lock python bench/powertune.py [--engines m2fp,lite] [--threads 1,2] [--rounds 5]
                                                    [--photos 1024x768,"12 MP"] [--model-dir DIR] [--init shared]
                                                    [--amortise 100] [--basis wall] [--json OUT]
                                                    [--head random|lite-shaped]
    python bench/powertune.py --from-json a.json,b.json   # the tables of split runs (each ≤ 6 min on a busy host)

Lambda gives CPU in proportion to memory: 1 vCPU per 1,769 MB, up to 6 at 10,240 MB, and the function sizes
its thread pool from that (``runtime.configure_threads``; ``HUMANPARSE_THREADS`` here). Each (engine, threads)
is one worker process, pinned to that many cores (``os.sched_setaffinity`` before torch loads) with that many
threads: it imports ``humanparse.handler`` as the Lambda does (init: import + model load, timed; the result cache
off, the kernel verdict shared through moto's S3 as on AWS), then answers API Gateway HTTP API events (payload
2.0, ``tests/events/apigw-v2-post-uploads.json`` turned into ``POST /parse``, default ``output=json``: summary,
label PNG and keypoints; M2FP also runs the lite pose network) with a photo's bytes base64-encoded. The photos:
the tests' people photo (``tests/conftest.py`` ``PEOPLE_PHOTO``) cropped to 4:3, enlarged to 1024x768 and
4032x3024 (12 MP), with sensor-like noise (σ 6) and JPEG q92 (12 MP: 3.0 MB, a phone photo's size, under the
route's 4 MB body limit), fresh bytes every round (noise seeded by round).
Rounds interleave: every worker answers both sizes once per round (orders rotate), so a load that comes and goes
on a shared CPU hits all alike; round 0 is the first request of each worker (reported, not counted).

Per request: wall time of the handler call, the parse's own share (``parser.parse``, decode excluded) and the
peak RSS of that request (``/proc/self/clear_refs`` 5 resets VmHWM before it); per worker the process's peak RSS.
Also the CPU time of the request's own threads (``--basis cpu`` puts it in the table instead of the wall time):
where every session gets a fair share of a busy CPU whatever its nice value, the wall time measures the share.
It is exact at 1 thread; at more, torch's OpenMP team belongs to the thread that ran the parse, and when that
thread ends with the event (Mangum runs a loop per event) the team's CPU is counted too, so it is an upper bound.

The table, per memory size (vCPU = MB / 1,769, threads = ceil(vCPU), as ``cpu_quota`` reads the quota):
- ``measured``: 1,769 MB (1 thread) and 3,538 MB (2 threads), medians over rounds, spread = quartiles;
- ``scaled`` below 1,769 MB: the 1-thread time x 1,769 / MB (a fraction of one vCPU slows every stage alike);
- ``interpolated`` between 1 and 2 vCPU: Amdahl's t = s + p / vCPU through the measured 1- and 2-thread
  times, separately for the parse and the rest of the request (2 threads on a quota under 2 CPUs);
- ``extrapolated`` above 2 vCPU (this machine has fewer cores): the parse by the per-thread scaling of M2FP's
  fast fp32 parse measured on a 16-core AMX Xeon (random weights, 864x640: 4.43 s at 2 threads, 1.92 s at 6; an
  Amdahl fit through those two), the rest of the request by this machine's own 1 -> 2 thread Amdahl fit.
Cost per 1,000 = 1,000 x (GB x billed s x price per GB-s + price per request), billed seconds rounded up to the
ms (Lambda bills per 1 ms), GB = MB / 1,024. ``+ init``: the init (import and model load at that size,
scaled as above) amortised over ``--amortise`` requests per execution environment (container-image functions
are billed for init). arm64 costs assume the x86 duration (no Graviton measured here). A size is ``viable`` when
the largest peak RSS of any worker (12 MP included) is at most 90 % of it; the smallest such size (64 MB steps)
is a row of its own. Prints Markdown tables and a JSON line.

``--head lite-shaped``: M2FP's network runs on every request, but its answer is replaced by one shaped like a
trained head's, built from the lite tier's parse of the 1024x768 photo (``bench/_e2e_worker.lite_regions``, made
in this process so that no worker holds the lite models beside M2FP); the default ``random`` keeps the
random-weight head's ~100 whole-image masks, which make post-processing dearer than a trained head would.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
sys.path.insert(1, str(ROOT / "tests"))

# AWS Lambda list prices, us-east-1, first tier (x86: 6 billion GB-s a month, arm64: 7.5 billion), as given on
# 2026-12-02 (unchanged since arm64's launch in 2021; not re-checked online: no network here)
PRICES_DATE = "2026-12-02"
PRICE_GB_S = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_REQUEST = 0.20 / 1_000_000
MB_PER_VCPU = 1769
MAX_MB = 10240
SIZES_MB = (1024, 1536, 1769, 2048, 3008, 3538, 7076, 10240)
PHOTOS = {"1024x768": (1024, 768), "12 MP": (4032, 3024)}
# M2FP fast fp32 parse, 864x640, random weights, 16-core AMX Xeon: seconds at 2 and 6 threads (0.88 s at 16)
XEON_2, XEON_6 = 4.43, 1.92
HEADROOM = 0.9  # a size holds a request when the process's peak RSS is at most 90 % of it
API_TIMEOUT_S = 30.0  # the HTTP API's integration limit = the template's ApiFunction Timeout
# Both functions share MemorySize, and the video flow's seconds per frame (chunk plans) and its join budget
# were measured on 2 cores: a size under ~1.6 vCPU would let a planned chunk or join overrun Lambda's 900 s.
MIN_VCPU = 1.6


# ------------------------------------------------------------------------------------------------ photos
def photo_bytes(wh: tuple[int, int], seed: int) -> bytes:
    """The tests' people photo, 4:3, enlarged to ``wh`` with noise seeded by ``seed`` (fresh bytes), JPEG q92."""
    import numpy as np
    from conftest import PEOPLE_PHOTO
    from PIL import Image

    im = Image.open(PEOPLE_PHOTO).convert("RGB")
    w, h = im.size
    ch = min(h, w * 3 // 4)
    im = im.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch)).resize(wh, Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).normal(0.0, 6.0, (wh[1], wh[0], 3))
    arr = np.clip(np.asarray(im, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def parse_event(body: bytes) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) ``POST /parse`` event carrying ``body``."""
    e: dict[str, Any] = json.loads((ROOT / "tests" / "events" / "apigw-v2-post-uploads.json").read_text())
    e["rawPath"] = e["requestContext"]["http"]["path"] = "/parse"
    e["routeKey"] = e["requestContext"]["routeKey"] = "POST /parse"
    e["headers"]["content-type"] = "image/jpeg"
    e["headers"]["content-length"] = str(len(body))
    e["body"], e["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    return e


# ------------------------------------------------------------------------------------------------ worker
def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by native id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            f = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) + int(f[12])) / tick
    return out


def worker(threads: int) -> None:
    """One Lambda execution environment on ``threads`` cores: init, then one request per stdin line (a photo
    file), one JSON line per answer on stdout."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    t0 = time.perf_counter()
    from humanparse import handler

    init_s = time.perf_counter() - t0
    init_cpu_s = time.thread_time()  # the main thread loads the model (and leads the kernel measurement's team)
    if os.environ.get("BENCH_SHAPED_HEAD"):  # --head lite-shaped: the network runs, its answer is replaced
        import numpy as np
        from _e2e_worker import install_shaped_head

        with np.load(os.environ["BENCH_SHAPED_HEAD"]) as regions:
            install_shaped_head(handler.parser.loaded.parser, dict(regions))
    parse_s = [0.0, 0.0]
    inner = handler.parser.parse

    def lite_cpu() -> float:  # the lite engine's workers (its caller waits while they run side by side)
        names = {t.native_id: t.name for t in threading.enumerate()}
        return sum(c for tid, c in _thread_cpu().items() if names.get(tid, "").startswith("lite"))

    def timed_parse(rgb: Any, **kw: Any) -> Any:  # the parse's own share of the request (the model's work)
        t, c, lc = time.perf_counter(), time.thread_time(), lite_cpu()  # this thread leads torch's OpenMP team
        try:
            return inner(rgb, **kw)
        finally:
            parse_s[0] += time.perf_counter() - t
            parse_s[1] += time.thread_time() - c + (lite_cpu() - lc) / threads

    handler.parser.parse = timed_parse  # type: ignore[method-assign]
    import torch

    info = handler.parser.info
    print(json.dumps({"init_s": init_s, "init_cpu_s": init_cpu_s, "torch_threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0)),
                      "model": info.kind, "precision": getattr(info, "precision", ""),
                      "kernels": (getattr(info, "kernels_reason", "") or "")[:80]}), flush=True)
    for line in sys.stdin:
        body = Path(line.strip()).read_bytes()
        event = parse_event(body)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: this request's own peak follows
        parse_s[0] = parse_s[1] = 0.0
        python_threads = {t.native_id: t.name for t in threading.enumerate()}
        cpu0, r0 = _thread_cpu(), resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        out = handler.http_handler(event, None)
        wall = time.perf_counter() - t
        cpu1, r1 = _thread_cpu(), resource.getrusage(resource.RUSAGE_SELF)
        python_threads.update({t.native_id: t.name for t in threading.enumerate()})
        # the pool threads (torch's OpenMP team, the lite engine's "lite" workers) live on; the event loop's worker
        # threads that ran the parse may have ended, so theirs is the process's total less the pools'. OpenMP's
        # master is the parse's own thread (its CPU holds its share of each parallel region); the lite engine's
        # caller waits while its workers run side by side, so their CPU counts divided by the thread count
        pool = sum(c - cpu0.get(tid, 0.0) for tid, c in cpu1.items() if tid not in python_threads)
        lite = sum(c - cpu0.get(tid, 0.0) for tid, c in cpu1.items()
                   if python_threads.get(tid, "").startswith("lite"))
        total = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime - pool - lite
        cache = {k.lower(): v for k, v in out.get("headers", {}).items()}.get("x-humanparse-cache")
        print(json.dumps({"status": out["statusCode"], "cache": cache, "wall_s": wall, "parse_s": parse_s[0],
                          "cpu_s": total + lite / threads, "pool_cpu_s": pool + lite,
                          "parse_cpu_s": parse_s[1],
                          "request_peak_mib": _hwm_mib(), "bytes_in": len(body), "bytes_out": len(out["body"]),
                          "process_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
              flush=True)


class Worker:
    """A worker process (``worker``) and its replies."""

    def __init__(self, engine: str, threads: int, env: dict[str, str]) -> None:
        self.engine, self.threads = engine, threads
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(threads)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith('{"init_s"') or line.startswith('{"status"'):  # not a log line
                reply: dict[str, Any] = json.loads(line)
                return reply
        raise RuntimeError(f"{self.engine} worker at {self.threads} threads ended (rc {self.proc.wait()})")

    def ask(self, photo: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{photo}\n")
        self.proc.stdin.flush()
        r = self._reply()
        if r["status"] != 200 or r["cache"] != "miss":
            raise RuntimeError(f"{self.engine} at {self.threads} threads: HTTP {r['status']}, cache {r['cache']}")
        return r

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


# ------------------------------------------------------------------------------------------------ measuring
def worker_env(engine: str, threads: int, endpoint: str, model_dir: Path | None, tmp: Path,
               shaped: Path | None = None) -> dict[str, str]:
    """The template's environment for the function, on the embedded S3, cache off, kernel cache per worker
    (a new execution environment's empty /tmp: the verdict comes from S3 after the first start at a count).
    ``shaped``: the regions (npz) of M2FP's trained-like answer (``--head lite-shaped``)."""
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    env = {k: v for k, v in os.environ.items() if not k.startswith("HUMANPARSE_")}
    cache = Path(tempfile.mkdtemp(dir=tmp))
    env.update({"HUMANPARSE_UPLOAD_BUCKET": "tune-up", "HUMANPARSE_RESULTS_BUCKET": "tune-out",
                "HUMANPARSE_UPLOAD_PREFIX": "uploads/", "HUMANPARSE_RESULTS_PREFIX": "results/",
                "HUMANPARSE_MODEL_KIND": engine, "HUMANPARSE_THREADS": str(threads),
                "HUMANPARSE_CACHE_ENABLED": "false", "HUMANPARSE_MODEL_LOAD": "eager",
                "HUMANPARSE_MODEL_CACHE_DIR": str(cache), "HUMANPARSE_KERNEL_CACHE_DIR": str(cache),
                "HUMANPARSE_MAX_UPLOAD_BYTES": "15728640", "HUMANPARSE_S3_ENDPOINT_URL": endpoint,
                "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
                "PYTHONPATH": str(ROOT / "function")})
    if engine == "m2fp" and model_dir is not None:
        env["HUMANPARSE_MODEL_DIR"] = str(model_dir)
    if engine == "m2fp" and shaped is not None:
        env["BENCH_SHAPED_HEAD"] = str(shaped)
    return env


def shaped_regions(tmp: Path) -> Path:
    """``--head lite-shaped``: the lite tier's regions of the bench photo (1024x768 and 12 MP share M2FP's working
    size), made here once so no worker loads the lite models beside M2FP (its peak RSS stays its own)."""
    import numpy as np
    from _e2e_worker import lite_regions

    photo = tmp / "shaped-source.jpg"
    photo.write_bytes(photo_bytes(PHOTOS["1024x768"], seed=0))
    out = tmp / "shaped-head.npz"
    np.savez(out, **lite_regions(photo, threads=1))
    return out


def measure(args: argparse.Namespace, model_dir: Path | None, tmp: Path) -> dict[str, Any]:
    """Every (engine, threads) worker answers every photo once a round; returns raw replies per worker."""
    from humanparse.local.s3local import EmbeddedS3, LocalAws

    s3srv = EmbeddedS3()
    s3srv.start()
    try:
        s3 = LocalAws(s3srv.endpoint, "us-east-1").client("s3")
        for b in ("tune-up", "tune-out"):
            s3.create_bucket(Bucket=b)
        shaped = shaped_regions(tmp) if args.head == "lite-shaped" and "m2fp" in args.engines else None
        workers = []
        for e in args.engines:
            for n in args.threads:
                w = Worker(e, n, worker_env(e, n, s3srv.endpoint, model_dir, tmp, shaped))
                if args.init == "shared" and "measured" in w.info["kernels"]:  # time a start that shares them
                    w.close()
                    w = Worker(e, n, worker_env(e, n, s3srv.endpoint, model_dir, tmp, shaped))
                workers.append(w)
        raw: dict[str, Any] = {f"{w.engine}/{w.threads}": {"info": w.info, "rounds": []} for w in workers}
        for rnd in range(args.rounds + 1):
            photos = {}
            for name, wh in PHOTOS.items():
                if name not in args.photos:
                    continue
                photos[name] = tmp / f"{name.replace(' ', '')}-{rnd}.jpg"
                photos[name].write_bytes(photo_bytes(wh, seed=rnd))
            order = workers[rnd % len(workers):] + workers[:rnd % len(workers)]
            for w in order:
                names = list(photos) if rnd % 2 == 0 else list(photos)[::-1]
                replies = {n: w.ask(photos[n]) for n in names}
                raw[f"{w.engine}/{w.threads}"]["rounds"].append(replies)
                print(f"round {rnd} {w.engine} {w.threads} thr:",
                      {n: round(r["wall_s"], 2) for n, r in replies.items()}, file=sys.stderr, flush=True)
            for p in photos.values():
                p.unlink()
        for w in workers:
            w.close()
        return raw
    finally:
        s3srv.stop()


# ------------------------------------------------------------------------------------------------ model
def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def amdahl(t1: float, t2: float, v: float) -> float:
    """t = s + p / v through (1, t1) and (2, t2)."""
    p = max(0.0, 2.0 * (t1 - t2))
    return (t1 - p) + p / v


def xeon_ratio(v: float) -> float:
    """The parse's time at ``v`` threads over its time at 2, from the Xeon's 2- and 6-thread figures (Amdahl)."""
    b = (XEON_2 - XEON_6) / (1 / 2 - 1 / 6)
    a = XEON_2 - b / 2
    return (a + b / v) / XEON_2


def latency(m: dict[int, dict[str, float]], mb: int, key: str = "") -> tuple[float, str]:
    """Seconds of a request (``key`` '' = the whole request, or 'init') at ``mb`` from medians ``m[threads]``
    ({'parse', 'rest', 'init'}), and how the figure was had."""
    v = min(6.0, mb / MB_PER_VCPU)
    parts = ("init",) if key == "init" else ("parse", "rest")
    if 1 in m and v <= 1.0:
        return sum(m[1][k] for k in parts) / v, "measured" if mb == MB_PER_VCPU else "scaled"
    if v == 2.0 and 2 in m:
        return sum(m[2][k] for k in parts), "measured"
    if 1 not in m or 2 not in m:
        return math.nan, "not measured"
    if v < 2.0:
        return sum(amdahl(m[1][k], m[2][k], v) for k in parts), "interpolated"
    if key == "init":
        return amdahl(m[1]["init"], m[2]["init"], v), "extrapolated"
    return m[2]["parse"] * xeon_ratio(v) + amdahl(m[1]["rest"], m[2]["rest"], v), "extrapolated"


def cost_per_1000(mb: int, seconds: float, arch: str) -> float:
    billed = math.ceil(seconds * 1000) / 1000
    return 1000 * (mb / 1024 * billed * PRICE_GB_S[arch] + PRICE_REQUEST)


def medians(rounds: list[dict[str, Any]], info: dict[str, Any], basis: str) -> dict[str, dict[str, float]]:
    """Per photo: median seconds of the request (``basis`` wall, or cpu: its Python threads' CPU time), of the
    parse and the rest; quartiles; the wall time; largest request peak RSS."""
    out = {}
    total, part = ("wall_s", "parse_s") if basis == "wall" else ("cpu_s", "parse_cpu_s")
    for name in [n for n in PHOTOS if n in rounds[0]]:
        q1, med, q3 = quartiles([r[name][total] for r in rounds])
        parse = statistics.median(r[name][part] for r in rounds)
        out[name] = {"wall": med, "q1": q1, "q3": q3, "parse": parse, "rest": med - parse,
                     "init": info["init_s" if basis == "wall" else "init_cpu_s"],
                     "wall_s": statistics.median(r[name]["wall_s"] for r in rounds),
                     "pool_cpu_s": statistics.median(r[name]["pool_cpu_s"] for r in rounds),
                     "request_peak_mib": max(r[name]["request_peak_mib"] for r in rounds),
                     "bytes_in": statistics.median(r[name]["bytes_in"] for r in rounds)}
    return out


# ------------------------------------------------------------------------------------------------ table
def peaks(engine: str, raw: dict[str, Any]) -> dict[int, float]:
    """Peak RSS (MiB) of each measured thread count's process over all its requests (12 MP included)."""
    return {int(k.split("/")[1]): max(r[n]["process_peak_mib"] for r in v["rounds"] for n in PHOTOS)
            for k, v in raw.items() if k.startswith(engine + "/")}


def sizes(pk: dict[int, float]) -> list[int]:
    """The table's sizes: ``SIZES_MB``, the smallest that holds the largest peak RSS and the smallest with
    ``MIN_VCPU`` (64 MB steps)."""
    return sorted(set(SIZES_MB) | {min(MAX_MB, math.ceil(max(pk.values()) / HEADROOM / 64) * 64),
                                   math.ceil(MIN_VCPU * MB_PER_VCPU / 64) * 64})


def rows(engine: str, raw: dict[str, Any], amortise: int, basis: str) -> list[dict[str, Any]]:
    """The table's rows for one engine."""
    meds = {int(k.split("/")[1]): medians(v["rounds"][1:], v["info"], basis) for k, v in raw.items()
            if k.startswith(engine + "/")}
    pk = peaks(engine, raw)
    out = []
    for mb in sizes(pk):
        threads = min(6, math.ceil(mb / MB_PER_VCPU))
        row: dict[str, Any] = {"mb": mb, "vcpu": min(6.0, mb / MB_PER_VCPU), "threads": threads,
                               # the largest peak of any worker: it varies from run to run more than by threads
                               "peak_mib": max(pk.values()), "viable": max(pk.values()) <= HEADROOM * mb}
        init, _ = latency({n: m["12 MP"] for n, m in meds.items()}, mb, "init")
        row["init_s"] = init
        for name in PHOTOS:
            t, how = latency({n: m[name] for n, m in meds.items()}, mb)
            row[name] = {"s": t, "how": how, **{a: cost_per_1000(mb, t, a) for a in PRICE_GB_S},
                         "x86_64+init": cost_per_1000(mb, t, "x86_64") + 1000 / amortise * mb / 1024 * init
                         * PRICE_GB_S["x86_64"]}
        row["cold_12mp_s"] = init + row["12 MP"]["s"]
        out.append(row)
    return out


def pick(table: list[dict[str, Any]], max_mb: int) -> dict[str, Any] | None:
    """The aim: least x86 cost per 12 MP photo (init amortised) among sizes that hold the 12 MP request's
    peak RSS, answer it within the API's 30 s even from a cold start, give the video flow ``MIN_VCPU``, and are
    at most ``max_mb``."""
    ok = [r for r in table if r["viable"] and r["cold_12mp_s"] <= API_TIMEOUT_S and r["mb"] <= max_mb
          and r["vcpu"] >= MIN_VCPU]
    return min(ok, key=lambda r: (round(r["12 MP"]["x86_64+init"], 4), r["12 MP"]["s"])) if ok else None


def markdown(engine: str, table: list[dict[str, Any]], amortise: int) -> str:
    head = (f"| MB | vCPU | threads | 1024x768 s | 12 MP s | $/1,000 1024x768 x86 | $/1,000 12 MP x86 | "
            f"12 MP x86 + init/{amortise} | 12 MP arm64* | init s | cold 12 MP s | peak RSS MiB | holds it | figures |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
    lines = []
    for r in table:
        a, b = r["1024x768"], r["12 MP"]
        lines.append(f"| {r['mb']:,} | {r['vcpu']:.2f} | {r['threads']} | {a['s']:.2f} | {b['s']:.2f} | "
                     f"{a['x86_64']:.4f} | {b['x86_64']:.4f} | {b['x86_64+init']:.4f} | {b['arm64']:.4f} | "
                     f"{r['init_s']:.1f} | {r['cold_12mp_s']:.1f} | {r['peak_mib']:,.0f} | {'yes' if r['viable'] else '**no**'} | "
                     f"{b['how']} |")
    return f"**{engine}**\n\n" + head + "\n".join(lines) + "\n"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def report(args: argparse.Namespace, raw: dict[str, Any], load: tuple[float, float]) -> None:
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {load[0]:.2f} before, {load[1]:.2f} after; "
          f"{min(len(v['rounds']) for v in raw.values()) - 1} rounds, medians; prices us-east-1 as of {PRICES_DATE}, billed per 1 ms; "
          f"M2FP's answer: {args.head} head\n")
    result: dict[str, Any] = {"cpu": cpu_name(), "load": load, "head": args.head, "raw": raw,
                              "tables": {}, "picks": {}}
    for engine in args.engines:
        for k, v in raw.items():
            if k.startswith(engine + "/"):
                m = medians(v["rounds"][1:], v["info"], args.basis)
                print(f"{k} threads: " + "; ".join(
                    f"{n} {x['wall']:.2f} s {args.basis} (q {x['q1']:.2f}-{x['q3']:.2f}, parse {x['parse']:.2f}, wall "
                    f"{x['wall_s']:.2f}, pool threads' CPU {x['pool_cpu_s']:.2f}, "
                    f"request peak {x['request_peak_mib']:.0f} MiB, {x['bytes_in'] / 1e6:.1f} MB in)"
                    for n, x in m.items()) + f"; init {next(iter(m.values()))['init']:.1f} s ({v['info']['init_s']:.1f} s wall); first request "
                    + ", ".join(f"{n} {x['wall_s']:.2f} s" for n, x in v["rounds"][0].items()), flush=True)
        if any(n not in v["rounds"][-1] for k, v in raw.items() for n in PHOTOS if k.startswith(engine + "/")):
            continue  # one photo only (a split run): its figures above; the table needs both (--from-json)
        table = rows(engine, raw, args.amortise, args.basis)
        pk = ", ".join(f"{n} thread(s) {p:.0f} MiB" for n, p in sorted(peaks(engine, raw).items()))
        print(f"\n{markdown(engine, table, args.amortise)}\nprocess peak RSS: {pk}")
        new, raised = pick(table, 3008), pick(table, MAX_MB)
        print(f"pick ({engine}): new account (<= 3,008 MB): {new and new['mb']}; any quota: {raised and raised['mb']}\n")
        result["tables"][engine], result["picks"][engine] = table, {"new_account": new and new["mb"],
                                                                   "any": raised and raised["mb"]}
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}, default=str))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))


def merge(raws: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of the same workers with different photos, round by round (the first run's init kept)."""
    out: dict[str, Any] = {}
    for raw in raws:
        for k, v in raw.items():
            if k not in out:
                out[k] = {"info": v["info"], "rounds": [dict(r) for r in v["rounds"]]}
            else:
                for mine, theirs in zip(out[k]["rounds"], v["rounds"], strict=False):
                    mine.update(theirs)
                out[k]["rounds"] = out[k]["rounds"][:len(v["rounds"])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--engines", default="m2fp,lite")
    ap.add_argument("--threads", default="1,2", help="thread counts to measure (this machine's cores at most)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--photos", default=",".join(PHOTOS), help="which photos: 1024x768, 12 MP (a run each on a "
                    "busy machine; --from-json merges them round by round)")
    ap.add_argument("--model-dir", type=Path, default=None, help="M2FP folder (default: random weights)")
    ap.add_argument("--head", choices=("random", "lite-shaped"), default="random", help="M2FP's answer: the "
                    "random-weight head's, or one shaped like a trained head's (bench/e2e.py --head)")
    ap.add_argument("--init", choices=("shared", "any"), default="shared", help="shared: a worker whose start "
                    "measured the kernels is replaced by one that fetches the verdict (as most cold starts do)")
    ap.add_argument("--basis", choices=("cpu", "wall"), default="wall", help="seconds of a request in the table: "
                    "cpu = the CPU time of its Python threads (what it takes on cores of its own; on a shared "
                    "machine the wall time measures the share), wall = wall time")
    ap.add_argument("--amortise", type=int, default=100, help="requests per execution environment for + init")
    ap.add_argument("--json", type=Path, default=None, help="write raw replies and tables here")
    ap.add_argument("--from-json", type=Path, default=None, help="print the tables of an earlier --json run(s), "
                    "comma-separated files merged (e.g. one run per engine)")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return
    args.engines = [e for e in args.engines.split(",") if e]
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.photos = [p.strip() for p in args.photos.split(",") if p.strip() in PHOTOS]
    if args.from_json:
        runs = [json.loads(Path(f).read_text()) for f in str(args.from_json).split(",")]
        heads = {r.get("head", "random") for r in runs}  # what the runs answered with, not this command's default
        if len(heads) > 1:
            raise SystemExit(f"--from-json: runs with different M2FP answers ({', '.join(sorted(heads))}) do not merge")
        args.head = heads.pop()
        report(args, merge([r["raw"] for r in runs]), (max(r["load"][0] for r in runs), max(r["load"][1] for r in runs)))
        return
    model_dir = args.model_dir
    if model_dir is None and "m2fp" in args.engines:
        from _common import model_folder

        model_dir = model_folder(None)
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        raw = measure(args, model_dir, Path(tmp))
    report(args, raw, (before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
