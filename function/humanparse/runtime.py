"""Process-level CPU set-up. Thread counts come from the container's CPU quota, never from torch's own
detection: on Lambda-like hosts cpuinfo cannot read /sys/devices/system/cpu/{possible,present} (pytorch/cpuinfo#14,
pytorch/pytorch#113568; the issue tracker's pytorch#74876), so torch may warn, size its pool from the host's
cores, or raise from ``set_num_threads``. We read the cgroup quota ourselves and survive that raise."""

from __future__ import annotations

import ctypes
import gc
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``, affinity, then 1."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if q > 0 and p > 0:
            return max(1, math.ceil(q / p))
    except (OSError, ValueError):
        pass
    affinity = getattr(os, "sched_getaffinity", None)  # Linux only: absent on macOS and Windows
    try:
        if affinity is not None:
            return max(1, len(affinity(0)))
    except OSError:
        pass
    return max(1, os.cpu_count() or 1)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks for the next allocation instead of handing them back to the kernel.
    By default most blocks of 128 KB-32 MB are fresh mmaps and the heap is trimmed often, so each of the thousands
    of activations and masks a parse allocates costs page faults and zeroing on first touch: 0.3-1.2 ms a 2 MB
    plane, 4x the arithmetic of ``sign`` or ``mul`` on it, 283 k faults per 864x640 post-processing. Measured
    (2-core EPYC AVX2, 864x640 post-processing, processes alternated): 0.50-0.59 s → 0.23-0.47 s with the heap
    trimmed beyond 256 MB of free top (0.16-0.27 s never trimmed, but a 12 MP parse's peak RSS rose from 1.22 to
    1.47 GB; with the 256 MB bound and blocks over 32 MB mapped, 48 MP peaks at 1.32-1.38 GB against 1.16 GB with
    glibc's defaults). Returns whether it applied (False where the C library is not glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # macOS, musl, Windows: their allocators are left as they are
        return False
    # blocks up to 32 MB from the heap (a parse's planes and most activations); larger ones (a 12 MP photo's
    # planes, decode buffers) stay mapped and go back when freed: with 1 GB a 48 MP parse peaked at 1.51 GB, 1.32-1.38
    mapped = mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
    # one arena, not 8 per core: the HTTP app runs a request's decode, parse, render and extras on whichever thread
    # of its pool is free, and every thread's arena kept its own freed 12 MP planes: POST /parse of a 12 MP photo
    # peaked at 2.4 GB (1.8 GB with two arenas, 1.46 GB with one; the same work on one thread 1.31 GB), and one
    # arena ran as fast as two (bench/e2e.py, 2 rounds: 1.01x at 1024x768, 0.98x (0.87-1.08) at 12 MP)
    mallopt(_M_ARENA_MAX, 1)
    return bool(mapped and mallopt(_M_TRIM_THRESHOLD, 256 << 20) == 1)


def configure_threads(threads: int | None) -> int:
    """Process set-up for parsing: glibc's malloc keeps freed memory (``keep_freed_memory``), and torch's intra-op
    threads (if torch is importable) are ``threads`` or the CPU quota; returns the thread count."""
    n = threads or cpu_quota()
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # lite-only installs have no torch
        pass
    except RuntimeError:  # already set once in this process; keep going with what is set
        pass
    keep_freed_memory()  # after torch's import, whose libraries reset glibc's thresholds as they load
    return n


@contextmanager
def startup_phase() -> Iterator[None]:
    """Imports and model loading without Python's cyclic collector (the hundreds of thousands of objects torch,
    the API stack and the model create are walked again and again by collections that free nothing worth it),
    then everything made so far frozen (``gc.freeze``: later collections skip it, and the interpreter's exit no
    longer walks it), and the collector as it was before — also when the body raises. The Lambda module's init:
    2.50 -> 1.75 s, its exit 0.96 -> 0.15 s (``bench/coldstart.py``, interleaved). Nests: an inner phase leaves
    the collector off for the outer one."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()
