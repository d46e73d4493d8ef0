"""Model files that ship inside the package, and the content hashes every copy of them is held to.

``lite/`` holds the two lite ONNX models (BodyPix: Apache-2.0, PAN: MIT; licence texts and NOTICE beside them),
so a clone, ``pip install .``, a wheel and the container image parse with no download step."""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

# sha256 of the exact files the lite tier was tuned on; checked at load and at download.
LITE_SHA256: dict[str, str] = {
    "bodypix-mobilenetv1-050-stride16.onnx": "f2e51d18eec8e3c9ef3f196ea0245db1d86529161d19e14466ad4ebc5e6ee242",
    "pan-mobilenetv3-skin-clothes-hair.onnx": "324a22a1c2e3a433d6225d4c5c50f50912797a4d14b69f7d632eeb5c85346f36",
}


def packaged_lite_dir() -> Path:
    """The ``lite/`` folder inside the installed package (a plain directory: setuptools installs unzipped)."""
    return Path(str(files(__name__).joinpath("lite")))


def packaged_photo(name: str = "astronaut.jpg") -> Path:
    """A photo of a person that ships with the package (public domain; see ``calibration/LICENSE.txt``)."""
    return Path(str(files("humanparse").joinpath("calibration", name)))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
