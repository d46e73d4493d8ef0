"""The Lambda module's cold start: a fresh ``python -c "import humanparse.handler"`` (the model loads
at import) under the template's kind of environment, started as the parser function's entrypoint starts it
(``--entry s3_handler``: its init leaves the HTTP stack out; ``handler`` builds both), against moto's S3 server,
four ways interleaved round by round:

- bytecode: ``none`` (an empty PYTHONPYCACHEPREFIX: everything compiled from source, as the image did) or
  ``compiled`` (a prefix filled by the Dockerfile's compileall options, unchecked-hash);
- kernel verdict: ``measured`` (S3 has none: this start measures, then shares it) or ``shared`` (S3 has it:
  fetched into the environment's empty cache, nothing measured).

Each start gets an empty local kernel cache (a new execution environment's /tmp), PYTHONDONTWRITEBYTECODE=1
(read-only image) and the variables of Lambda's that libraries read at import (``LAMBDA_TASK_ROOT``,
``AWS_LAMBDA_FUNCTION_NAME``: X-Ray's Lambda sampler, Powertools' tracer and metrics on, as with the template's
``Tracing: Active``). Prints wall time per process, split into ``init`` (spawn until the module is imported and the
model ready: what Lambda reports as Init Duration) and ``exit`` (interpreter shutdown, which Lambda never waits
for: it freezes or drops the environment), of the import, and of the model load
(``service.load_configured_parser``: S3 fetch, weights, kernel choice, S3 put), median and quartiles. ``--ways``
runs only some of the four (e.g. ``compiled/shared``); ``--baseline DIR`` runs another checkout's Lambda module
too (e.g. ``git worktree add /tmp/base main``), interleaved with this one's in every round. The M2FP folder: ``--model-dir`` (default: the
random-weight folder in ModelScope's layout, which loads and measures exactly like the trained one).

    PYTHONPATH=function python bench/coldstart.py --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, summary

CHILD = """
import json, time
t = time.perf_counter()
from humanparse import handler, observability
print(json.dumps({"import_s": time.perf_counter() - t, "kernels": handler.parser.info.kernels_reason,
                  "model_load_s": (observability._model_load_ms or 0.0) / 1000.0, "ready": time.time()}), flush=True)
"""


def _compile_imported(env: dict[str, str], root: Path, prefix: Path) -> None:
    """Bytecode (the Dockerfile's compileall options) under ``prefix`` for every file one import of the Lambda
    module loads with ``env``."""
    listing = subprocess.run([sys.executable, "-c", CHILD + "import sys; print(json.dumps(sorted({"
                              "m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', "
                              "None) and m.__file__.endswith('.py')})))"],
                             env={**env, "HUMANPARSE_KERNELS": "default"}, check=True,
                             capture_output=True, text=True).stdout.splitlines()[-1]
    files = Path(tempfile.mkstemp(suffix=".json", dir=root)[1])
    files.write_text(listing)
    subprocess.run([sys.executable, "-c", "import compileall, json, py_compile, sys\n"
                    "for f in json.load(open(sys.argv[1])): compileall.compile_file(f, quiet=2, force=True, "
                    "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)",
                    str(files)], env={**env, "PYTHONPYCACHEPREFIX": str(prefix)}, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--ways", default="none/measured,none/shared,compiled/measured,compiled/shared",
                    help="bytecode/verdict pairs to run, comma-separated")
    ap.add_argument("--entry", default="s3_handler", choices=("s3_handler", "http_handler", "handler"),
                    help="the handler the image's entrypoint names (HUMANPARSE_LAMBDA_HANDLER); default: the "
                         "parser function's, whose init loads the model")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout (e.g. a git worktree of main): its Lambda module too, interleaved")
    args = ap.parse_args()
    trees = [("", ROOT / "function")] + ([("baseline: ", args.baseline.resolve() / "function")] if args.baseline else [])
    from humanparse.local.s3local import LOCAL_CREDENTIALS, EmbeddedS3, LocalAws
    from m2fp_random import make_random_m2fp_folder

    s3srv = EmbeddedS3()
    s3srv.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            model_dir = args.model_dir or make_random_m2fp_folder(root / "m2fp")
            s3 = LocalAws(s3srv.endpoint, "us-east-1").client("s3")
            for b in ("bench-up", "bench-out"):
                s3.create_bucket(Bucket=b)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HUMANPARSE_", "PYTHONPYCACHE"))}
            env.update({"HUMANPARSE_UPLOAD_BUCKET": "bench-up", "HUMANPARSE_RESULTS_BUCKET": "bench-out",
                        "HUMANPARSE_MODEL_DIR": str(model_dir), "HUMANPARSE_THREADS": str(args.threads),
                        "HUMANPARSE_LAMBDA_HANDLER": f"humanparse.handler.{args.entry}",
                        "HUMANPARSE_S3_ENDPOINT_URL": s3srv.endpoint, "AWS_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
                        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
                        "PYTHONPATH": str(ROOT / "function"), "PYTHONDONTWRITEBYTECODE": "1",
                        # what Lambda sets that libraries read at import: the X-Ray SDK takes its Lambda sampler
                        # (outside Lambda it builds two X-Ray clients, ~0.1 s), Powertools traces and meters
                        "LAMBDA_TASK_ROOT": str(root), "AWS_LAMBDA_FUNCTION_NAME": "bench-parser"})
            prefixes = {"none": root / "pyc-none", "compiled": root / "pyc-all"}
            for p in prefixes.values():
                p.mkdir()
            # the Dockerfile's options, over everything the handler imports (listed by one import), for each tree
            # (the prefix mirrors absolute paths: both trees' bytecode fit in one)
            for _label, tree in trees:
                _compile_imported({**env, "PYTHONPATH": str(tree)}, root, prefixes["compiled"])
            key = "results/_system/kernels.json"
            verdict: bytes | None = None
            results: dict[str, dict[str, list[float]]] = {}
            reasons: dict[str, set[str]] = {}
            for rnd in range(args.rounds + 1):  # round 0: warms the page cache, fills the verdict; not counted
                for (bc, prefix), (label, tree) in itertools.product(prefixes.items(), trees):
                    for mode in [m for m in ("measured", "shared") if f"{bc}/{m}" in args.ways.split(",")]:
                        if mode == "measured":
                            s3.delete_object(Bucket="bench-out", Key=key)
                        elif verdict is not None:
                            s3.put_object(Bucket="bench-out", Key=key, Body=verdict)
                        cache = Path(tempfile.mkdtemp(dir=root))
                        t, spawned = time.perf_counter(), time.time()
                        r = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True, text=True,
                                           env={**env, "PYTHONPYCACHEPREFIX": str(prefix), "PYTHONPATH": str(tree),
                                                "HUMANPARSE_KERNEL_CACHE_DIR": str(cache)})
                        wall, ended = time.perf_counter() - t, time.time()
                        out = json.loads(r.stdout.splitlines()[-1])
                        if mode == "measured" and verdict is None:  # a noisy measurement is not shared
                            try:
                                verdict = s3.get_object(Bucket="bench-out", Key=key)["Body"].read()
                            except s3.exceptions.NoSuchKey:
                                pass
                        if rnd:
                            name = f"{label}bytecode {bc}, verdict {mode}"
                            results.setdefault(name, {"process_s": [], "init_s": [], "exit_s": [], "import_s": [],
                                                      "model_load_s": []})
                            results[name]["process_s"].append(wall)
                            results[name]["init_s"].append(out["ready"] - spawned)
                            results[name]["exit_s"].append(ended - out["ready"])
                            results[name]["import_s"].append(out["import_s"])
                            results[name]["model_load_s"].append(out["model_load_s"])
                            reasons.setdefault(name, set()).add(out["kernels"].split(" (")[0][:60])
            print(json.dumps({"threads": args.threads, "entry": args.entry, "model_dir": str(model_dir),
                              "results": {n: {k: summary(v) for k, v in d.items()} | {"kernels": sorted(reasons[n])}
                                          for n, d in results.items()}}, indent=1))
    finally:
        s3srv.stop()


if __name__ == "__main__":
    main()
