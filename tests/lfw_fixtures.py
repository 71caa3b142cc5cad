"""A tiny LFW in the exact official formats, for tests that must not need the real data.

Why: the real files are 150 MB and absent on most machines; tests need the same layout (zip
members ``lfwcrop_color/faces/<Name>_<NNNN>.ppm``, binary P6 64x64 faces, ``lfw_attributes.txt``
with the real 73 column names) plus the real data's quirks: rows whose face is missing and faces
without an attribute row. Faces are drawn from a few attributes so a model can learn something.
"""

from __future__ import annotations

import builtins
import zipfile
from pathlib import Path

import numpy as np

#: The 73 attribute names of ``lfw_attributes.txt``, in the official column order.
ATTRIBUTE_NAMES: list[str] = [
    "Male", "Asian", "White", "Black", "Baby", "Child", "Youth", "Middle Aged", "Senior", "Black Hair",
    "Blond Hair", "Brown Hair", "Bald", "No Eyewear", "Eyeglasses", "Sunglasses", "Mustache", "Smiling",
    "Frowning", "Chubby", "Blurry", "Harsh Lighting", "Flash", "Soft Lighting", "Outdoor", "Curly Hair",
    "Wavy Hair", "Straight Hair", "Receding Hairline", "Bangs", "Sideburns", "Fully Visible Forehead",
    "Partially Visible Forehead", "Obstructed Forehead", "Bushy Eyebrows", "Arched Eyebrows", "Narrow Eyes",
    "Eyes Open", "Big Nose", "Pointy Nose", "Big Lips", "Mouth Closed", "Mouth Slightly Open",
    "Mouth Wide Open", "Teeth Not Visible", "No Beard", "Goatee", "Round Jaw", "Double Chin", "Wearing Hat",
    "Oval Face", "Square Face", "Round Face", "Color Photo", "Posed Photo", "Attractive Man",
    "Attractive Woman", "Indian", "Gray Hair", "Bags Under Eyes", "Heavy Makeup", "Rosy Cheeks", "Shiny Skin",
    "Pale Skin", "5 o' Clock Shadow", "Strong Nose-Mouth Lines", "Wearing Lipstick", "Flushed Face",
    "High Cheekbones", "Brown Eyes", "Wearing Earrings", "Wearing Necktie", "Wearing Necklace",
]
assert len(ATTRIBUTE_NAMES) == 73

_FIRST = ["Aaron", "Jean-Pierre", "Maria", "Li", "Kofi", "Ana Paula", "Yao", "Gloria", "Abdel", "Ingrid"]
_LAST = ["Eckhart", "Raffarin", "Soto", "Peng", "Annan", "Macapagal-Arroyo", "Ming", "Estefan", "Nasser", "Berg"]
_ZIP_TIME = (2009, 1, 1, 0, 0, 0)
_A = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}


def _key(person: str, imagenum: int) -> str:
    return f"{person.replace(' ', '_')}_{imagenum:04d}"


def draw_face(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 64x64 RGB face whose colours and shapes follow a few attributes (positive = present)."""
    on = lambda name: values[_A[name]] > 0
    img = np.empty((64, 64, 3), np.float32)
    img[:] = (40, 90, 140) if on("Outdoor") else (120, 120, 120)  # background
    yy, xx = np.mgrid[:64, :64]
    skin = (90, 60, 45) if on("Black") else (225, 190, 160) if on("White") else (200, 160, 110)
    face = ((yy - 34) / 24.0) ** 2 + ((xx - 32) / (20.0 if on("Chubby") else 16.0)) ** 2 <= 1
    img[face] = skin
    hair = (20, 20, 20) if on("Black Hair") else (230, 200, 90) if on("Blond Hair") else (110, 70, 40)
    if not on("Bald"):
        img[(yy < 18) & face | (yy < 12) & (abs(xx - 32) < 18)] = hair
    eye_colour = (10, 10, 10) if on("Sunglasses") or on("Eyeglasses") else (60, 40, 30)
    for cx in (24, 40):
        img[27:31, cx - 3:cx + 4] = eye_colour
    if on("Eyeglasses") or on("Sunglasses"):
        img[28, 20:45] = (10, 10, 10)
    width = 9 if on("Smiling") else 5
    img[46:48 + (2 if on("Mouth Wide Open") else 0), 32 - width:32 + width + 1] = (170, 40, 50)
    if on("Male") and on("Mustache"):
        img[43:45, 26:39] = hair
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ppm_bytes(image: np.ndarray) -> bytes:
    """Binary P6 PPM exactly as lfwcrop writes it: ``P6\\n64 64\\n255\\n`` then RGB bytes."""
    h, w, _ = image.shape
    return f"P6\n{w} {h}\n255\n".encode() + np.ascontiguousarray(image, np.uint8).tobytes()


def make_lfw_fixture(
    folder: Path,
    n_people: int = 8,
    *,
    zip: bool = True,
    missing: int = 1,
    seed: int = 0,
    rows: int = 40,
    real_valued: bool = True,
) -> dict:
    """Write a small LFW (faces + ``lfw_attributes.txt``) into ``folder``; return paths and counts.

    Keys of the result: ``folder``, ``attributes``, ``zip`` (or None), ``faces_dir`` (or None), ``rows``,
    ``kept``, ``keys`` (kept face keys in file order), ``missing`` ((line, person, imagenum) of rows
    without a face), ``extra`` (face keys without a row), ``values`` (float32 (rows, 73) as written),
    ``faces`` (uint8 (kept, 64, 64, 3) in ``keys`` order), ``names``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_people = max(1, min(n_people, rows))
    people = sorted({f"{_FIRST[i % len(_FIRST)]} {_LAST[(i * 3 + i // len(_FIRST)) % len(_LAST)]}" for i in range(n_people)})
    while len(people) < n_people:  # name collisions for large n_people: add a distinct suffix
        people = sorted(set(people) | {f"Person {chr(65 + len(people) % 26)}{len(people)}"})
    owners = sorted(rng.permutation(np.arange(rows) % n_people).tolist())
    counts: dict[str, int] = {}
    table: list[tuple[str, int]] = []
    for owner in owners:
        person = people[owner]
        counts[person] = counts.get(person, 0) + 1
        table.append((person, counts[person]))
    if real_valued:
        values = rng.normal(0.0, 1.2, (rows, 73))
        cells = [[f"{v:.12g}" for v in row] for row in values]
    else:
        values = np.where(rng.random((rows, 73)) < 0.4, 1.0, -1.0)
        cells = [[str(int(v)) for v in row] for row in values]
    parsed = np.array(cells, dtype=np.float32)
    missing_rows = set(np.linspace(1, rows - 2, missing).round().astype(int).tolist()) if missing else set()
    extra = [(people[0], counts[people[0]] + 1), (people[-1], counts[people[-1]] + 1)]

    text = [f"# {rows} images (cmmkit test fixture in the official lfw_attributes.txt layout)",
            "\t".join(["#", "person", "imagenum", *ATTRIBUTE_NAMES])]
    text += ["\t".join([p, str(n), *c]) for (p, n), c in builtins.zip(table, cells)]
    attributes = folder / "lfw_attributes.txt"
    attributes.write_text("\n".join(text) + "\n", encoding="utf-8")

    files: dict[str, bytes] = {}
    kept_keys, kept_faces, missing_info = [], [], []
    for i, (person, num) in enumerate(table):
        image = draw_face(parsed[i], rng)
        if i in missing_rows:
            missing_info.append((i + 3, person, num))
            continue
        kept_keys.append(_key(person, num))
        kept_faces.append(image)
        files[_key(person, num)] = ppm_bytes(image)
    for person, num in extra:
        files[_key(person, num)] = ppm_bytes(draw_face(rng.normal(0, 1, 73), rng))

    zip_path = faces_dir = None
    if zip:
        zip_path = folder / "lfwcrop_color.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(zipfile.ZipInfo("lfwcrop_color/faces/", _ZIP_TIME), b"")
            for key in sorted(files):
                archive.writestr(zipfile.ZipInfo(f"lfwcrop_color/faces/{key}.ppm", _ZIP_TIME), files[key],
                                 compress_type=zipfile.ZIP_DEFLATED)
    else:
        faces_dir = folder / "lfwcrop_color" / "faces"
        faces_dir.mkdir(parents=True, exist_ok=True)
        for key, data in files.items():
            (faces_dir / f"{key}.ppm").write_bytes(data)
    return {
        "folder": folder, "attributes": attributes, "zip": zip_path, "faces_dir": faces_dir,
        "rows": rows, "kept": len(kept_keys), "keys": kept_keys, "missing": missing_info,
        "extra": sorted(_key(p, n) for p, n in extra), "values": parsed,
        "faces": np.stack(kept_faces) if kept_faces else np.zeros((0, 64, 64, 3), np.uint8),
        "names": list(ATTRIBUTE_NAMES),
    }
