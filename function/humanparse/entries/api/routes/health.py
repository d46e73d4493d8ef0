"""``GET /healthz``: what is serving (open: no token asked)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from humanparse import __version__
from humanparse.engine.registry import lookup, model_kinds
from humanparse.entries.api.deps import ParserDep

router = APIRouter()


@router.get("/healthz")
def healthz(parser: ParserDep) -> dict[str, Any]:
    info = parser.info
    return {"status": "ok", "version": __version__,
            "model": {"kind": info.kind, "id": info.model_id, "notes": info.notes,
                      "precision": info.precision, "precision_reason": info.precision_reason,
                      "kernels": dict(info.kernels), "kernels_reason": info.kernels_reason,
                      # what its kind says of itself (engine/registry.py); none for a parser of no registered kind
                      "facts": kind.facts() if (kind := lookup(info.kind)) else None},
            "kinds": [k.name for k in model_kinds()]}

