"""``GET /healthz`` and ``GET /config``: what is serving, and what the page needs to know."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from humanparse import __version__
from humanparse.entries.api.deps import AuthDep, ParserDep, SettingsDep
from humanparse.pipeline.colormap import full_legend
from humanparse.pipeline.labels import PERSON_PALETTE, hex_color

router = APIRouter()


@router.get("/healthz")
def healthz(parser: ParserDep) -> dict[str, Any]:
    info = parser.info
    return {"status": "ok", "version": __version__,
            "model": {"kind": info.kind, "id": info.model_id, "notes": info.notes,
                      "precision": info.precision, "precision_reason": info.precision_reason,
                      "kernels": dict(info.kernels), "kernels_reason": info.kernels_reason}}


@router.get("/config", dependencies=[AuthDep])
def api_config(settings: SettingsDep, parser: ParserDep) -> dict[str, Any]:
    """What the page needs to know: limits, accepted types, the legend of all labels."""
    return {"max_upload_bytes": settings.max_upload_bytes, "allowed_content_types": list(settings.allowed_content_types),
            "sync_max_bytes": settings.sync_max_bytes, "labels": full_legend(),
            "video_max_bytes": settings.video_max_bytes, "video_max_seconds": settings.video_max_seconds,
            "supported_labels": list(parser.info.supported_labels), "model": parser.info.kind,
            "person_colors": [hex_color(c) for c in PERSON_PALETTE]}
