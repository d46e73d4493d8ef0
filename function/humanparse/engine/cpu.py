"""The host module: every probe of what this CPU is, from what each platform offers — the name that keys a kernel
verdict (``m2fp.autotune.cache_key``, shared through S3 by ``kernel_share``) and the flags that decide whether
bf16 can be faster than fp32 (``host_has_amx`` for ``m2fp.precision``, ``bf16_can_win`` for calibrating).

- Linux x86: ``/proc/cpuinfo``'s ``model name`` and ``flags`` (unchanged: verdicts already cached stay valid).
- Linux arm64 (Graviton, Ampere, a Raspberry Pi): ``/proc/cpuinfo`` has no ``model name``; each core's
  ``CPU implementer`` and ``CPU part`` name its design (Neoverse-N1 is Graviton2 and Lambda's arm64, V1 is
  Graviton3), and big.LITTLE chips list each core type. Flags come from ``Features`` (``bf16``, ``sve`` …).
- macOS: ``sysctl machdep.cpu.brand_string`` ("Apple M2 Pro": each M-series chip its own key, where
  ``platform.processor()`` says ``arm`` for all); Apple silicon's bf16 from ``hw.optional.arm.FEAT_BF16``.
- Windows: the registry's ``ProcessorNameString``, else ``PROCESSOR_IDENTIFIER``; no flags (Windows does not
  report AMX or BF16 to a program, so bf16 is never chosen there by itself; ``precision=bf16`` still runs it).

No torch here: the lite tier and the Lambda's kernel-share step import this without it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections import Counter

# (implementer, part) → design, for the arm64 cores a server, a Lambda or a board is likely to have.
# From Arm's and the vendors' technical reference manuals (MIDR_EL1); an unknown pair is named by its numbers.
ARM_PARTS: dict[tuple[str, str], str] = {
    ("0x41", "0xd03"): "ARM Cortex-A53", ("0x41", "0xd05"): "ARM Cortex-A55", ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72", ("0x41", "0xd0b"): "ARM Cortex-A76", ("0x41", "0xd0d"): "ARM Cortex-A77",
    ("0x41", "0xd41"): "ARM Cortex-A78", ("0x41", "0xd44"): "ARM Cortex-X1", ("0x41", "0xd46"): "ARM Cortex-A510",
    ("0x41", "0xd47"): "ARM Cortex-A710", ("0x41", "0xd48"): "ARM Cortex-X2",
    ("0x41", "0xd0c"): "ARM Neoverse-N1", ("0x41", "0xd40"): "ARM Neoverse-V1", ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2", ("0x41", "0xd8e"): "ARM Neoverse-N3", ("0x41", "0xd84"): "ARM Neoverse-V3",
    ("0xc0", "0xac3"): "Ampere-1", ("0xc0", "0xac4"): "Ampere-1a", ("0x48", "0xd01"): "HiSilicon Kunpeng-920",
    ("0x46", "0x001"): "Fujitsu A64FX", ("0x61", "0x022"): "Apple M1", ("0x61", "0x023"): "Apple M1",
}


def model_from_cpuinfo(text: str) -> str | None:
    """The CPU's name from a ``/proc/cpuinfo`` text: arm64's core designs (``ARM Neoverse-N1 [0x41:0xd0c]``,
    ``+``-joined with counts when cores differ), else x86's ``model name``; None when it has neither."""
    cores: Counter[tuple[str, str]] = Counter()
    implementer = None
    model = None
    for line in text.splitlines():
        name, _, value = (s.strip() for s in line.partition(":"))
        if name == "CPU implementer":
            implementer = value.lower()
        elif name == "CPU part" and implementer is not None:
            cores[(implementer, value.lower())] += 1
        elif name == "model name" and model is None:
            model = value
    if cores:
        names = [f"{ARM_PARTS.get(core, 'arm64')} [{core[0]}:{core[1]}]" for core in cores]
        if len(cores) == 1:
            return names[0]
        return " + ".join(f"{n} x{count}" for n, count in zip(names, cores.values(), strict=True))
    return model or None


def flags_from_cpuinfo(text: str) -> set[str]:
    """x86's ``flags`` or arm64's ``Features`` (the first processor's: all cores share the instruction set)."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def sysctl(name: str) -> str | None:
    """``sysctl -n name`` on macOS (None elsewhere, or when the name does not exist on this Mac)."""
    if sys.platform != "darwin":
        return None
    try:
        out = subprocess.run(["/usr/sbin/sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _windows_cpu_name() -> str | None:
    if sys.platform != "win32":
        return None
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
            value, _ = winreg.QueryValueEx(key, "ProcessorNameString")
        return str(value).strip() or None
    except OSError:
        return os.environ.get("PROCESSOR_IDENTIFIER") or None


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """This CPU's name as the platform tells it (module docstring); ``platform.machine()`` when it tells none."""
    name = (model_from_cpuinfo(_read(path)) if sys.platform.startswith("linux") else
            sysctl("machdep.cpu.brand_string") if sys.platform == "darwin" else _windows_cpu_name())
    return name or platform.processor() or platform.machine()


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """Instruction-set flags, lower case, in Linux's spelling where the platform has its own."""
    if sys.platform.startswith("linux"):
        return flags_from_cpuinfo(_read(path))
    if sys.platform == "darwin":
        if sysctl("hw.optional.arm.FEAT_BF16") == "1":
            return {"bf16"}
        return {f.lower().replace(".", "_") for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features")
                for f in (sysctl(key) or "").split()}
    return set()


def bf16_native(flags: set[str], machine: str | None = None) -> bool:
    """The CPU computes bf16 in hardware, so bf16 can beat fp32: AMX or AVX512-BF16 (x86), BF16 (arm64:
    Graviton3/4, Neoverse V1/V2/N2, Apple M2 and later). Not Graviton2 / Lambda arm64 (Neoverse-N1), not AVX2."""
    arch = (machine or platform.machine()).lower()
    if arch in ("arm64", "aarch64"):
        return "bf16" in flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def host_has_amx() -> bool:
    """AMX on this CPU: the one hardware boundary of ``m2fp.precision.choose_precision`` (tests stub it)."""
    return "amx_bf16" in cpu_flags()


def bf16_can_win(machine: str | None = None) -> bool:
    """Whether calibrating bf16 against fp32 is worth it here. x86-64: always — the verdict travels with the
    folder (and the image), and AMX CPUs, where ``auto`` then runs bf16, are among those that run it (Lambda's
    fleet), even when this one is not. arm64: only with BF16 in hardware (Graviton3/4, Apple M2+), where the
    verdict tells whether ``precision=bf16`` is safe; not on Lambda's arm64 (Neoverse-N1), Apple M1 or a Pi."""
    arch = (machine or platform.machine()).lower()
    return arch in ("x86_64", "amd64") or bf16_native(cpu_flags(), arch)
