"""Read LFW crop faces and Kumar et al. attributes in their official formats.

Why: the LFW pair trains on (face, 73 attributes) rows joined by person and image number. The
official files are a zip of 64x64 binary PPMs and a tab-separated attribute table; both are read
here with precise errors (file, line, field, what was expected), faces are decoded once into a
memory-mapped ``.npy`` cache, and rows whose face is missing are reported rather than fatal.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cmmkit.api import DataError, atomic_path, no_bar

ATTRIBUTE_COUNT = 73
FACE_SHAPE = (64, 64, 3)
ZIP_NAME = "lfwcrop_color.zip"
_FIELDS = ATTRIBUTE_COUNT + 2


@dataclass
class AttributeTable:
    """Rows of an attribute file, in file order; ``lines`` are 1-based line numbers for messages."""

    names: list[str]
    people: list[str]
    imagenums: list[int]
    values: np.ndarray
    lines: list[int]
    path: Path | None = None


def read_attributes(path: Path) -> AttributeTable:
    """Parse an official ``lfw_attributes.txt`` (comment line, ``#``-header, tab-separated rows)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read attribute file {path} as UTF-8 text: {exc}") from exc
    all_lines = text.splitlines()
    if not any(line.strip() for line in all_lines):
        raise DataError(f"attribute file {path} is empty; expected the official lfw_attributes.txt layout")
    if len(all_lines) < 2 or not all_lines[0].startswith("#"):
        raise DataError(
            f"{path}:1: expected a comment line starting with '#' followed by the header line "
            f"'#<TAB>person<TAB>imagenum<TAB><{ATTRIBUTE_COUNT} attribute names>'"
        )
    header = all_lines[1]
    fields = [f.strip() for f in header.lstrip("#").strip().split("\t")]
    if not header.startswith("#") or fields[:2] != ["person", "imagenum"] or len(fields) != _FIELDS:
        raise DataError(
            f"{path}:2: expected the header '#<TAB>person<TAB>imagenum<TAB><{ATTRIBUTE_COUNT} attribute names>', "
            f"found {len(fields)} fields starting {header[:60]!r}"
        )
    names = fields[2:]
    people: list[str] = []
    imagenums: list[int] = []
    raw: list[list[str]] = []
    lines: list[int] = []
    seen: dict[tuple[str, int], int] = {}
    for number, line in enumerate(all_lines[2:], start=3):
        if not line.strip():
            continue
        parts = line.rstrip().split("\t")
        if len(parts) != _FIELDS:
            raise DataError(
                f"{path}:{number}: expected {_FIELDS} tab-separated fields (person, imagenum, "
                f"{ATTRIBUTE_COUNT} values), found {len(parts)}"
            )
        person = parts[0].strip()
        try:
            imagenum = int(parts[1])
        except ValueError:
            raise DataError(f"{path}:{number}: imagenum (field 2) must be an integer, found {parts[1]!r}") from None
        if (person, imagenum) in seen:
            raise DataError(f"{path}:{number}: duplicate row for {person} {imagenum} (first on line {seen[person, imagenum]})")
        seen[person, imagenum] = number
        people.append(person)
        imagenums.append(imagenum)
        raw.append(parts[2:])
        lines.append(number)
    if not raw:
        raise DataError(f"attribute file {path} has a header but no rows")
    try:
        values = np.array(raw, dtype=np.float32)
    except ValueError:  # slow path only to locate the bad cell
        for row, col in ((r, c) for r in range(len(raw)) for c in range(ATTRIBUTE_COUNT)):
            try:
                float(raw[row][col])
            except ValueError:
                raise DataError(f"{path}:{lines[row]}: value for attribute {names[col]!r} (field {col + 3}) "
                                f"must be a number, found {raw[row][col]!r}") from None
        raise
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}:{lines[row]}: value for attribute {names[col]!r} is not finite ({raw[row][col]!r})")
    return AttributeTable(names, people, imagenums, values, lines, path)


@functools.lru_cache(maxsize=2)
def read_attributes_cached(path: Path) -> tuple[AttributeTable, dict[tuple[str, int], int]]:
    """An attribute file and its row of each (person, imagenum), read once per process."""
    table = read_attributes(path)
    return table, {(p, n): i for i, (p, n) in enumerate(zip(table.people, table.imagenums))}


def read_ppm(data: bytes, source: str) -> np.ndarray:
    """Decode a binary P6 PPM with maxval 255 to an ``(H, W, 3)`` uint8 array. Pillow parses the
    header (netpbm rules: comments, any whitespace) and decodes the pixels; this adds the checks
    lfwcrop's faces must pass and errors that name ``source``."""
    if data[:2] != b"P6":
        raise DataError(f"{source}: not a binary PPM (expected magic 'P6', found {data[:2]!r})")
    try:
        image = Image.open(io.BytesIO(data), formats=["PPM"])
    except (ValueError, SyntaxError, OSError) as exc:
        if "EOF" in str(exc):
            raise DataError(f"{source}: PPM header ends early; expected width, height and maxval") from None
        raise DataError(f"{source}: bad PPM header: {exc}") from None
    decoder, _, offset, args = image.tile[0][:4]  # Pillow picks the "raw" decoder only for maxval 255
    maxval = 255 if decoder == "raw" else int(args[-1])
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DataError(f"{source}: bad PPM size {width}x{height}")
    if maxval != 255:
        raise DataError(f"{source}: PPM maxval must be 255 (8-bit), found {maxval}")
    expected, found = width * height * 3, len(data) - offset
    if found < expected:
        raise DataError(f"{source}: expected {expected} bytes of pixel data, found {found}")
    return np.array(image, dtype=np.uint8)  # P6 is RGB: (H, W, 3), a writable copy


def face_key(person: str, imagenum: int) -> str:
    """The lfwcrop file stem of a face: ``face_key("Aaron Eckhart", 1) == "Aaron_Eckhart_0001"``."""
    return f"{person.replace(' ', '_')}_{imagenum:04d}"


class FaceSource:
    """Faces by key, from the official zip or an extracted ``faces/`` folder."""

    def __init__(self, path: Path, members: dict[str, str], is_zip: bool) -> None:
        self.path = path
        self._members = members
        self._is_zip = is_zip
        self._zip: zipfile.ZipFile | None = None  # opened on first read; not shared across processes

    @classmethod
    def open(cls, folder: Path) -> FaceSource:
        """Open ``folder/lfwcrop_color.zip``, else ``folder/lfwcrop_color/faces/``, else ``folder/faces/``."""
        folder = Path(folder)
        zip_path = folder / ZIP_NAME
        if zip_path.is_file():
            try:
                with zipfile.ZipFile(zip_path) as archive:
                    names = archive.namelist()
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{zip_path} is not a readable zip ({exc}); delete it to download it again") from exc
            members = {}
            for name in names:
                parts = name.split("/")
                if len(parts) >= 2 and parts[-2] == "faces" and parts[-1].endswith(".ppm"):
                    members[parts[-1][:-4]] = name
            if not members:
                raise DataError(f"{zip_path} holds no faces: expected members lfwcrop_color/faces/<Person_Name>_<NNNN>.ppm")
            return cls(zip_path, members, True)
        for faces in (folder / "lfwcrop_color" / "faces", folder / "faces"):
            if faces.is_dir():
                members = {e.name[:-4]: e.path for e in os.scandir(faces) if e.name.endswith(".ppm") and e.is_file()}
                if not members:
                    raise DataError(f"{faces} holds no .ppm faces; expected <Person_Name>_<NNNN>.ppm files")
                return cls(faces, members, False)
        raise DataError(
            f"no LFW faces in {folder}: looked for {zip_path}, {folder / 'lfwcrop_color' / 'faces'}/ and "
            f"{folder / 'faces'}/. Put the official {ZIP_NAME} there (or its extracted lfwcrop_color/ folder)."
        )

    def keys(self) -> set[str]:
        """Keys (``Person_Name_NNNN``) of all faces present."""
        return set(self._members)

    def member(self, key: str) -> str:
        """The zip member name or file path of ``key`` (for messages)."""
        return self._members[key]

    def read(self, key: str) -> bytes:
        """Raw PPM bytes of the face ``key``."""
        name = self._members[key]
        try:
            if not self._is_zip:
                return Path(name).read_bytes()
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            return self._zip.read(name)
        except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:  # zlib.error: a corrupted deflate stream
            raise DataError(f"cannot read face {self.describe()}:{name}: {exc}") from exc

    def close(self) -> None:
        """Close the zip file, if one was opened."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def describe(self) -> str:
        """Where the faces come from."""
        return str(self.path)

    def fingerprint(self) -> str:
        """Cheap identity of the source: zip path+size+mtime, or the folder's (name, size, mtime) listing."""
        if self._is_zip:
            stat = self.path.stat()
            return f"zip:{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        digest = hashlib.sha256()
        for key in sorted(self._members):
            stat = os.stat(self._members[key])
            digest.update(f"{key}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return f"dir:{self.path.resolve()}:{digest.hexdigest()}"


@dataclass
class LFWData:
    """Faces joined to attribute rows; ``missing`` holds ``(line, person, imagenum)`` of rows left out."""

    faces: np.ndarray
    attributes: np.ndarray
    names: list[str]
    people: list[str]
    imagenums: list[int]
    missing: list[tuple[int, str, int]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def _cache_name(source: FaceSource, table: AttributeTable, keys: list[str]) -> str:
    attr: dict[str, object] = {"values": hashlib.sha256(table.values.tobytes()).hexdigest()}
    if table.path is not None and Path(table.path).exists():
        stat = Path(table.path).stat()
        attr.update(path=str(Path(table.path).resolve()), size=stat.st_size, mtime=stat.st_mtime_ns)
    blob = json.dumps({"v": 1, "source": source.fingerprint(), "attributes": attr, "keys": keys})
    return f"lfw-faces-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npy"


def _open_cache(path: Path, count: int) -> np.ndarray | None:
    """The cached faces, or None if absent, unreadable or of the wrong shape (then rebuilt)."""
    try:
        faces = np.load(path, mmap_mode="c")  # copy-on-write: writable for torch, the file never changes
    except (OSError, ValueError):
        return None
    return faces if faces.dtype == np.uint8 and faces.shape == (count, *FACE_SHAPE) else None


def load_faces(source: FaceSource, table: AttributeTable, cache_dir: Path, *, progress: bool = True) -> LFWData:
    """Join attribute rows to faces by key (file order); decode once into a memory-mapped ``.npy`` cache."""
    present = source.keys()
    kept: list[int] = []
    missing: list[tuple[int, str, int]] = []
    for row, (person, num) in enumerate(zip(table.people, table.imagenums)):
        if face_key(person, num) in present:
            kept.append(row)
        else:
            missing.append((table.lines[row], person, num))
    if not kept:
        raise DataError(
            f"none of the {len(table.people)} attribute rows of {table.path} has a face in {source.describe()}; "
            f"are the attribute file and the faces from the same dataset?"
        )
    keys = [face_key(table.people[r], table.imagenums[r]) for r in kept]
    cache_dir = Path(cache_dir)
    cache_path = cache_dir / _cache_name(source, table, keys)
    faces = _open_cache(cache_path, len(keys))
    if faces is None:
        with atomic_path(cache_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(keys), *FACE_SHAPE))
            for i, key in enumerate(tqdm(keys, desc="decoding LFW faces", unit="face", disable=no_bar(progress), leave=False)):
                image = read_ppm(source.read(key), f"{source.describe()}:{source.member(key)}")
                if image.shape != FACE_SHAPE:
                    raise DataError(
                        f"{source.describe()}:{source.member(key)}: expected a 64x64 face, found "
                        f"{image.shape[1]}x{image.shape[0]}"
                    )
                out[i] = image
            out.flush()
            del out
        faces = np.load(cache_path, mmap_mode="c")
    index = np.asarray(kept, dtype=np.int64)
    return LFWData(
        faces=faces,
        attributes=np.ascontiguousarray(table.values[index], dtype=np.float32),
        names=list(table.names),
        people=[table.people[r] for r in kept],
        imagenums=[table.imagenums[r] for r in kept],
        missing=missing,
        keys=keys,
    )


def faces_without_attributes(source: FaceSource, table: AttributeTable) -> list[str]:
    """Keys of faces present in ``source`` that have no attribute row (sorted)."""
    attributed = {face_key(p, n) for p, n in zip(table.people, table.imagenums)}
    return sorted(source.keys() - attributed)


def split_indices(n: int, train: int = 10_000, val: int = 1_000) -> dict[str, range]:
    """The paper's split in file order: first ``train`` rows, next ``val``, the rest test."""
    if n <= train + val:
        raise DataError(
            f"the LFW split needs more than {train + val} faces ({train} train + {val} validation + a test set), "
            f"found {n}"
        )
    return {"train": range(0, train), "val": range(train, train + val), "test": range(train + val, n)}
