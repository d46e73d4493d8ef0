"""Every output file in one table: its name, media type, how it is made, and where it appears.

One ``Output`` per file. Everything else reads this table instead of a list of its own:

- ``render_all`` (every parse: the CLI, the Python API, ``POST /parse``, the S3 trigger) writes each photo output
  that has a ``render``, in table order, with the ``last`` one (``result.json``) after the others;
- the CLI and ``Parsed.save`` write ``<stem>.<suffix>``; the batch walker knows them as results, not inputs;
- ``POST /parse?output=<query>`` answers with the file whose ``query`` it names (``json`` is the summary);
- a video job publishes the ``kind="video"`` outputs ``join_chunks`` wrote;
- the page builds its download lists from ``GET /config`` (``page_config``): each output with a ``download``,
  ordered by ``Download.rank``;
- the result cache's format version (``format_version``) is a hash of the table: adding, removing or bumping the
  ``version`` of an output makes every older cache entry a miss.

Outputs without a ``render`` are made elsewhere: the try-on files by ``tryon_files.py`` (the CLI's ``--keypoints``
/ ``--labels-as`` / ``--tryon``, every job, ``POST /parse``), the video files by ``video/chunks.py``; the table
still names their media type, query and download. ``overlay.png`` is no longer made: jobs stored before the JPEG
overlay have it, and the page still offers it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from humanparse.engine.types import ParseResult
from humanparse.pipeline.colormap import legend_image, overlay
from humanparse.pipeline.labels import palette_array
from humanparse.pipeline.labelsets import LABEL_SETS
from humanparse.pipeline.rendering import _person_palette, jpeg_bytes, png_bytes, result_document

Kind = Literal["photo", "video"]


class Rendering:
    """What a renderer reads: the parse ``result`` (its (H, W) uint8 ``label_map`` / ``person_map``), the photo
    ``rgb`` ((H, W, 3) uint8, the maps' size), the overlay's ``alpha``, and pieces several outputs share, each made
    once on first use (``doc``: result.json's document; ``label_png``: the CIHP palette PNG; ``persons_png``)."""

    def __init__(self, result: ParseResult, rgb: npt.NDArray[np.uint8], alpha: float,
                 extra: dict[str, Any] | None, doc: Future[dict[str, Any]] | None = None,
                 persons: Future[bytes] | None = None) -> None:
        self.result, self.rgb, self.alpha, self.extra = result, rgb, alpha, extra
        self._doc, self._persons = doc, persons  # being made on another thread (``render_all``)

    @cached_property
    def doc(self) -> dict[str, Any]:
        if self._doc is not None:
            return self._doc.result()
        return result_document(self.result, extra=self.extra, rgb=self.rgb)

    @cached_property
    def label_png(self) -> bytes:
        return png_bytes(self.result.label_map, palette=palette_array())

    @cached_property
    def persons_png(self) -> bytes:
        # queued behind the document on the other thread: made here instead if that thread has not started it
        if self._persons is not None and not self._persons.cancel():
            return self._persons.result()
        return persons_png(self.result.person_map)


Renderer = Callable[[Rendering], bytes]


@dataclass(frozen=True)
class Download:
    """An entry of the page's download list: link ``title``, its tooltip ``hint``, its place (lower ``rank``
    first; equal ranks keep table order). The link saves ``<stem>.<name>`` and shows only when the job has it."""

    title: str
    hint: str = ""
    rank: int = 100


@dataclass(frozen=True)
class Output:
    """One output file. ``name``: the file name (results bucket ``<job>/<name>``, ``status.json`` ``files``, a job's
    ``results``); a ``*`` pattern names a family (``tryon.*.png``). ``render``: made by ``render_all`` on every photo
    parse; None: made elsewhere (module docstring). ``suffix``: the CLI's ``<stem>.<suffix>`` (default ``name``).
    ``query``: the ``POST /parse?output=`` value. ``version``: bump when the bytes of the same parse change."""

    name: str
    media_type: str
    kind: Kind = "photo"
    render: Renderer | None = None
    suffix: str = ""
    query: str | None = None
    download: Download | None = None
    version: int = 1
    last: bool = False  # written after every other file: its presence means the set is complete

    @property
    def cli_suffix(self) -> str:
        return self.suffix or self.name

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.name) if "*" in self.name else name == self.name

    def describe(self) -> dict[str, Any]:
        """The entry as JSON (``GET /config``)."""
        return {"name": self.name, "media_type": self.media_type, "kind": self.kind, "rendered": self.render is not None,
                "suffix": self.cli_suffix, "query": self.query, "version": self.version,
                "download": None if self.download is None else {"title": self.download.title,
                                                                "hint": self.download.hint}}


def _overlay(r: Rendering) -> bytes:
    return jpeg_bytes(overlay(r.rgb, r.result.label_map, r.alpha), scratch=True)


def persons_png(person_map: npt.NDArray[np.uint8]) -> bytes:
    """persons.png: the (H, W) uint8 person ids, shown in the person colours."""
    return png_bytes(person_map, palette=_person_palette())


def _persons(r: Rendering) -> bytes:
    return r.persons_png


def _legend(r: Rendering) -> bytes:
    return png_bytes(legend_image(r.doc["legend"]))


def _summary(r: Rendering) -> bytes:
    return json.dumps(r.doc, ensure_ascii=False, indent=1).encode("utf-8")


# The overlay is a JPEG (lossy: a picture to look at; the ids are in label.png / persons.png, lossless): on a 12 MP
# phone-like photo (bench/encode.py) PNG level 1 took 1.8 s for 13.8 MB (cv2's fastest PNG 0.87 s), JPEG q90 4:4:4
# 0.13 s for 2.0 MB. color.png is label.png's bytes (the palette shows the part colours; kept for old readers).
# Versions: overlay.jpg 2 (it replaced overlay.png), result.json 3 (the outfit per person).
TABLE: list[Output] = [
    # --- photo, every parse (render_all), in the order they are written
    Output("label.png", "image/png", render=lambda r: r.label_png, query="label",
           download=Download("Label map", rank=20)),
    Output("color.png", "image/png", render=lambda r: r.label_png, query="color",
           download=Download("Colour map", rank=10)),
    Output("overlay.jpg", "image/jpeg", render=_overlay, query="overlay", version=2,
           download=Download("Overlay (JPEG)", "The blend as a JPEG (lossy); the exact part ids are in the label map",
                             rank=40)),
    Output("persons.png", "image/png", render=_persons),
    Output("legend.png", "image/png", render=_legend),
    Output("result.json", "application/json", render=_summary, suffix="json", query="json", version=3, last=True,
           download=Download("JSON", rank=30)),
    # --- photo, try-on files (tryon_files.py): every job; the CLI and POST /parse on request. The label sets
    # besides CIHP (label.png) as palette PNGs, <set>.png; the try-on images tryon.<category>.p<k>.<image>.png
    Output("keypoints.json", "application/json", query="keypoints"),
    *(Output(f"{s}.png", "image/png", query=s) for s in LABEL_SETS if s != "cihp"),
    Output("tryon.*.png", "image/png", query="tryon"),
    # --- photo, no longer made: jobs stored before the JPEG overlay
    Output("overlay.png", "image/png", download=Download("Overlay", rank=50)),
    # --- video (video/chunks.py join_chunks), in the order they are written
    Output("color.webm", "video/webm", "video", download=Download("Colour video", rank=10)),
    Output("overlay.webm", "video/webm", "video", download=Download("Overlay video", rank=20)),
    Output("persons.webm", "video/webm", "video", download=Download("Persons video", rank=30)),
    Output("labels.zip", "application/zip", "video", download=Download("Label maps (zip)", rank=40)),
    Output("tracks.json", "application/json", "video", download=Download("Tracks JSON", rank=50)),
    Output("poster.jpg", "image/jpeg", "video", download=Download("Poster", rank=70)),
    Output("result.json", "application/json", "video", last=True, download=Download("JSON", rank=60)),
]


def register(output: Output) -> Output:
    """Add ``output`` to the table (a plug-in format; tests). Refuses a name or query already taken."""
    taken = [o for o in TABLE if (o.kind == output.kind and o.name == output.name)
             or (output.query is not None and o.query == output.query)]
    if taken:
        raise ValueError(f"output {output.name!r} clashes with {taken[0].name!r}")
    TABLE.append(output)
    return output


def of_kind(kind: Kind) -> list[Output]:
    """The outputs of ``kind`` in the order they are written: table order, the ``last`` ones after the others."""
    return sorted((o for o in TABLE if o.kind == kind), key=lambda o: o.last)


def rendered() -> list[Output]:
    """The photo outputs ``render_all`` writes, in order."""
    return [o for o in of_kind("photo") if o.render is not None]


def render_all(result: ParseResult, rgb: npt.NDArray[np.uint8], *, alpha: float = 0.6,
               extra: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every rendered output as bytes, by name, in order (``rendered``). ``label.png`` is a palette PNG whose pixel
    values are the CIHP ids (read it back with ``np.asarray(Image.open(...))``) and which displays in the part
    colours; ``persons.png`` holds person ids; ``overlay.jpg`` is the blend (lossy JPEG). ``rgb``: (H, W, 3) uint8
    of the maps' size (``decode_image`` bounds both by ``max_output_megapixels``)."""
    # two lanes (numpy, OpenCV and Pillow's encoders let go of the GIL): the document (outfit, label and person
    # statistics) on a second thread, label.png and the overlay on this one, and persons.png on whichever is free
    # first. 12 MP on a 2-core Xeon: document 160 ms with one person (230 with the random head's two), label.png
    # 45 + overlay and its JPEG 150, persons.png 45; with one histogram for the document, render_all went
    # 235 -> 201 ms with one person, 280 -> 246 with two (medians of 12 interleaved runs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as pool:
        doc = pool.submit(result_document, result, extra=extra, rgb=rgb)
        r = Rendering(result, rgb, alpha, extra, doc, pool.submit(persons_png, result.person_map))
        return {o.name: o.render(r) for o in rendered() if o.render is not None}


def by_query(query: str) -> Output | None:
    """The photo output ``POST /parse?output=<query>`` names, or None."""
    return next((o for o in TABLE if o.kind == "photo" and o.query == query), None)


def queries() -> list[str]:
    """Every ``output=`` value, ``json`` (the default) first."""
    names = [o.query for o in of_kind("photo") if o.query is not None]
    return sorted(names, key=lambda q: q != "json")


def content_type(name: str, kind: Kind = "photo") -> str:
    """The media type of result file ``name`` (then of its suffix), ``application/octet-stream`` when unknown."""
    for o in of_kind(kind):
        if o.matches(name):
            return o.media_type
    suffix = name[name.rfind("."):]
    return next((o.media_type for o in TABLE if o.name.endswith(suffix)), "application/octet-stream")


def format_version() -> str:
    """The result format: a hash of every output's name, kind, media type and version, so a change of the table
    makes older cache entries miss (an entry made before an output existed would lack it)."""
    rows = sorted((o.kind, o.name, o.media_type, o.version) for o in TABLE)
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()[:16]


def downloads(kind: Kind) -> list[dict[str, str]]:
    """The page's download list for a ``kind`` of job: name, title, hint, in rank order."""
    listed = [(o.download, o.name) for o in TABLE if o.kind == kind and o.download is not None]
    return [{"name": name, "title": d.title, "hint": d.hint} for d, name in sorted(listed, key=lambda x: x[0].rank)]


def page_config() -> dict[str, Any]:
    """The outputs part of ``GET /config``: the whole table, and the page's download lists."""
    return {"outputs": [o.describe() for o in TABLE],
            "downloads": {"photo": downloads("photo"), "video": downloads("video")}}


class TableView(Mapping[str, str]):
    """A read-only ``name → value`` view of some outputs, read from the table at each use (so a format
    registered later shows): ``ARTIFACTS`` (rendered photo outputs → media type), ``VIDEO_OUTPUTS``."""

    def __init__(self, pick: Callable[[], list[Output]], value: Callable[[Output], str]) -> None:
        self._pick, self._value = pick, value

    def _items(self) -> dict[str, str]:
        return {o.name: self._value(o) for o in self._pick()}

    def __getitem__(self, key: str) -> str:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


ARTIFACTS: Mapping[str, str] = TableView(rendered, lambda o: o.media_type)
VIDEO_OUTPUTS: Mapping[str, str] = TableView(lambda: of_kind("video"), lambda o: o.media_type)
CLI_SUFFIX: Mapping[str, str] = TableView(rendered, lambda o: o.cli_suffix)


def artifact_named(stem: str) -> str:
    """The file name of rendered output ``stem`` (``"overlay"`` → ``"overlay.jpg"``); ``KeyError`` if none."""
    for name in ARTIFACTS:
        if name.split(".", 1)[0] == stem:
            return name
    raise KeyError(stem)


def result_tails() -> tuple[str, ...]:
    """How the file names of photo outputs end beside a stem (``.label.png`` … ``.json``), for telling results
    from inputs; a family (``tryon.*.png``) is not among them (its members end in their own image names)."""
    return tuple(f".{o.cli_suffix}" for o in of_kind("photo") if "*" not in o.name)
