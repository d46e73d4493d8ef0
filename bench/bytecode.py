"""``import torch`` (or other modules) in a fresh process with and without bytecode (the Lambda image's cold start).

Lambda's filesystem is read-only and the image sets PYTHONDONTWRITEBYTECODE=1: a module without a ``.pyc`` in the
image is compiled from source at every cold start and the result thrown away. Simulated here with
PYTHONPYCACHEPREFIX (Python then looks for bytecode only under that folder):

- ``none``: an empty prefix — everything compiled from source, the standard library too;
- ``stdlib only``: the prefix holds the standard library's bytecode only (a base image that ships it, our
  site-packages without);
- ``all``: the prefix holds every module ``import torch`` loads, compiled by the Dockerfile's own call
  (``compileall`` with ``--invalidation-mode unchecked-hash``).

The three run interleaved, round by round, each a fresh ``python -c "import torch"``; wall time per process,
median and quartiles.

    PYTHONPATH=function python bench/bytecode.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from _common import summary

# compileall's own function with the Dockerfile's options, run in a child whose pycache prefix is the target
COMPILE = """
import compileall, json, py_compile, sys
files = json.load(open(sys.argv[1]))
ok = all(compileall.compile_file(f, quiet=2, force=True,
                                 invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH) for f in files)
sys.exit(0 if ok else 1)
"""
LIST = "import json, sys; import {}; print(json.dumps(sorted({{m.__file__ for m in list(sys.modules.values()) " \
       "if getattr(m, '__file__', None) and m.__file__.endswith('.py')}})))"


def _env(prefix: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": "1"}


def _compile_into(prefix: Path, files: list[str]) -> None:
    listing = prefix.parent / f"{prefix.name}.json"
    listing.write_text(json.dumps(files))
    subprocess.run([sys.executable, "-c", COMPILE, str(listing)], check=True,
                   env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--modules", default="torch",
                    help="what each process imports (comma-separated; e.g. torch,boto3,fastapi,mangum)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = json.loads(subprocess.run([sys.executable, "-c", LIST.format(args.modules)], check=True, capture_output=True,
                                          text=True, env=_env(root / "scratch")).stdout)
        stdlib = sysconfig.get_path("stdlib")
        prefixes = {"none": root / "none", "stdlib only": root / "stdlib", "all": root / "all"}
        for p in prefixes.values():
            p.mkdir()
        _compile_into(prefixes["stdlib only"], [f for f in files if f.startswith(stdlib)
                                                and "site-packages" not in f])
        _compile_into(prefixes["all"], files)
        times: dict[str, list[float]] = {name: [] for name in prefixes}
        for _ in range(args.rounds):
            for name, prefix in prefixes.items():
                t = time.perf_counter()
                subprocess.run([sys.executable, "-c", f"import {args.modules}"], check=True, env=_env(prefix))
                times[name].append(time.perf_counter() - t)
        print(json.dumps({"modules": len(files), "python": sys.version.split()[0],
                          "import": args.modules, "wall": {name: summary(v) for name, v in times.items()}}, indent=1))


if __name__ == "__main__":
    main()
