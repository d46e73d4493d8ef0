"""``GET /config``: what the page needs to know, built from one source each — the limits and accepted types
(``Settings``), the labels and person colours (``labels.py``), the model, and the outputs with the page's download
lists (the output table, ``pipeline/outputs.py``), the model kinds (``engine/registry.py``). ``config.js`` says only where the API lives (and whether it
wants a token); everything else the page reads here. A new section is one more entry of ``SECTIONS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from humanparse.config import Settings
from humanparse.engine.registry import model_kinds
from humanparse.engine.types import Parser
from humanparse.entries.api.deps import ParserDep, SettingsDep
from humanparse.pipeline.colormap import full_legend
from humanparse.pipeline.labels import PERSON_PALETTE, hex_color
from humanparse.pipeline.outputs import page_config

router = APIRouter()


def limits(settings: Settings, parser: Parser) -> dict[str, Any]:
    return {"max_upload_bytes": settings.max_upload_bytes,
            "allowed_content_types": list(settings.allowed_content_types), "sync_max_bytes": settings.sync_max_bytes,
            "video_max_bytes": settings.video_max_bytes, "video_max_seconds": settings.video_max_seconds}


def labels(settings: Settings, parser: Parser) -> dict[str, Any]:
    return {"labels": full_legend(), "supported_labels": list(parser.info.supported_labels),
            "person_colors": [hex_color(c) for c in PERSON_PALETTE]}


def model(settings: Settings, parser: Parser) -> dict[str, Any]:
    # the page names the model by its kind's title (engine/registry.py)
    return {"model": parser.info.kind, "model_kinds": {k.name: k.facts() for k in model_kinds()}}


def outputs(settings: Settings, parser: Parser) -> dict[str, Any]:
    return page_config()


# each section adds its keys to the answer, in this order
SECTIONS: list[Callable[[Settings, Parser], dict[str, Any]]] = [limits, labels, model, outputs]


@router.get("/config")
def api_config(settings: SettingsDep, parser: ParserDep) -> dict[str, Any]:
    """What the page needs to know: limits, accepted types, the legend of all labels, the model, the outputs
    (``outputs``: the output table; ``downloads``: the page's download lists by job kind)."""
    answer: dict[str, Any] = {}
    for section in SECTIONS:
        answer.update(section(settings, parser))
    return answer
