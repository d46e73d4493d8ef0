"""humanparse: multi-person human parsing (M2FP and a lite ONNX tier) on CPU — a Python API, a command line,
and a serverless function with a static page.

From Python (see ``humanparse.library``)::

    import humanparse
    parser = humanparse.load()                 # M2FP if its folder is found, else the packaged lite model
    result = parser("photo.jpg")               # a path, bytes, a PIL image or an (H, W, 3) uint8 RGB array
    result.labels                              # (H, W) uint8 CIHP ids; humanparse.LABELS names them
    result.mask("upper_garment", person=1)     # (H, W) bool; humanparse.GROUPS lists the groups

Boundaries (one module each):
- ``engine``: image in, label map / persons / colour maps out. Knows nothing of S3 or HTTP.
- ``usecase``: the one use case every entry calls; ``library`` (this API), ``local.cli``, ``api`` (FastAPI via
  Mangum) and ``s3_handler`` (S3 event trigger) are thin adapters around it.

``import humanparse`` imports nothing heavy: the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .labels import GROUPS, LABELS
    from .library import HumanParser, Parsed, Person, load

__version__ = "0.1.0"
__all__ = ["GROUPS", "LABELS", "HumanParser", "Parsed", "Person", "load", "__version__"]

_LAZY = {"load": "library", "HumanParser": "library", "Parsed": "library", "Person": "library",
         "LABELS": "labels", "GROUPS": "labels"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'humanparse' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
