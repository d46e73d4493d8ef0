"""The Python API: ``parser = humanparse.load()``, then ``result = parser(image)``.

A thin adapter on the one use case (``usecase.parse_image``), as the CLI, the HTTP app and the S3 trigger are:
a path or bytes go through exactly the decode, parse and render the CLI uses, so they give the CLI's label map
and files. Already-decoded pixels (a PIL image, an RGB array) skip the decode and go straight to the model,
under the same bounds: refused above ``max_megapixels``, shrunk to ``max_output_megapixels`` (the label maps then
have the shrunk size, as for a file), and the parse's time budget.

Orientation (EXIF): a path, bytes and a PIL image are turned upright by their EXIF orientation tag, as a phone
photo is shown (``Image.open(path)`` therefore gives the same labels as ``path``). An array is taken as the
upright picture: ``np.asarray(Image.open(path))`` ignores the tag, so a rotated phone photo would be parsed
sideways — pass the path or the PIL image instead.

Concurrency: as in the deployed workers, one parse runs at a time per loaded parser, and each parse uses all of
its ``threads``; calls from several threads wait their turn. ``map`` parses a sequence that way, in order."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from humanparse.config import Settings
from humanparse.engine.loader import load_parser
from humanparse.engine.types import ModelInfo, Parser, ParseResult
from humanparse.exceptions import FileUnreadable, HumanParseError, ImageTooLarge, ImageTooSmall, NotAnImage
from humanparse.pipeline.colormap import colorize, overlay
from humanparse.pipeline.imageio import MIN_SIDE, _fit
from humanparse.pipeline.labels import CIHP_LABELS, GROUPS
from humanparse.pipeline.rendering import png_bytes, render_all, result_document
from humanparse.pipeline.tryon import TryOn
from humanparse.pipeline.usecase import ParseOptions, ParseOutput, parse_image

PoseFn = Callable[[npt.NDArray[np.uint8]], list[npt.NDArray[np.float32]]]
"""Poses of an (H, W, 3) uint8 RGB photo: a list of (17, 3) float32 x, y, score (engine/pose.py)."""

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | npt.NDArray[np.uint8]
"""What ``HumanParser.__call__`` takes: a file path, the file's bytes, a PIL image, or (H, W, 3) uint8 RGB."""

LabelSpec = str | int | Iterable[str | int]
"""A group name (``GROUPS``), a CIHP label name (any case) or id, or several of them."""

# result file name → the suffix it gets beside the photo's stem (``photo.label.png`` … ``photo.json``)
OUTPUT_SUFFIX: dict[str, str] = {"label.png": "label.png", "color.png": "color.png", "overlay.jpg": "overlay.jpg",
                                 "persons.png": "persons.png", "legend.png": "legend.png", "result.json": "json"}
_NAME_TO_ID = {name.lower(): i for i, name in enumerate(CIHP_LABELS)}


# ------------------------------------------------------------------------------------------------ files
def read_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of ``path``; ``FileUnreadable`` if it cannot be read, ``ImageTooLarge`` over ``max_bytes``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise FileUnreadable(f"cannot read {os.fspath(path)!s} ({exc.strerror or type(exc).__name__})") from exc
    if len(data) > max_bytes:
        raise ImageTooLarge(f"file is larger than {max_bytes} bytes")
    return data


def output_paths(folder: Path, stem: str) -> dict[str, Path]:
    """Where each artefact of one image goes: ``folder/stem.label.png`` … ``folder/stem.json``."""
    return {name: folder / f"{stem}.{suffix}" for name, suffix in OUTPUT_SUFFIX.items()}


def write_outputs(folder: Path, stem: str, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (``rendering.ARTIFACTS`` names → bytes, and the try-on files of ``tryon_files``, each
    ``stem.<name>``) as the CLI does; the JSON comes last, and each file appears whole (written beside, then
    renamed), so a present ``stem.json`` means a complete set."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    targets = {name: folder / f"{stem}.{name}" for name in files if name not in OUTPUT_SUFFIX}
    targets.update(output_paths(folder, stem))  # the JSON summary last
    for name, target in targets.items():
        if name not in files:
            continue
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(files[name])
        tmp.replace(target)
        written.append(target)
    return written


# ----------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Person:
    """One person found in the image. ``bbox`` is (x0, y0, x1, y1), x1/y1 exclusive, in image pixels;
    ``area`` the pixels of ``Parsed.persons == id``; ``parts`` CIHP name → pixels of that person."""

    id: int
    score: float
    bbox: tuple[int, int, int, int]
    area: int
    parts: dict[str, int] = field(default_factory=dict)


class Parsed:
    """One parsed image. Arrays share the image's size (H, W):

    - ``labels``: (H, W) uint8 CIHP ids 0..19 (``humanparse.LABELS``), 0 = background.
    - ``persons``: (H, W) uint8 person ids, 0 = nobody, k = ``people[k-1]``.
    - ``image``: (H, W, 3) uint8 RGB, the upright pixels that were parsed.
    - ``people``: one ``Person`` per person, ids 1..N by score; ``model``: which model ran;
      ``timings``: seconds (``decode`` for paths and bytes, ``parse``, ``render`` when rendered, ``total``);
      ``summary``: the same JSON document as the CLI's ``<stem>.json``.

    Try-on outputs (``docs/tryon.md``): ``tryon(category, person)``, ``keypoints``, ``labels_as``,
    ``person_labels``, ``outfit``.
    """

    def __init__(self, result: ParseResult, image: npt.NDArray[np.uint8], summary: dict[str, Any],
                 timings: dict[str, float], *, files: dict[str, bytes] | None = None, alpha: float = 0.6,
                 source: str | None = None, poser: PoseFn | None = None) -> None:
        self._result, self.image, self.summary, self.timings = result, image, summary, timings
        self._files, self._alpha, self.source = files, alpha, source
        self._poser = poser  # poses for a model without a pose head (M2FP), run on first use
        self._keypoints: list[npt.NDArray[np.float32]] | None = None
        self.people = tuple(Person(p.id, p.score, p.bbox, p.area,
                                   {CIHP_LABELS[k]: int(v["pixels"]) for k, v in sorted(p.parts.items())})
                            for p in result.persons)

    @classmethod
    def from_output(cls, out: ParseOutput, *, alpha: float = 0.6, poser: PoseFn | None = None) -> Parsed:
        """The result of ``usecase.parse_image`` (HTTP app, job trigger) with the try-on methods."""
        assert out.rgb is not None  # parse_image always keeps the decoded pixels
        return cls(out.result, out.rgb, out.summary, dict(out.timings), files=out.files, alpha=alpha, poser=poser)

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        return self._result.label_map

    @property
    def persons(self) -> npt.NDArray[np.uint8]:
        return self._result.person_map

    @property
    def model(self) -> ModelInfo:
        return self._result.model

    @property
    def files(self) -> dict[str, bytes]:
        """The CLI's files as bytes (``label.png`` … ``result.json``), rendered on first use."""
        if self._files is None:
            self._files = render_all(self._result, self.image, alpha=self._alpha, extra=_input_doc(self))
        return self._files

    def mask(self, which: LabelSpec, person: int | None = None) -> npt.NDArray[np.bool_]:
        """(H, W) bool: pixels whose label is in ``which`` (a ``GROUPS`` name such as ``"upper_garment"``, a
        label name such as ``"Hair"`` or id, or a list of them), only person ``person``'s when given
        (1..len(people)). Unknown names raise ``KeyError`` listing the valid ones."""
        ids = label_ids(which)
        lut = np.zeros(256, dtype=bool)
        lut[list(ids)] = True
        out: npt.NDArray[np.bool_] = lut[self.labels]
        if person is not None:
            if not 1 <= person <= len(self.people):
                raise IndexError(f"person {person} is not in this image (people 1..{len(self.people)})")
            out &= self.persons == person
        return out

    # ------------------------------------------------------------------------------------- try-on outputs
    def tryon(self, category: str, person: int | None = None) -> TryOn:
        """The inpainting ``mask`` ((H, W) bool), ``agnostic`` image ((H, W, 3) uint8, the mask grey) and
        ``parse_agnostic`` ((H, W) uint8 CIHP ids) of ``person`` (1..len(people); default 1, the strongest) for
        ``category``: ``"upper_body"``, ``"lower_body"``, ``"dresses"`` or ``"full_body"``. Uses the person's
        keypoints when the model gave any. Raises ``UnknownCategory``, ``UnknownPerson``, ``NoPerson``."""
        from humanparse.pipeline.tryon import check_request, tryon

        check_request(category, person, len(self.people))  # before any keypoints are computed
        kp = self.keypoint_arrays[(person or 1) - 1]
        return tryon(self.image, self.labels, self.persons, len(self.people), category, person,
                     keypoints=kp if kp[:, 2].any() else None)

    @property
    def keypoint_arrays(self) -> list[npt.NDArray[np.float32]]:
        """One (18, 3) float32 x, y, confidence array per person (index k-1 for person k), OpenPose-18 order,
        all zeros for a person without a pose. The lite tier decodes poses with its parse; for M2FP the lite
        tier's pose network runs on first use (``humanparse.pipeline.keypoints`` matches poses to persons)."""
        if self._keypoints is None:
            from humanparse.pipeline.keypoints import person_keypoints

            poses = self._result.poses
            if not poses and self.model.kind != "lite" and self._poser is not None and self.people:
                poses = self._poser(self.image)
            self._keypoints = person_keypoints(poses, self.persons, len(self.people))
        return self._keypoints

    @property
    def keypoints(self) -> dict[str, Any]:
        """OpenPose's JSON layout, ``{"version", "people": [{"person_id": [k], "pose_keypoints_2d": 54 floats},
        ...]}``, ``people[k-1]`` = person k; a keypoint not seen is 0, 0, 0."""
        from humanparse.pipeline.keypoints import openpose_document

        return openpose_document(self.keypoint_arrays)

    def labels_as(self, label_set: str) -> npt.NDArray[np.uint8]:
        """(H, W) uint8 label map in ``"cihp"``, ``"lip"`` (20 ids) or ``"atr"`` (18 ids);
        ``humanparse.pipeline.labelsets`` documents the mapping. Raises ``UnknownLabelSet``."""
        from humanparse.pipeline.labelsets import convert

        return convert(self.labels, label_set, self.persons)

    def person_labels(self, person: int, label_set: str = "cihp") -> npt.NDArray[np.uint8]:
        """(H, W) uint8: one person's parse (``labels_as(label_set)`` where ``persons == person``, 0 elsewhere).
        Raises ``UnknownPerson`` / ``NoPerson``."""
        from humanparse.exceptions import NoPerson, UnknownPerson

        if not self.people:
            raise NoPerson()
        if isinstance(person, bool) or not isinstance(person, int) or not 1 <= person <= len(self.people):
            raise UnknownPerson(f"person {person!r} is not in this image; its persons are 1..{len(self.people)}")
        out = self.labels_as(label_set)
        out[self.persons != person] = 0
        return out

    @property
    def outfit(self) -> list[dict[str, Any]]:
        """Per person: garments present (hat, sunglasses, scarf, coat, upper_clothes, dress, skirt, pants,
        gloves, socks, shoes), pixels, share of the person, dominant colour ``{"name", "hex"}``
        (``humanparse.pipeline.outfit``). Only garments the model can label appear (``model.supported_labels``)."""
        from humanparse.pipeline.outfit import outfit

        if "outfit" in self.summary:  # result.json carries it (rendering.result_document)
            return copy.deepcopy(self.summary["outfit"])
        return outfit(self.image, self.labels, self.persons, len(self.people))

    def color(self) -> npt.NDArray[np.uint8]:
        """(H, W, 3) uint8 RGB colour map ("拼图"): CIHP palette colours, background black."""
        return colorize(self.labels)

    def overlay(self, alpha: float | None = None) -> npt.NDArray[np.uint8]:
        """(H, W, 3) uint8 RGB: part colours over the photo at opacity ``alpha`` 0..1 (default: the
        configured ``overlay_alpha``, 0.6); background pixels keep the photo."""
        return overlay(self.image, self.labels, self._alpha if alpha is None else alpha)

    def save(self, folder: str | os.PathLike[str], stem: str | None = None) -> list[Path]:
        """Write the CLI's files — ``stem.label.png``, ``.color.png``, ``.overlay.jpg``, ``.persons.png``,
        ``.legend.png``, ``.json`` — into ``folder`` (created); ``stem`` defaults to the input file's stem,
        else ``"image"``. Returns the paths written."""
        return write_outputs(Path(folder), stem or (Path(self.source).stem if self.source else "image"), self.files)

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (a copy): size, model, labels present, persons with boxes and parts, timings."""
        return copy.deepcopy(self.summary)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.summary, ensure_ascii=False, indent=indent)

    def _repr_png_(self) -> bytes:
        """Jupyter shows the overlay."""
        return png_bytes(self.overlay())

    def __repr__(self) -> str:
        h, w = self.labels.shape
        ms = 1000.0 * self.timings.get("total", 0.0)
        return f"<Parsed {w}x{h}, {len(self.people)} people, model={self.model.kind}, {ms:.0f} ms>"


def label_ids(which: LabelSpec) -> frozenset[int]:
    """CIHP ids named by ``which`` (see ``Parsed.mask``)."""
    items: Iterable[str | int] = [which] if isinstance(which, str | int) else which
    ids: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(CIHP_LABELS):
            ids.add(item)
        elif isinstance(item, str) and item in GROUPS:
            ids.update(_NAME_TO_ID[n.lower()] for n in GROUPS[item])
        elif isinstance(item, str) and item.lower() in _NAME_TO_ID:
            ids.add(_NAME_TO_ID[item.lower()])
        else:
            raise KeyError(f"{item!r} is neither a label group ({', '.join(GROUPS)}) nor a CIHP label "
                           f"({', '.join(CIHP_LABELS)}) nor an id 0..{len(CIHP_LABELS) - 1}")
    return frozenset(ids)


def _input_doc(parsed: Parsed) -> dict[str, Any]:
    return {k: parsed.summary[k] for k in ("input", "source") if k in parsed.summary}


# ----------------------------------------------------------------------------------------------- parser
class _Keep:
    """A ``Parser`` that remembers the pixels it was given: the decoded image, for ``overlay(alpha)``."""

    def __init__(self, parser: Parser) -> None:
        self.info = parser.info
        self._parser = parser
        self.rgb: npt.NDArray[np.uint8] | None = None

    def parse(self, rgb: npt.NDArray[np.uint8], *, deadline: float | None = None) -> ParseResult:
        self.rgb = rgb
        return self._parser.parse(rgb, deadline=deadline)


class HumanParser:
    """A loaded model. ``parser(image)`` parses one image; ``parser.map(images)`` a sequence. Build with
    ``humanparse.load``. ``notice`` says which model serves and from where; ``info`` describes it."""

    def __init__(self, parser: Parser, settings: Settings, notice: str = "") -> None:
        self.parser, self.settings, self.notice = parser, settings, notice
        self.options = ParseOptions.from_settings(settings)
        self._lock = threading.Lock()  # one parse at a time, each with all threads (the workers' rule)
        self._pose_net: Any = None  # engine.pose.PoseNetwork beside M2FP, built on first use

    @property
    def info(self) -> ModelInfo:
        return self.parser.info

    def __call__(self, image: ImageInput) -> Parsed:
        """Parse ``image``: a path (``str``/``Path``), the file's bytes (JPEG, PNG, WebP, …), a PIL image or an
        (H, W, 3) uint8 RGB array. Raises an ``InputError`` subclass (``humanparse.exceptions``: ``not_an_image``,
        ``truncated``, ``too_large``, ``too_small``, ``unreadable``, …) for input it will not parse, and
        ``TypeError`` for other Python types."""
        if isinstance(image, str | os.PathLike):
            data = read_file(image, self.settings.max_upload_bytes * 4)  # the CLI's cap
            return self._parse_bytes(data, source=os.fspath(image))
        if isinstance(image, bytes | bytearray | memoryview):
            return self._parse_bytes(bytes(image))
        if isinstance(image, Image.Image):
            return self._parse_pixels(pil_to_rgb(image), {"format": "pil", "mode": image.mode})
        if isinstance(image, np.ndarray):
            return self._parse_pixels(check_rgb(image), {"format": "array", "mode": "RGB"})
        raise TypeError(f"cannot parse a {type(image).__name__}: pass a path, bytes, a PIL image or an "
                        "(H, W, 3) uint8 RGB array")

    @overload
    def map(self, images: Iterable[ImageInput], *, errors: Literal["raise"] = ...) -> Iterator[Parsed]: ...

    @overload
    def map(self, images: Iterable[ImageInput], *,
            errors: Literal["return"]) -> Iterator[Parsed | HumanParseError]: ...

    def map(self, images: Iterable[ImageInput], *,
            errors: Literal["raise", "return"] = "raise") -> Iterator[Parsed | HumanParseError]:
        """Parse ``images`` one after the other (one parse at a time, all threads each: on a CPU that is the
        fastest order, and it is what the workers do), yielding results in input order as they finish, so a
        long sequence never holds more than one result. ``errors="return"`` yields the ``HumanParseError`` of an
        image that fails in its place instead of raising it."""
        for image in images:
            try:
                yield self(image)
            except HumanParseError as exc:
                if errors == "raise":
                    raise
                yield exc

    def _parse_bytes(self, data: bytes, source: str | None = None) -> Parsed:
        keep = _Keep(self.parser)
        with self._lock:
            out = parse_image(data, keep, self.options, extra={"source": source} if source else None)
        assert keep.rgb is not None  # parse_image hands the decoded pixels to the parser before it returns
        return Parsed(out.result, keep.rgb, out.summary, dict(out.timings), files=out.files,
                      alpha=self.options.overlay_alpha, source=source, poser=self.estimate_poses)

    def _parse_pixels(self, rgb: npt.NDArray[np.uint8], input_doc: dict[str, Any]) -> Parsed:
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ImageTooSmall(f"image is {w}x{h}; each side must be at least {MIN_SIDE} pixels")
        if h * w > self.options.max_megapixels * 1_000_000:
            raise ImageTooLarge(f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                                f"{self.options.max_megapixels:g}")
        if h * w > self.options.max_output_megapixels * 1_000_000:  # as decode_image does for files
            rgb = np.asarray(_fit(Image.fromarray(rgb), self.options.max_output_megapixels * 1_000_000))
        budget = self.options.parse_time_budget_s
        t0 = time.perf_counter()
        with self._lock:
            result = self.parser.parse(rgb, deadline=None if budget is None else time.monotonic() + budget)
        t1 = time.perf_counter()
        summary = result_document(result, extra={"input": {**input_doc, "frames": 1, "exif_rotated": False}},
                                  rgb=rgb)
        return Parsed(result, rgb, summary, {"parse": t1 - t0, "total": t1 - t0}, alpha=self.options.overlay_alpha,
                      poser=self.estimate_poses)

    def estimate_poses(self, rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        """Poses of ``rgb`` by the lite tier's pose network (BodyPix, loaded once on first use from the lite
        model folders): for a model without a pose head. (17, 3) float32 x, y, score each (engine/pose.py)."""
        from humanparse.engine.pose import PoseNetwork

        with self._lock:
            if self._pose_net is None:
                spec = self.settings.model_spec(self.settings.threads)
                self._pose_net = PoseNetwork.from_lite_dirs(list(spec.lite_dirs), threads=spec.threads)
            poses: list[npt.NDArray[np.float32]] = self._pose_net.estimate(rgb)
        return poses

    def __repr__(self) -> str:
        return f"<HumanParser {self.info.kind} {self.info.model_id} ({self.info.precision})>"


def pil_to_rgb(img: Image.Image) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 RGB of a PIL image: EXIF orientation applied, first frame, transparency over white."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La", "P"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def check_rgb(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """``arr`` itself (C-contiguous) if it is (H, W, 3) uint8; ``NotAnImage`` naming what it is otherwise."""
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise NotAnImage(f"expected an (H, W, 3) uint8 RGB array, got shape {arr.shape} dtype {arr.dtype} "
                         "(greyscale or RGBA: np.asarray(Image.fromarray(a).convert('RGB')))")
    return np.ascontiguousarray(arr)


def load(model: Literal["auto", "m2fp", "lite"] = "auto", model_dir: str | os.PathLike[str] | None = None,
         threads: int | None = None, precision: Literal["auto", "fp32", "bf16"] = "auto", *,
         lite_dir: str | os.PathLike[str] | None = None, settings: Settings | None = None) -> HumanParser:
    """Load a model once (seconds); parse many images with the returned ``HumanParser``.

    ``model``: ``"auto"`` takes M2FP when its folder is found (``model_dir``, else the cache that ``humanparse
    download m2fp`` fills), else the lite model that ships with the package; ``"m2fp"`` / ``"lite"`` insist.
    ``threads``: CPU threads per parse (default: the CPU quota). ``precision``: M2FP arithmetic (``"auto"``:
    bf16 only where a calibration verdict allows it, on AMX CPUs). Everything else (cache folder, limits, overlay
    opacity) comes from ``settings``, by default the ``HUMANPARSE_*`` environment as for every other entry.
    Never downloads; raises ``ModelNotFound`` / ``ModelError`` when the files are missing or wrong."""
    from humanparse.runtime import configure_threads

    kw: dict[str, Any] = {}
    if model_dir is not None:
        kw.update(model_dir=Path(model_dir), model_kind="m2fp" if model == "auto" else model)
    if model != "auto":
        kw["model_kind"] = model
    if lite_dir is not None:
        kw["lite_model_dir"] = Path(lite_dir)
    if threads is not None:
        kw["threads"] = threads
    if precision != "auto":
        kw["precision"] = precision
    base = settings or Settings()
    settings = base.model_copy(update=kw) if kw else base
    loaded = load_parser(settings, threads=configure_threads(settings.threads))
    return HumanParser(loaded.parser, settings, loaded.notice)


__all__ = ["HumanParser", "ImageInput", "LabelSpec", "Parsed", "Person", "label_ids", "load"]
