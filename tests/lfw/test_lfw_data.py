"""The LFW reading layer: attribute parsing, PPM decoding, face sources, join + cache, split."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cmmkit_lfw import data as lfw
from cmmkit_lfw.data import (
    ATTRIBUTE_COUNT,
    FaceSource,
    face_key,
    faces_without_attributes,
    load_faces,
    read_attributes,
    read_ppm,
    split_indices,
)
from lfw_fixtures import ATTRIBUTE_NAMES, make_lfw_fixture, ppm_bytes

from cmmkit.errors import DataError

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lfw"
HEADER = "\t".join(["#", "person", "imagenum", *ATTRIBUTE_NAMES])


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "lfw_attributes.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(person: str = "Aaron Eckhart", num: str = "1", values: list[str] | None = None) -> str:
    return "\t".join([person, num, *(values or ["0.5"] * ATTRIBUTE_COUNT)])


def test_attributes_parse(tmp_path: Path) -> None:
    fx = make_lfw_fixture(tmp_path, rows=30)
    table = read_attributes(fx["attributes"])
    assert table.names == ATTRIBUTE_NAMES and len(table.names) == ATTRIBUTE_COUNT
    assert table.values.dtype == np.float32 and table.values.shape == (30, ATTRIBUTE_COUNT)
    np.testing.assert_array_equal(table.values, fx["values"])
    assert table.lines == list(range(3, 33))
    assert table.people[0] == "Aaron Eckhart" and table.imagenums[0] == 1


def test_real_values_kept_and_blank_trailing_lines(tmp_path: Path) -> None:
    values = [f"{(i - 36) * 0.123456789:.9f}" for i in range(ATTRIBUTE_COUNT)]
    path = _write(tmp_path, "# 1 images", HEADER, _row(values=values), "", "  ")
    table = read_attributes(path)
    np.testing.assert_allclose(table.values[0], [float(v) for v in values], rtol=1e-6)
    assert table.values[0, 0] == pytest.approx(-4.444444404)


@pytest.mark.parametrize(
    ("lines", "pattern"),
    [
        (["# c", HEADER, _row(), "Aaron Eckhart\t2\t" + "\t".join(["1"] * 38)],
         r"lfw_attributes.txt:4: expected 75 tab-separated fields \(person, imagenum, 73 values\), found 40"),
        (["# c", HEADER, _row(values=["1"] * 4 + ["yes"] + ["1"] * 68)], r":3: value for attribute 'Baby'.*'yes'"),
        (["# c", HEADER, _row(num="one")], r":3: imagenum .* integer, found 'one'"),
        (["# c", "#\tperson\timagenum\tMale\tAsian", _row()], r":2: expected the header"),
        (["# c"], r":1: expected a comment line"),
        ([_row()], r":1: expected a comment line"),
        (["# c", HEADER], r"has a header but no rows"),
        (["# c", HEADER, _row(), _row()], r":4: duplicate row for Aaron Eckhart 1 \(first on line 3\)"),
        (["# c", HEADER, _row(values=["nan"] * 73)], r":3: value for attribute 'Male' is not finite"),
    ],
)
def test_attribute_errors(tmp_path: Path, lines: list[str], pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        read_attributes(_write(tmp_path, *lines))


def test_empty_attribute_file(tmp_path: Path) -> None:
    path = tmp_path / "lfw_attributes.txt"
    path.write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        read_attributes(path)


def test_read_ppm_round_trip_and_header_variants() -> None:
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_ppm(ppm_bytes(image), "x"), image)
    small = image[:2, :3]
    odd = b"P6 # comment\n 3\t\r\n# another\n2 255\n" + small.tobytes() + b"trailing"
    np.testing.assert_array_equal(read_ppm(odd, "odd.ppm"), small)


@pytest.mark.parametrize("header", [b"P6\n%d %d\n255\n", b"P6 %d %d 255 ", b"P6\n# c\n%d\n%d\n255\r"])
def test_read_ppm_gives_the_pixel_bytes_unchanged(header: bytes) -> None:
    """Pillow decodes: the array is exactly the file's RGB bytes, uint8 and writable (as the
    hand-written reader it replaced gave)."""
    rng = np.random.default_rng(2)
    for h, w in ((64, 64), (1, 1), (7, 3)):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes()
        out = read_ppm(header % (w, h) + pixels, "x")
        assert out.dtype == np.uint8 and out.shape == (h, w, 3) and out.flags.writeable
        assert out.tobytes() == pixels


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"P3\n64 64\n255\n", r"face.ppm: not a binary PPM"),
        (b"P6\n64 x\n255\n", r"face.ppm: bad PPM header"),
        (b"P6\n64 64", r"face.ppm: PPM header ends early"),
        (b"P6\n64 64\n65535\n" + bytes(100), r"face.ppm: PPM maxval must be 255"),
        (b"P6\n64 64\n255\n" + bytes(100), r"face.ppm: expected 12288 bytes of pixel data, found 100"),
    ],
)
def test_read_ppm_errors(data: bytes, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        read_ppm(data, "face.ppm")


def test_face_key() -> None:
    assert face_key("Aaron Eckhart", 1) == "Aaron_Eckhart_0001"
    assert face_key("Jean-Pierre Raffarin", 12) == "Jean-Pierre_Raffarin_0012"


@pytest.mark.parametrize("as_zip", [True, False])
def test_face_source(tmp_path: Path, as_zip: bool) -> None:
    fx = make_lfw_fixture(tmp_path, zip=as_zip, missing=2)
    source = FaceSource.open(tmp_path)
    assert source.keys() == set(fx["keys"]) | set(fx["extra"])
    assert source.describe() == str(fx["zip"] if as_zip else fx["faces_dir"])
    np.testing.assert_array_equal(read_ppm(source.read(fx["keys"][0]), "x"), fx["faces"][0])
    assert source.fingerprint() == FaceSource.open(tmp_path).fingerprint()
    table = read_attributes(fx["attributes"])
    assert faces_without_attributes(source, table) == fx["extra"]


def test_face_source_absent_or_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"looked for .*lfwcrop_color.zip"):
        FaceSource.open(tmp_path)
    with zipfile.ZipFile(tmp_path / "lfwcrop_color.zip", "w") as archive:
        archive.writestr("lfwcrop_color/lists/x.txt", "x")
    with pytest.raises(DataError, match="holds no faces"):
        FaceSource.open(tmp_path)


def test_load_faces_join_missing_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx = make_lfw_fixture(tmp_path / "lfw", missing=3, rows=40)
    source = FaceSource.open(tmp_path / "lfw")
    table = read_attributes(fx["attributes"])
    data = load_faces(source, table, tmp_path / "cache", progress=False)
    assert data.faces.shape == (37, 64, 64, 3) and data.faces.dtype == np.uint8
    np.testing.assert_array_equal(data.faces, fx["faces"])
    assert data.missing == fx["missing"] and len(data.missing) == 3
    kept = [i for i, line in enumerate(table.lines) if line not in {m[0] for m in fx["missing"]}]
    np.testing.assert_array_equal(data.attributes, table.values[kept])
    assert data.keys == fx["keys"] and data.names == ATTRIBUTE_NAMES
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".tmp"]

    def no_decode(data: bytes, source: str) -> np.ndarray:
        raise AssertionError("faces were decoded again")

    monkeypatch.setattr(lfw, "read_ppm", no_decode)
    again = load_faces(FaceSource.open(tmp_path / "lfw"), read_attributes(fx["attributes"]), tmp_path / "cache",
                       progress=False)
    assert isinstance(again.faces, np.memmap)
    np.testing.assert_array_equal(again.faces, fx["faces"])


def test_load_faces_rejects_wrong_size(tmp_path: Path) -> None:
    fx = make_lfw_fixture(tmp_path, zip=False, missing=0, rows=5)
    first = fx["faces_dir"] / f"{fx['keys'][0]}.ppm"
    first.write_bytes(ppm_bytes(np.zeros((32, 32, 3), np.uint8)))
    with pytest.raises(DataError, match=rf"{fx['keys'][0]}\.ppm: expected a 64x64 face, found 32x32"):
        load_faces(FaceSource.open(tmp_path), read_attributes(fx["attributes"]), tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_split_indices() -> None:
    split = split_indices(13_142)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (10_000, 1_000, 2_142)
    assert split["val"][0] == 10_000 and split["test"][-1] == 13_141
    assert split_indices(10, train=6, val=2)["test"] == range(8, 10)
    with pytest.raises(DataError, match="more than 11000"):
        split_indices(11_000)


@pytest.mark.realdata
@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"real LFW mirror not found at {MIRROR}")
def test_real_mirror(tmp_path: Path) -> None:
    start = time.perf_counter()
    table = read_attributes(MIRROR / "lfw_attributes_binarized.txt")
    assert len(table.people) == 13_143 and table.names == ATTRIBUTE_NAMES
    assert set(np.unique(table.values).tolist()) == {-1.0, 1.0}
    data = load_faces(FaceSource.open(MIRROR), table, tmp_path, progress=False)
    assert len(data.people) == 13_142 and data.faces.shape == (13_142, 64, 64, 3)
    assert [(p, n) for _, p, n in data.missing] == [("Betsy Coffin", 1)]
    split = split_indices(len(data.people))
    assert [len(split[k]) for k in ("train", "val", "test")] == [10_000, 1_000, 2_142]
    assert time.perf_counter() - start < 30, "parsing + decoding the mirror should take seconds"
    assert 20 < float(data.faces[:100].mean()) < 235  # real photos, not blank

    partial = read_attributes(MIRROR / "lfw_attributes_realvalued_partial.txt")
    assert partial.values.shape == (2_999, ATTRIBUTE_COUNT)
    assert np.any(partial.values != np.round(partial.values))
    assert partial.values.min() < -1 and partial.values.max() > 1
