"""Set-up shared by the M2FP benches: the ModelScope reference venv and the model folder."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
sys.path.insert(1, str(ROOT / "tests"))  # tests/m2fp_random.py: the random-weight M2FP folder (a test helper)


def prepare(venv: Path, model_dir: Path | None) -> Path:
    """Build the reference venv if needed (bench/setup_parity_env.sh) and return the M2FP folder to use:
    ``model_dir`` if given (e.g. real downloaded weights), else a random-weight folder in ModelScope's layout."""
    subprocess.run(["bash", str(ROOT / "bench" / "setup_parity_env.sh")], check=True, cwd=ROOT,
                   env={**os.environ, "PARITY_VENV": str(venv)})
    return model_folder(model_dir)


def model_folder(model_dir: Path | None) -> Path:
    """``model_dir`` if given (e.g. real downloaded weights), else the random-weight folder in ModelScope's layout
    under .cache (made on first use)."""
    if model_dir is not None:
        return model_dir
    from m2fp_random import make_random_m2fp_folder

    folder = ROOT / ".cache" / "m2fp-random"
    if not (folder / "pytorch_model.pt").exists():
        make_random_m2fp_folder(folder)
    return folder


def summary(xs: list[float]) -> dict[str, float]:
    """Seconds → median and quartiles in ms (the benches print spread with the median)."""
    q = statistics.quantiles(xs, n=4)
    return {"median_ms": round(1000 * statistics.median(xs), 1), "p25_ms": round(1000 * q[0], 1),
            "p75_ms": round(1000 * q[2], 1), "n": len(xs)}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a local runner the bench starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
