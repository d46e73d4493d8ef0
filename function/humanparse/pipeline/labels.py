"""CIHP part labels and the fixed colour palette ("拼图" colours).

Label ids are CIHP's (0–19). The palette is the one CIHP/LIP tooling (CIHP_PGN, LIP) uses, so our colour
maps read like the data set's own visualisations. Colours are RGB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where the palette is built, so `humanparse.LABELS` costs no numpy import
    import numpy as np
    import numpy.typing as npt

CIHP_LABELS: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks",
    "Pants", "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg",
    "Right-leg", "Left-shoe", "Right-shoe",
)
NUM_LABELS = len(CIHP_LABELS)
LABELS: dict[int, str] = dict(enumerate(CIHP_LABELS))  # id → name, the ids of label.png and ``result.labels``

# Label groups for virtual try-on and data preparation, as CIHP names (``result.mask(group)`` takes these keys).
# Garment groups name the garment labels themselves; the ``*_body`` groups name everything a garment of that
# kind covers or may reveal when it is swapped (the region a try-on model repaints); ``identity`` is what keeps
# a person recognisable (kept as is when repainting).
GROUPS: dict[str, tuple[str, ...]] = {
    "upper_garment": ("UpperClothes", "Coat"),
    "lower_garment": ("Pants", "Skirt"),
    "full_body_garment": ("Dress",),
    "garments": ("UpperClothes", "Dress", "Coat", "Pants", "Skirt"),
    "upper_body": ("UpperClothes", "Coat", "Torso-skin", "Left-arm", "Right-arm"),
    "lower_body": ("Pants", "Skirt", "Left-leg", "Right-leg"),
    "full_body": ("UpperClothes", "Dress", "Coat", "Pants", "Skirt", "Torso-skin", "Left-arm", "Right-arm",
                  "Left-leg", "Right-leg"),
    "identity": ("Hat", "Hair", "Sunglasses", "Face"),
    "skin": ("Torso-skin", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg"),
    "arms": ("Left-arm", "Right-arm"),
    "legs": ("Left-leg", "Right-leg"),
    "shoes": ("Left-shoe", "Right-shoe"),
    "accessories": ("Hat", "Glove", "Sunglasses", "Scarf", "Socks"),
    "person": CIHP_LABELS[1:],
}

CIHP_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
    (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255),
    (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
)

# Distinct colours for the per-person view (person k uses PERSON_PALETTE[(k - 1) % len]).
PERSON_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)


def palette_array() -> npt.NDArray[np.uint8]:
    """(256, 3) uint8 RGB lookup table: rows 0–19 are CIHP_PALETTE, the rest black."""
    import numpy as np

    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_LABELS] = np.asarray(CIHP_PALETTE, dtype=np.uint8)
    return lut


def id_counts(ids: npt.NDArray[np.uint8]) -> list[int]:
    """Pixels of each value 0..255 of an (H, W) uint8 id map, exact ints. Pillow's histogram on the array's own
    memory: ~9 ms at 12 MP where ``np.bincount`` (which widens to int64 first) took ~47 ms."""
    import numpy as np
    from PIL import Image

    a = np.ascontiguousarray(ids, dtype=np.uint8)
    counts: list[int] = Image.frombuffer("L", (a.shape[1], a.shape[0]), a, "raw", "L", 0, 1).histogram()
    return counts


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
