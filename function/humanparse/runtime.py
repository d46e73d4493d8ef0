"""Process-level CPU set-up. Thread counts come from the container's CPU quota, never from torch's own
detection: on Lambda-like hosts cpuinfo cannot read /sys/devices/system/cpu/{possible,present} (pytorch/cpuinfo#14,
pytorch/pytorch#113568; the issue tracker's pytorch#74876), so torch may warn, size its pool from the host's
cores, or raise from ``set_num_threads``. We read the cgroup quota ourselves and survive that raise."""

from __future__ import annotations

import math
import os
from pathlib import Path


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
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (if torch is importable) to ``threads`` or the CPU quota; returns it."""
    n = threads or cpu_quota()
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # lite-only installs have no torch
        pass
    except RuntimeError:  # already set once in this process; keep going with what is set
        pass
    return n
