"""The Python API (``humanparse.load`` → ``parser(image)``) on the real lite model and a photo of two people: every input
type gives the CLI's label map, the result's methods, masks by group and by person, ``map``, the error family
for bad input, a cheap ``import humanparse``, and the README's example run as written."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import humanparse
import numpy as np
import pytest
from conftest import ROOT, encode_jpeg
from humanparse.exceptions import EmptyInput, FileUnreadable, ImageTooSmall, NotAnImage, TruncatedImage
from PIL import Image

PHOTO = "two.jpg"  # two people (conftest.make_people_photos: the shipped photo and its mirror image)


@pytest.fixture(scope="module")
def hp() -> Any:
    return humanparse.load(model="lite", threads=2)


@pytest.fixture(scope="module")
def photo_path(people_photos: list[Path]) -> Path:
    return people_photos[0].parent / PHOTO


@pytest.fixture(scope="module")
def parsed(hp: Any, photo_path: Path) -> Any:
    return hp(photo_path)


def test_every_input_type_gives_the_cli_label_map(hp: Any, parsed: Any, photo_path: Path, tmp_path: Path) -> None:
    from humanparse.entries.cli import main

    assert main(["parse", str(photo_path), "--out", str(tmp_path), "--model", "lite", "--threads", "2",
                 "--quiet"]) == 0
    cli_labels = np.asarray(Image.open(tmp_path / "two.label.png"))
    cli_persons = np.asarray(Image.open(tmp_path / "two.persons.png"))
    assert len(np.unique(cli_labels)) > 3  # a real parse, not an empty map
    data = photo_path.read_bytes()
    inputs = {"str": str(photo_path), "Path": photo_path, "bytes": data, "bytearray": bytearray(data),
              "PIL": Image.open(photo_path), "array": np.asarray(Image.open(photo_path).convert("RGB"))}
    for kind, image in inputs.items():
        r = parsed if kind == "Path" else hp(image)
        assert r.labels.dtype == np.uint8 and r.labels.shape == cli_labels.shape, kind
        assert np.array_equal(r.labels, cli_labels), kind
        assert np.array_equal(r.persons, cli_persons), kind
    cli_doc = json.loads((tmp_path / "two.json").read_text())
    assert cli_doc["source"] == str(photo_path) == parsed.summary["source"]
    assert cli_doc["persons"] == parsed.summary["persons"] and cli_doc["labels"] == parsed.summary["labels"]


def test_pil_image_is_turned_upright_by_its_exif_tag(hp: Any, parsed: Any, photo_path: Path) -> None:
    """A phone photo stored sideways with orientation 6: the path, bytes and PIL image all parse upright."""
    upright = np.asarray(Image.open(photo_path).convert("RGB"))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    Image.fromarray(np.rot90(upright, 1)).save(buf, format="PNG", exif=exif)  # pixels stored turned left
    sideways = buf.getvalue()
    by_bytes, by_pil = hp(sideways), hp(Image.open(io.BytesIO(sideways)))
    assert by_bytes.labels.shape == by_pil.labels.shape == upright.shape[:2]
    assert np.array_equal(by_bytes.labels, by_pil.labels) and by_bytes.summary["input"]["exif_rotated"]
    assert np.array_equal(by_bytes.labels, parsed.labels)  # the turn is lossless: the upright photo's labels
    # an array is taken as the upright picture: the raw sideways pixels parse sideways
    assert hp(np.asarray(Image.open(io.BytesIO(sideways)))).labels.shape == upright.shape[1::-1]


def test_result_methods(parsed: Any, tmp_path: Path) -> None:
    h, w = parsed.labels.shape
    assert parsed.image.shape == (h, w, 3) and parsed.image.dtype == np.uint8
    assert len(parsed.people) == parsed.summary["person_count"] == 2
    p1 = parsed.people[0]
    x0, y0, x1, y1 = p1.bbox
    ys, xs = np.nonzero(parsed.persons == 1)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) and p1.area == ys.size
    assert sum(p1.parts.values()) == p1.area and 0 < p1.score <= 1
    assert parsed.model.kind == "lite" and {"decode", "parse", "render", "total"} <= set(parsed.timings)

    color = parsed.color()
    fg = parsed.labels > 0
    assert color.shape == (h, w, 3) and not color[~fg].any()
    assert np.array_equal(color[parsed.labels == 5][0], [255, 85, 0])  # UpperClothes' palette colour
    assert np.array_equal(parsed.overlay(0.0), parsed.image)
    assert np.array_equal(parsed.overlay(1.0)[fg], color[fg]) and np.array_equal(parsed.overlay(1.0)[~fg],
                                                                                  parsed.image[~fg])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(parsed._repr_png_()))), parsed.overlay())

    written = parsed.save(tmp_path)
    assert [p.name for p in written] == [f"two.{s}" for s in ("label.png", "color.png", "overlay.jpg",
                                                                  "persons.png", "legend.png", "json")]
    assert (tmp_path / "two.json").read_bytes() == parsed.files["result.json"]
    assert json.loads(parsed.to_json()) == parsed.to_dict() == parsed.summary
    assert "2 people" in repr(parsed) and "lite" in repr(parsed)


def test_array_results_render_the_same_files(hp: Any, parsed: Any, tmp_path: Path) -> None:
    r = hp(parsed.image)
    assert r.save(tmp_path, "arr")[0].name == "arr.label.png"
    assert (tmp_path / "arr.label.png").read_bytes() == parsed.files["label.png"]
    assert json.loads(r.files["result.json"])["persons"] == parsed.summary["persons"]
    assert r.summary["input"]["format"] == "array"


def test_label_metadata_and_masks(parsed: Any) -> None:
    assert humanparse.LABELS[0] == "Background" and humanparse.LABELS[19] == "Right-shoe"
    assert len(humanparse.LABELS) == 20
    for group, names in humanparse.GROUPS.items():
        assert set(names) <= set(humanparse.LABELS.values()) - {"Background"}, group

    labels, persons = parsed.labels, parsed.persons
    upper = parsed.mask("upper_garment")
    assert upper.dtype == np.bool_ and upper.shape == labels.shape
    assert np.array_equal(upper, np.isin(labels, [5, 7])) and upper.any()
    assert np.array_equal(parsed.mask(["Hair", "face"]), np.isin(labels, [2, 13]))
    assert np.array_equal(parsed.mask(13), labels == 13)
    assert np.array_equal(parsed.mask(["identity", "Pants"]), np.isin(labels, [1, 2, 4, 13, 9]))
    assert np.array_equal(parsed.mask("person"), labels > 0)

    per_person = [parsed.mask("upper_garment", person=k) for k in range(1, len(parsed.people) + 1)]
    for k, m in enumerate(per_person, start=1):
        assert np.array_equal(m, upper & (persons == k))
        assert m.sum() == parsed.people[k - 1].parts.get("UpperClothes", 0) + parsed.people[k - 1].parts.get("Coat", 0)
    assert np.array_equal(np.logical_or.reduce(per_person), upper & (persons > 0))

    with pytest.raises(KeyError, match="upper_garment"):
        parsed.mask("shirt")
    with pytest.raises(IndexError):
        parsed.mask("Hair", person=len(parsed.people) + 1)


def test_map_parses_a_list_in_order(hp: Any, photo_path: Path, people_photos: list[Path], parsed: Any) -> None:
    other = people_photos[3]
    results = list(hp.map([str(photo_path), other.read_bytes()]))
    assert np.array_equal(results[0].labels, parsed.labels)
    assert results[1].labels.shape == Image.open(other).size[::-1]
    mixed = list(hp.map([b"not an image", other], errors="return"))
    assert isinstance(mixed[0], NotAnImage) and mixed[0].code == "not_an_image"
    assert np.array_equal(mixed[1].labels, results[1].labels)
    with pytest.raises(NotAnImage):
        list(hp.map([b"not an image", other]))


def test_one_parse_at_a_time_across_threads(stub_parser: Any) -> None:
    """The workers' rule: calls from several threads wait their turn (the stub parser is the boundary here)."""
    import threading
    import time

    from humanparse.config import Settings
    from humanparse.entries.library import HumanParser

    active, peak = [0], [0]
    inner = stub_parser.parse

    def slow_parse(rgb: Any, *, deadline: float | None = None) -> Any:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        active[0] -= 1
        return inner(rgb, deadline=deadline)

    stub_parser.parse = slow_parse
    hp = HumanParser(stub_parser, Settings())
    image = np.zeros((64, 48, 3), np.uint8)
    threads = [threading.Thread(target=hp, args=(image,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stub_parser.calls == 4 and peak[0] == 1


def test_bad_input_raises_the_error_family(hp: Any, photo_path: Path, tmp_path: Path) -> None:
    cases: list[tuple[Any, type[Exception], str]] = [
        (b"", EmptyInput, "empty"),
        (b"hello, world" * 10, NotAnImage, "not_an_image"),
        (photo_path.read_bytes()[:3000], TruncatedImage, "truncated"),
        (tmp_path / "absent.jpg", FileUnreadable, "unreadable"),
        (np.zeros((64, 64, 3), np.float32), NotAnImage, "not_an_image"),
        (np.zeros((64, 64), np.uint8), NotAnImage, "not_an_image"),
        (np.zeros((8, 64, 3), np.uint8), ImageTooSmall, "too_small"),
        (encode_jpeg(np.zeros((8, 64, 3), np.uint8)), ImageTooSmall, "too_small"),
    ]
    for image, error, code in cases:
        with pytest.raises(error) as info:
            hp(image)
        assert info.value.code == code  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="path, bytes, a PIL image"):
        hp(42)


def test_import_is_cheap() -> None:
    """``import humanparse`` and its label data load none of numpy, Pillow, torch, pydantic, FastAPI."""
    code = ("import sys, humanparse; humanparse.LABELS; humanparse.GROUPS; "
            "print(sorted(m for m in ('numpy', 'PIL', 'torch', 'onnxruntime', 'pydantic', 'fastapi') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "function"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


def test_readme_example_runs(photo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ```python block of the README, exactly as written, in a folder holding ``photo.jpg``."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None and len(block.group(1).strip().splitlines()) <= 6
    (tmp_path / "photo.jpg").write_bytes(photo_path.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUMANPARSE_MODEL_KIND", "lite")  # "auto" on a machine with no M2FP download
    monkeypatch.setenv("HUMANPARSE_THREADS", "2")
    ns: dict[str, Any] = {}
    exec(compile(block.group(1), "README.md", "exec"), ns)
    assert ns["result"].model.kind == "lite"
    mask = ns["upper"]
    assert mask.dtype == np.bool_ and mask.any() and not (mask & (ns["result"].persons != 1)).any()
    assert (tmp_path / "out" / "photo.label.png").is_file() and (tmp_path / "out" / "photo.json").is_file()
