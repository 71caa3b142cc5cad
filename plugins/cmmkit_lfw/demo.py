"""What ``cmmkit demo`` shows for LFW: the 73 attributes in groups, and test faces to pick by person.

The groups follow what an attribute is about (Kumar et al. name them the same way): who the person
is, hair, eyewear, facial hair, expression, the face's shape and skin, what they wear, and how the
photo was taken. Every attribute is in exactly one group (tested).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cmmkit.api import DataError, Example, PairDemo, resolve_dataset_dir

GROUPS: dict[str, tuple[str, ...]] = {
    "sex / ethnicity / age": ("Male", "Asian", "White", "Black", "Indian", "Baby", "Child", "Youth",
                              "Middle Aged", "Senior", "Attractive Man", "Attractive Woman"),
    "hair": ("Black Hair", "Blond Hair", "Brown Hair", "Gray Hair", "Bald", "Curly Hair", "Wavy Hair",
             "Straight Hair", "Receding Hairline", "Bangs", "Sideburns"),
    "eyewear": ("No Eyewear", "Eyeglasses", "Sunglasses"),
    "facial hair": ("Mustache", "No Beard", "Goatee", "5 o' Clock Shadow"),
    "expression": ("Smiling", "Frowning", "Mouth Closed", "Mouth Slightly Open", "Mouth Wide Open",
                   "Teeth Not Visible", "Eyes Open", "Narrow Eyes"),
    "face shape and skin": ("Chubby", "Double Chin", "Round Jaw", "Oval Face", "Square Face", "Round Face",
                            "High Cheekbones", "Big Nose", "Pointy Nose", "Big Lips", "Bushy Eyebrows",
                            "Arched Eyebrows", "Strong Nose-Mouth Lines", "Bags Under Eyes", "Brown Eyes",
                            "Fully Visible Forehead", "Partially Visible Forehead", "Obstructed Forehead",
                            "Rosy Cheeks", "Shiny Skin", "Pale Skin", "Flushed Face"),
    "accessories and makeup": ("Wearing Hat", "Wearing Earrings", "Wearing Necktie", "Wearing Necklace",
                               "Heavy Makeup", "Wearing Lipstick"),
    "image quality": ("Blurry", "Harsh Lighting", "Flash", "Soft Lighting", "Outdoor", "Color Photo",
                      "Posed Photo"),
}


def demo_spec(config: Any, data_dir: Path | None) -> PairDemo:
    """The groups, and (when the faces and attribute file are at hand) the test faces by person."""
    return PairDemo(groups=GROUPS, examples=lambda: test_faces(config, data_dir))


def test_faces(config: Any, data_dir: Path | None) -> list[Example]:
    """The test split's faces (``Person Name 0003``, with their attribute row) sorted by person, then
    the faces that have no attribute row (``... (no attributes)``, Fig. 10). Never downloads;
    DataError when the data is not there."""
    from cmmkit_lfw.data import (
        FaceSource,
        face_key,
        faces_without_attributes,
        read_attributes_cached,
        read_ppm,
        split_indices,
    )

    folder, _ = resolve_dataset_dir("lfw", data_dir)
    path = folder / config.attributes_file
    if not path.is_file():
        raise DataError(f"no attribute file at {path}")
    table, _ = read_attributes_cached(path)
    source = FaceSource.open(folder)
    present = source.keys()
    rows = [r for r, (p, n) in enumerate(zip(table.people, table.imagenums)) if face_key(p, n) in present]
    test = split_indices(len(rows), config.train_size, config.val_size)["test"]
    lock = threading.Lock()  # one zip handle, read from the server's threads

    def face(key: str) -> Image.Image:
        with lock:
            data = source.read(key)
        return Image.fromarray(read_ppm(data, f"{source.describe()}:{key}"))

    def attributes(row: int) -> dict[str, float]:
        values = table.values[row]
        if config.binarize:
            values = np.where(values > 0, 1.0, -1.0)
        return dict(zip(table.names, (float(v) for v in values)))

    def known(row: int) -> Example:
        key = face_key(table.people[row], table.imagenums[row])
        return Example(f"{table.people[row]} {table.imagenums[row]:04d}", lambda: (face(key), attributes(row)))

    def unknown(key: str) -> Example:
        return Example(f"{key[:-5].replace('_', ' ')} {key[-4:]} (no attributes)", lambda: (face(key), None))

    examples = sorted((known(rows[i]) for i in test), key=lambda e: e.label)
    return examples + [unknown(k) for k in faces_without_attributes(source, table)]
