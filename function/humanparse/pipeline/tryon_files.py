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

from humanparse.exceptions import NoPerson, UnknownCategory, UnknownLabelSet
from humanparse.pipeline.labels import palette_array
from humanparse.pipeline.labelsets import LABEL_SETS
from humanparse.pipeline.rendering import png_bytes
from humanparse.pipeline.tryon import CATEGORIES, IMAGES

if TYPE_CHECKING:
    from humanparse.config import Settings
    from humanparse.entries.library import Parsed, PoseFn
    from humanparse.jobs.store import JobStore
    from humanparse.pipeline.usecase import ParseOutput

KEYPOINTS_FILE = "keypoints.json"
TRYON_IMAGES = IMAGES
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
    from humanparse.entries.library import Parsed

    parsed = Parsed.from_output(out, alpha=settings.overlay_alpha, poser=pose_estimator(settings))
    return {**out.files, **extra_files(parsed, job_extras(settings))}


def extra_files(parsed: Parsed, extras: Extras) -> dict[str, bytes]:
    """The files ``extras`` asks for, by the names above. Raises ``UnknownPerson``, with ``require_person``
    ``NoPerson`` (categories asked on a photo without people) and with ``strict`` ``NothingToMask``."""
    from humanparse.exceptions import NothingToMask

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
               options: Any, images: Iterable[str] = TRYON_IMAGES) -> dict[str, bytes] | None:
    """One person's try-on files from a stored parse (``label.png``, ``persons.png``, ``result.json``, and
    ``keypoints.json`` when there is one) and the photo's bytes, decoded as the parse decoded them: no second
    parse; only ``images`` (of ``TRYON_IMAGES``) are encoded. None when the stored maps do not fit the decoded
    photo (parse again). ``options``: the ``usecase.ParseOptions`` of the parse.
    Raises ``UnknownCategory``, ``NoPerson``, ``UnknownPerson``, ``NothingToMask`` as ``Parsed.tryon`` does."""
    from PIL import Image

    from humanparse.pipeline.imageio import decode_image
    from humanparse.pipeline.tryon import check_request, tryon

    n = int(json.loads(parsed_files["result.json"])["person_count"])
    _, pid = check_request(category, person, n)  # before any decoding
    decoded = decode_image(data, max_megapixels=options.max_megapixels,
                           max_output_megapixels=options.max_output_megapixels,
                           max_decode_megabytes=options.max_decode_megabytes, max_jpeg_scans=options.max_jpeg_scans)
    labels = np.asarray(Image.open(io.BytesIO(parsed_files["label.png"])), dtype=np.uint8)
    persons = np.asarray(Image.open(io.BytesIO(parsed_files["persons.png"])), dtype=np.uint8)
    if decoded.rgb.shape[:2] != labels.shape or persons.shape != labels.shape:
        return None
    # a job stored before keypoints were (result format 2) has none: the mask is then drawn without them
    people = json.loads(parsed_files.get(KEYPOINTS_FILE, b'{"people": []}'))["people"]
    kp = (np.asarray(people[pid - 1]["pose_keypoints_2d"], dtype=np.float32).reshape(18, 3)
          if pid <= len(people) else np.zeros((18, 3), np.float32))
    t = tryon(decoded.rgb, labels, persons, n, category, pid, keypoints=kp if kp[:, 2].any() else None)
    return {tryon_name(category, t.person, image): t.file(image) for image in images}


# ------------------------------------------------------------------------------- poses beside M2FP (entries)
_POSE_LOCK = threading.Lock()
_POSE_NETS: dict[tuple[str, ...], Any] = {}


def pose_estimator(settings: Settings) -> PoseFn:
    """The lite tier's pose network (BodyPix), loaded once per process on first call, for a model without a pose
    head (M2FP) in the HTTP app and the job trigger: (H, W, 3) uint8 RGB → (17, 3) float32 poses."""

    def estimate(rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        from humanparse.engine.pose import PoseNetwork

        spec = settings.model_spec(settings.threads)
        key = tuple(str(d) for d in spec.lite_dirs)
        with _POSE_LOCK:
            if key not in _POSE_NETS:
                _POSE_NETS[key] = PoseNetwork.from_lite_dirs(list(spec.lite_dirs), threads=spec.threads)
            net = _POSE_NETS[key]
        poses: list[npt.NDArray[np.float32]] = net.estimate(rgb)
        return poses

    return estimate


# ------------------------------------------------------------------------------- a finished job's try-on files
# what a try-on image is drawn from: the job's stored parse (and its photo, read from the upload bucket)
STORED_PARSE = ["label.png", "persons.png", "result.json", KEYPOINTS_FILE]


@dataclass(frozen=True)
class JobTryOn:
    """One try-on image of a finished job: its file ``name`` (``tryon_name``), PNG ``body``, and ``stored``: True
    when the job already holds it in its results (``Settings.job_tryon_masks``), False when drawn just now."""

    name: str
    body: bytes
    stored: bool


def job_tryon(store: JobStore, job_id: str, category: str, person: int, image: str) -> JobTryOn:
    """One person's try-on ``image`` of finished photo job ``job_id``, from what the job stored — its label and
    persons maps, keypoints, and the uploaded photo — with no second parse and no photo sent again (a 12 MP phone
    photo is over ``POST /parse``'s body cap). Raises ``JobNotFound``, ``JobNotDone`` (pending, running, failed,
    or the photo replaced since its parse), ``UploadMissing`` (the photo expired), ``InvalidRequest`` (a video
    job, a job with no stored photo) and what ``outputs_of`` raises."""
    from humanparse.exceptions import InvalidRequest, JobNotDone, JobNotFound, UploadMissing
    from humanparse.jobs.cache import sha256_hex
    from humanparse.pipeline.usecase import ParseOptions

    status = _finished(store, job_id)
    name = tryon_name(category, person, image)
    if name in status.get("files", []):
        body = store.read_result(job_id, name)
        if body is not None:
            return JobTryOn(name, body, stored=True)
    parsed = {n: store.read_result(job_id, n) for n in STORED_PARSE}
    missing = sorted(n for n, body in parsed.items() if body is None and n != KEYPOINTS_FILE)
    if missing:
        raise JobNotFound(f"the job's results are no longer stored ({', '.join(missing)}); upload the photo again")
    src = status.get("source") or {}
    if not src.get("bucket") or not src.get("key"):  # a POST /parse cache entry: the photo was never stored
        raise InvalidRequest("this job kept no photo to draw from; upload the photo with POST /uploads")
    data = store.read_upload(src["bucket"], src["key"], store.settings.max_upload_bytes, src.get("version_id"))
    if data is None:
        raise UploadMissing("the job's photo is no longer stored (expired or deleted); upload it again")
    if status.get("sha256") and sha256_hex(data) != status["sha256"]:
        raise JobNotDone("the photo was replaced since this parse; ask again when its new parse is done")
    drawn = outputs_of(data, {n: b for n, b in parsed.items() if b is not None}, category, person,
                       options=ParseOptions.from_settings(store.settings), images=[image])
    if drawn is None:
        raise JobNotDone("the stored parse does not fit the stored photo; ask again when its new parse is done")
    return JobTryOn(name, drawn[name], stored=False)


def _finished(store: JobStore, job_id: str) -> dict[str, Any]:
    """The ``status.json`` of a finished photo job, else the error that says why not."""
    from humanparse.exceptions import InvalidRequest, JobNotDone, JobNotFound

    status = store.expire_overdue(job_id, store.read_status(job_id))
    if status is None:
        if store.upload_arrived(job_id):
            raise JobNotDone("the job is pending: its photo arrived and is being parsed")
        raise JobNotFound()
    if status.get("kind") == "video":
        raise InvalidRequest("try-on images are drawn for photo jobs; this job is a video")
    if status.get("status") == "failed":
        raise JobNotDone(f"the job failed ({status.get('error')}: {status.get('detail', status.get('reason'))}); "
                         "there is no parse to draw from")
    if status.get("status") != "done":
        raise JobNotDone(f"the job is {status.get('status')}; ask again when its status is done")
    return status
