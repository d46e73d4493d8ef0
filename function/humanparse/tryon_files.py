"""Try-on outputs as files, for the entries (CLI, ``POST /parse``, job results): thin adapters over
``Parsed.tryon`` / ``keypoints`` / ``labels_as`` (``library.py``) and ``tryon.tryon``; no geometry here.

File names (beside the others: ``<stem>.<name>`` for the CLI, ``<job>/<name>`` in the results bucket):

- ``keypoints.json``: OpenPose-18 JSON, ``people[k-1]`` = person k, 54 floats each (``keypoints.py``);
- ``atr.png``, ``lip.png``: palette PNGs whose pixel values are the ATR (18) / LIP (20) ids (``labelsets.py``);
- ``tryon.<category>.p<k>.mask.png`` (grey 0/255, 255 = repaint), ``…agnostic.png`` (RGB, lossless: the photo
  outside the mask byte for byte), ``…parse_agnostic.png`` (palette PNG of CIHP ids) — ``tryon.TryOn.files``.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .exceptions import NoPerson, UnknownCategory, UnknownLabelSet
from .labels import palette_array
from .labelsets import LABEL_SETS
from .rendering import png_bytes
from .tryon import CATEGORIES

if TYPE_CHECKING:
    from .config import Settings
    from .library import Parsed, PoseFn
    from .usecase import ParseOutput

KEYPOINTS_FILE = "keypoints.json"
TRYON_IMAGES = ("mask", "agnostic", "parse_agnostic")
# the label sets written as files besides label.png (CIHP, which it is)
EXTRA_LABEL_SETS = tuple(s for s in LABEL_SETS if s != "cihp")


def tryon_name(category: str, person: int, image: str) -> str:
    """``tryon.upper_body.p1.mask.png``: the file of one person's try-on ``image`` (``TRYON_IMAGES``)."""
    return f"tryon.{category}.p{person}.{image}.png"


def label_set_name(label_set: str) -> str:
    return f"{label_set}.png"


def categories_from(values: Iterable[str]) -> tuple[str, ...]:
    """Categories named in ``values`` (each a name, a comma list, or ``all``), in ``CATEGORIES`` order, each once;
    ``UnknownCategory`` naming the valid ones."""
    asked = {v.strip() for value in values for v in value.split(",") if v.strip()}
    if "all" in asked:
        return tuple(CATEGORIES)
    bad = sorted(asked - set(CATEGORIES))
    if bad:
        raise UnknownCategory(f"unknown try-on categor{'ies' if len(bad) > 1 else 'y'} {', '.join(bad)}; "
                              f"choose from {', '.join(CATEGORIES)} or all")
    return tuple(c for c in CATEGORIES if c in asked)


def label_sets_from(values: Iterable[str]) -> tuple[str, ...]:
    """Label sets named in ``values`` (names or comma lists, ``all``): ``UnknownLabelSet`` for others."""
    asked = {v.strip().lower() for value in values for v in value.split(",") if v.strip()}
    if "all" in asked:
        return tuple(LABEL_SETS)
    bad = sorted(asked - set(LABEL_SETS))
    if bad:
        raise UnknownLabelSet(f"unknown label set {', '.join(bad)}; choose from {', '.join(LABEL_SETS)}")
    return tuple(s for s in LABEL_SETS if s in asked)


@dataclass(frozen=True)
class Extras:
    """Which try-on outputs to write. ``persons``: None = every person, else those ids (1..N; others raise)."""

    categories: tuple[str, ...] = ()
    label_sets: tuple[str, ...] = ()
    keypoints: bool = False
    persons: tuple[int, ...] | None = None
    strict: bool = True  # False: a person showing nothing a category repaints is passed over (jobs, ``all``)
    require_person: bool = True  # False: categories on a photo without people write nothing (jobs)

    def __bool__(self) -> bool:
        return bool(self.categories or self.label_sets or self.keypoints)


def expected_names(extras: Extras) -> list[str]:
    """The files ``extras`` writes whatever the photo holds (the try-on images depend on its people)."""
    return ([KEYPOINTS_FILE] if extras.keypoints else []) + [label_set_name(s) for s in extras.label_sets
                                                             if s != "cihp"]


def job_extras(settings: Settings) -> Extras:
    """What every job (S3 trigger, local runner, ``POST /parse``'s cache entry) stores besides the parse: the
    keypoints, the ATR and LIP maps (a few ms), and — with ``Settings.job_tryon_masks`` — every person's mask,
    agnostic image and parse for all four categories (about as much again as a lite
    parse, mostly the agnostic PNGs: off by default; ``bench/tryon_jobs.py``)."""
    return Extras(categories=tuple(CATEGORIES) if settings.job_tryon_masks else (), label_sets=EXTRA_LABEL_SETS,
                  keypoints=True, strict=False, require_person=False)


def tryon_job_files(out: ParseOutput, settings: Settings) -> dict[str, bytes]:
    """Every file a job stores: the parse's (``rendering.ARTIFACTS``) and ``job_extras``'."""
    from .library import Parsed

    parsed = Parsed.from_output(out, alpha=settings.overlay_alpha, poser=pose_estimator(settings))
    return {**out.files, **extra_files(parsed, job_extras(settings))}


def extra_files(parsed: Parsed, extras: Extras) -> dict[str, bytes]:
    """The files ``extras`` asks for, by the names above. Raises ``UnknownPerson``, with ``require_person``
    ``NoPerson`` (categories asked on a photo without people) and with ``strict`` ``NothingToMask``."""
    from .exceptions import NothingToMask

    files: dict[str, bytes] = {}
    if extras.keypoints:
        files[KEYPOINTS_FILE] = json.dumps(parsed.keypoints).encode("utf-8")
    for label_set in extras.label_sets:
        if label_set != "cihp":
            files[label_set_name(label_set)] = png_bytes(parsed.labels_as(label_set), palette=palette_array())
    if not extras.categories:
        return files
    if not parsed.people:
        if extras.require_person:
            raise NoPerson("no person was found in the image, so there is no garment region to mask")
        return files
    for person in extras.persons or range(1, len(parsed.people) + 1):
        for category in extras.categories:
            try:
                t = parsed.tryon(category, person)
            except NothingToMask:
                if extras.strict:
                    raise
                continue
            files.update({tryon_name(category, t.person, name.removesuffix(".png")): body
                          for name, body in t.files().items()})
    return files


def outputs_of(data: bytes, parsed_files: dict[str, bytes], category: str, person: int, *,
               options: Any) -> dict[str, bytes] | None:
    """One person's try-on files from a stored parse (``label.png``, ``persons.png``, ``keypoints.json``,
    ``result.json``) and the photo's bytes, decoded as the parse decoded them: no second parse. None when the
    stored maps do not fit the decoded photo (parse again). ``options``: the ``usecase.ParseOptions`` of the parse.
    Raises ``UnknownCategory``, ``NoPerson``, ``UnknownPerson``, ``NothingToMask`` as ``Parsed.tryon`` does."""
    from PIL import Image

    from .imageio import decode_image
    from .tryon import check_request, tryon

    n = int(json.loads(parsed_files["result.json"])["person_count"])
    _, pid = check_request(category, person, n)  # before any decoding
    decoded = decode_image(data, max_megapixels=options.max_megapixels,
                           max_output_megapixels=options.max_output_megapixels,
                           max_decode_megabytes=options.max_decode_megabytes, max_jpeg_scans=options.max_jpeg_scans)
    labels = np.asarray(Image.open(io.BytesIO(parsed_files["label.png"])), dtype=np.uint8)
    persons = np.asarray(Image.open(io.BytesIO(parsed_files["persons.png"])), dtype=np.uint8)
    if decoded.rgb.shape[:2] != labels.shape or persons.shape != labels.shape:
        return None
    people = json.loads(parsed_files[KEYPOINTS_FILE])["people"]
    kp = np.asarray(people[pid - 1]["pose_keypoints_2d"], dtype=np.float32).reshape(18, 3)
    t = tryon(decoded.rgb, labels, persons, n, category, pid, keypoints=kp if kp[:, 2].any() else None)
    return {tryon_name(category, t.person, name.removesuffix(".png")): body for name, body in t.files().items()}


# ------------------------------------------------------------------------------- poses beside M2FP (entries)
_POSE_LOCK = threading.Lock()
_POSE_NETS: dict[tuple[str, ...], Any] = {}


def pose_estimator(settings: Settings) -> PoseFn:
    """The lite tier's pose network (BodyPix), loaded once per process on first call, for a model without a pose
    head (M2FP) in the HTTP app and the job trigger: (H, W, 3) uint8 RGB → (17, 3) float32 poses."""

    def estimate(rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        from .engine.pose import PoseNetwork

        spec = settings.model_spec(settings.threads)
        key = tuple(str(d) for d in spec.lite_dirs)
        with _POSE_LOCK:
            if key not in _POSE_NETS:
                _POSE_NETS[key] = PoseNetwork.from_lite_dirs(list(spec.lite_dirs), threads=spec.threads)
            net = _POSE_NETS[key]
        poses: list[npt.NDArray[np.float32]] = net.estimate(rgb)
        return poses

    return estimate
