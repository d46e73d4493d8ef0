"""humanparse: multi-person human parsing (M2FP and a lite ONNX tier) on CPU — a Python API, a command line,
and a serverless function with a static page.

From Python (see ``humanparse.entries.library``)::

    import humanparse
    parser = humanparse.load()                 # M2FP if its folder is found, else the packaged lite model
    result = parser("photo.jpg")               # a path, bytes, a PIL image or an (H, W, 3) uint8 RGB array
    result.labels                              # (H, W) uint8 CIHP ids; humanparse.LABELS names them
    result.mask("upper_garment", person=1)     # (H, W) bool; humanparse.GROUPS lists the groups

Boundaries (one module each):
- ``engine``: image in, label map / persons / colour maps out. Knows nothing of S3 or HTTP.
- ``pipeline``: decode, parse, render; ``pipeline.usecase`` is the one use case every entry calls.
- ``jobs``: job keys, the job store, the result cache.
- ``entries``: ``library`` (this API), ``cli``, ``api`` (FastAPI via Mangum) and ``trigger`` (S3 upload
  trigger) are thin adapters around the use case; ``service`` wires them for Lambda and the local runner.

``import humanparse`` imports nothing heavy: the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from humanparse.entries.library import HumanParser, Parsed, Person, load
    from humanparse.pipeline.labels import GROUPS, LABELS

__version__ = "0.1.0"
__all__ = ["GROUPS", "LABELS", "HumanParser", "Parsed", "Person", "load", "__version__"]

_LAZY = {"load": "entries.library", "HumanParser": "entries.library", "Parsed": "entries.library",
         "Person": "entries.library", "LABELS": "pipeline.labels", "GROUPS": "pipeline.labels"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'humanparse' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
