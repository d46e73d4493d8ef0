"""One entry in a fresh process — the HTTP app answering ``POST /parse``, or the S3 upload trigger — for
bench/e2e.py, timed stage by stage.

argv: engine (m2fp | lite) model_dir s3_endpoint upload_bucket results_bucket photo threads [code_dir [entry
[head]]] (``code_dir``: the ``function`` folder whose package runs: bench/e2e.py's ``--baseline-rev`` hands an
older revision's; ``entry``: ``api`` (default) or ``trigger``; ``head``: M2FP's answer, ``random`` (default) or
``lite-shaped``, ``lite_shaped_head``). Prints ``ready``, then for each ``run`` line on stdin sends the photo
(fresh bytes: a JPEG comment holding a counter, so the pixels are the same and the result cache misses) and
prints one JSON line: the wall time and each stage's exclusive seconds. ``api``: posted to the app
in-process (Starlette's TestClient: the ASGI app as uvicorn or Mangum drive it, no socket), bytes in → answer out.
``trigger``: stored in the upload bucket first (not timed), then its S3 notification (``tests/events/``'s
presigned-POST event, bucket, key, ETag and size filled in) handed to ``S3Trigger.handle_event``, as the Lambda
handler does: event in → every result file and ``status.json`` (``done``) stored; ``receive`` is then reading
the upload from S3 and ``answer`` writing the results and status. ``done`` prints the process's peak RSS (model
load included) and ends it.

The stages are the app's own functions wrapped here (bench only, the app is unchanged): a stage's time
excludes the stages called inside it, so they add up to the wall time less ``other`` (routing, the gate, the
test client)."""

from __future__ import annotations

import functools
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))

STAGES: dict[str, float] = {}
_local = threading.local()  # .stack: [start, time spent in nested stages] per open stage of this thread


def timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its exclusive time added to ``STAGES[stage]``, from the thread handling the request (one request
    at a time). Calls on ``render_all``'s helper thread (named ``render…``) are not counted: that lane runs beside
    the request thread's ``render`` stage, whose wall time already holds it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("render"):
            return fn(*args, **kwargs)
        stack = _local.__dict__.setdefault("stack", [])
        stack.append([time.perf_counter(), 0.0])
        try:
            return fn(*args, **kwargs)
        finally:
            start, nested = stack.pop()
            spent = time.perf_counter() - start
            STAGES[stage] = STAGES.get(stage, 0.0) + spent - nested
            if stack:
                stack[-1][1] += spent

    return wrapper


def timed_async(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            STAGES[stage] = STAGES.get(stage, 0.0) + time.perf_counter() - t

    return wrapper


def instrument(entry: str = "api") -> None:
    """Wrap the stages where the route, the job runner (``trigger``) and the use case look them up."""
    from humanparse.entries.api.routes import parse as route
    from humanparse.pipeline import rendering, tryon_files, usecase

    route.read_image = timed_async("receive", route.read_image)
    route._cached_files = timed("cache", route._cached_files)
    if hasattr(route, "_keep"):
        route._keep = timed("cache", route._keep)
    else:  # storing the result moved into the job runner (``parse_now`` keeps it as a done job)
        from humanparse.jobs import runner

        for cls in vars(runner).values():
            if isinstance(cls, type) and cls.__module__ == runner.__name__ and "keep" in vars(cls):
                cls.keep = timed("cache", cls.keep)  # type: ignore[attr-defined]
    route._job_files = timed("extras", route._job_files)  # keypoints (pose network), ATR / LIP maps
    route._answer = timed("answer", route._answer)
    from humanparse.jobs import runner as jobs_runner

    if entry == "trigger" and hasattr(jobs_runner, "tryon_job_files"):  # fetch, cache look-up, extras, results
        jobs_runner.tryon_job_files = timed("extras", jobs_runner.tryon_job_files)
        jobs_runner.JobRunner._fetch = timed("receive", jobs_runner.JobRunner._fetch)  # type: ignore[method-assign]
        jobs_runner.JobRunner.publish = timed("answer", jobs_runner.JobRunner.publish)  # type: ignore[method-assign]
        jobs_runner.ResultCache.reuse = timed("cache", jobs_runner.ResultCache.reuse)  # type: ignore[method-assign]
    usecase.decode_image = timed("decode", usecase.decode_image)
    usecase.render_all = timed("render", usecase.render_all)
    for mod in (rendering, tryon_files):
        if hasattr(mod, "png_bytes"):
            mod.png_bytes = timed("encode", mod.png_bytes)  # type: ignore[attr-defined]
    rendering.jpeg_bytes = timed("encode", rendering.jpeg_bytes)
    for name in ("encode_outputs", "encode_all"):  # a parallel encode step, where the code has one
        if hasattr(rendering, name):
            setattr(rendering, name, timed("encode", getattr(rendering, name)))


def fresh(data: bytes, n: int) -> bytes:
    """The JPEG with a COM segment after SOI holding ``n``: same pixels, new bytes (a cache miss)."""
    body = f"bench round {n}".encode()
    return data[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]


def main() -> None:
    engine, model_dir, endpoint, up, out, photo, threads = sys.argv[1:8]
    if len(sys.argv) > 8:
        sys.path.insert(0, sys.argv[8])
    entry = sys.argv[9] if len(sys.argv) > 9 else "api"
    head = sys.argv[10] if len(sys.argv) > 10 else "random"
    from humanparse.runtime import configure_threads

    configure_threads(int(threads))
    from humanparse.config import Settings
    from humanparse.engine.loader import load_parser

    settings = Settings(model_kind=engine, model_dir=Path(model_dir) if engine == "m2fp" else None,
                        upload_bucket=up, results_bucket=out, s3_endpoint_url=endpoint, region="us-east-1",
                        threads=int(threads))
    parser = load_parser(settings).parser
    if engine == "m2fp" and head == "lite-shaped":
        lite_shaped_head(parser, Path(photo), int(threads))
    instrument(entry)
    split_parse(parser)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",  # the embedded S3's own credentials
                      aws_access_key_id=os.environ["E2E_AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=os.environ["E2E_AWS_SECRET_ACCESS_KEY"],
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    send = (api_sender if entry == "api" else trigger_sender)(settings, parser, s3)
    data = Path(photo).read_bytes()
    n = 0
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        n += 1
        body = fresh(data, n)
        STAGES.clear()
        try:
            wall, bytes_out, size = send(body, n)
        except RuntimeError as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
            continue
        print(json.dumps({"wall": wall, "stages": dict(STAGES), "bytes_in": len(body), "bytes_out": bytes_out,
                          "size": size}), flush=True)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


Sender = Callable[[bytes, int], tuple[float, int, list[Any]]]


def api_sender(settings: Any, parser: Any, s3: Any) -> Sender:
    """``POST /parse`` of the bytes: (wall s, answer bytes, [width, height])."""
    from fastapi.testclient import TestClient
    from humanparse.entries.api import create_app

    client = TestClient(create_app(settings, parser, s3))

    def send(body: bytes, n: int) -> tuple[float, int, list[Any]]:
        t0 = time.perf_counter()
        r = client.post("/parse", content=body, headers={"content-type": "image/jpeg"})
        wall = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.text[:300]}")
        assert r.headers["x-humanparse-cache"] == "miss", "the round's bytes hit the cache"
        doc = r.json()
        return wall, len(r.content), [doc.get("width"), doc.get("height")]

    return send


def trigger_sender(settings: Any, parser: Any, s3: Any) -> Sender:
    """The bytes uploaded (not timed), then their S3 notification through the trigger: (wall s, bytes stored, [width,
    height] from the job's status)."""
    import copy

    from humanparse.entries.trigger import S3Trigger

    trigger = S3Trigger(parser, s3, settings)
    event = json.loads((ROOT / "tests" / "events" / "s3-post-presigned.json").read_text())

    def send(body: bytes, n: int) -> tuple[float, int, list[Any]]:
        job = f"{n:032x}"
        key = f"{settings.upload_prefix}{job}/image.jpg"
        etag = s3.put_object(Bucket=settings.upload_bucket, Key=key, Body=body,
                             ContentType="image/jpeg")["ETag"].strip('"')
        ev = copy.deepcopy(event)
        ev["Records"][0]["s3"]["bucket"]["name"] = settings.upload_bucket
        ev["Records"][0]["s3"]["object"].update(key=key, eTag=etag, size=len(body))
        t0 = time.perf_counter()
        outcome = trigger.handle_event(ev)["records"][0]
        wall = time.perf_counter() - t0
        if outcome["status"] != "done":
            raise RuntimeError(f"job {job}: {outcome}")
        status = json.loads(s3.get_object(Bucket=settings.results_bucket,
                                           Key=f"results/{job}/status.json")["Body"].read())
        if status.get("cached"):
            raise RuntimeError("the round's bytes hit the cache")
        listed = s3.list_objects_v2(Bucket=settings.results_bucket, Prefix=f"results/{job}/")["Contents"]
        return wall, sum(o["Size"] for o in listed), [status.get("width"), status.get("height")]

    return send


def lite_shaped_head(parser: Any, photo: Path, threads: int) -> None:
    """The M2FP network still runs on every request (its time is the forward stage), but what it answers is
    replaced by an answer shaped like a trained head's, made once from the lite tier's parse of the same photo
    at the network's working size: per person one Human query and one query per part it has, each with its
    region as mask logits (+8 inside, -8 outside, in between along edges, at the network's 1/4 resolution), class
    probability ~1, and two more per region as a trained head's near-duplicates are: dilated by two cells at
    probability 0.6 (it pastes), eroded by one at 0.4 (scored, does not paste); for a Human 0.25 and 0.15
    (scored, below the person threshold: one person stays one). The random-weight head instead answers ~100
    candidates, each with a mask over the whole image, which no trained head does: with this answer
    post-processing, the label edges and the extras cost what a trained head's outputs would make them cost (in
    shape; no trained weights are at hand)."""
    install_shaped_head(parser, lite_regions(photo, threads))


def lite_regions(photo: Path, threads: int) -> dict[str, Any]:
    """The lite tier's parse of ``photo`` at M2FP's working size, as regions for ``install_shaped_head``:
    ``labels`` (n,) int (-1: a person, the Human class), ``masks`` (n, nh, nw) bool (npz-ready)."""
    import numpy as np
    from humanparse.config import Settings
    from humanparse.engine.loader import load_parser
    from humanparse.engine.m2fp.predictor import preprocess_shape
    from PIL import Image

    rgb = np.asarray(Image.open(photo).convert("RGB"))
    nh, nw = preprocess_shape(*rgb.shape[:2])
    small = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BILINEAR))
    lite = load_parser(Settings(model_kind="lite", threads=threads)).parser.parse(small)
    labels, masks = [], []
    for k in (int(i) for i in np.unique(lite.person_map) if i):
        own = lite.person_map == k
        labels.append(-1)
        masks.append(own)
        for c in (int(c) for c in np.unique(lite.label_map[own]) if c):
            labels.append(c)
            masks.append(own & (lite.label_map == c))
    return {"labels": np.asarray(labels, dtype=np.int64), "masks": np.stack(masks)}


def install_shaped_head(parser: Any, regions: dict[str, Any]) -> None:
    """``parser.forward`` (an M2FP parser's) runs the network, then answers the shaped answer of ``regions``
    (``lite_regions``) instead of the network's."""
    human = parser.cfg.num_parsing  # the Human class's id
    pairs = [(human if int(lab) < 0 else int(lab), m) for lab, m in zip(regions["labels"], regions["masks"], strict=True)]
    hw = tuple(regions["masks"].shape[1:])
    real = parser.forward
    made: list[tuple[Any, Any]] = []

    def forward(x: Any) -> tuple[Any, Any]:
        cls, masks = real(x)  # the real network's work, its answer set aside
        if not made:
            made.append(_shaped_answer(pairs, human, cls.shape, masks.shape, hw))
        return made[0][0].clone(), made[0][1].clone()

    parser.forward = forward


def _shaped_answer(regions: list[tuple[int, Any]], human: int, cls_shape: Any, mask_shape: Any,
                   hw: tuple[int, int]) -> tuple[Any, Any]:
    """(class logits (Q, C+1), mask logits (Q, h4, w4)) for ``lite_shaped_head``: unused queries say no-object."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    q_n, c_n = cls_shape
    _, h4, w4 = mask_shape
    cls = torch.full((q_n, c_n), -10.0)
    cls[:, -1] = 10.0
    masks = torch.full((q_n, h4, w4), -10.0)
    q = 0
    for label, region in regions:
        canvas = torch.zeros((h4 * 4, w4 * 4))
        canvas[: hw[0], : hw[1]] = torch.from_numpy(region.astype(np.float32))
        frac = F.avg_pool2d(canvas[None, None], 4)[0, 0]  # share of each cell inside the region
        grown = F.max_pool2d(frac[None, None], 5, 1, 2)[0, 0]
        shrunk = -F.max_pool2d(-frac[None, None], 3, 1, 1)[0, 0]
        dup = (0.25, 0.15) if label == human else (0.6, 0.4)  # class probabilities of the near-duplicates
        for share, logit in ((frac, 10.0), (grown, float(np.log(dup[0] / (1 - dup[0])))),
                             (shrunk, float(np.log(dup[1] / (1 - dup[1]))))):
            if q == q_n:
                break
            cls[q] = -10.0
            cls[q, label], cls[q, -1] = logit, 0.0
            masks[q] = 8.0 * (2.0 * share - 1.0)
            q += 1
    return cls, masks


def split_parse(parser: Any) -> None:
    """``parser.parse`` timed as the stages ``resize`` (the photo to the network's input), ``forward`` and
    ``post`` (masks to labels and people at the photo's size), from the engine's own timings: M2FP's
    preprocess / forward / postprocess, lite's inference (resize included) / fusion."""
    parse = parser.parse

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        res = parse(*args, **kwargs)
        total = time.perf_counter() - t
        tm = res.timings
        fwd = float(tm.get("forward", tm.get("inference", 0.0)))
        pre = float(tm.get("preprocess", 0.0))
        for k, v in (("resize", pre), ("forward", fwd), ("post", total - pre - fwd)):
            STAGES[k] = STAGES.get(k, 0.0) + v
        stack = _local.__dict__.get("stack")
        if stack:
            stack[-1][1] += total
        return res

    parser.parse = wrapped


if __name__ == "__main__":
    main()
