"""Find and read the Free Spoken Digit Dataset (Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset).

Layout: ``recordings/<digit>_<speaker>_<index>.wav`` (8 kHz mono 16-bit). Accepted in the data
folder: ``recordings/`` itself, ``*/recordings/`` one level down (the extracted release zip), the
release zip (read in place, never extracted), or the folder of WAVs itself.

Split by the recording index: 0-4 test (the dataset README's official test set), 5-9 validation
(taken from the README's training range 5-49), 10 and above training (v1.0.10: 50 recordings per
digit and speaker -> 2,400 / 300 / 300).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cmmkit.api import DataError, RemoteFile, no_bar
from cmmkit_fsdd import wav

DATASET = "fsdd"
RELEASE = RemoteFile(
    filename="free-spoken-digit-dataset-1.0.10.zip",
    url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip",
    description="Free Spoken Digit Dataset v1.0.10 release (source archive with recordings/)",
)
NAME = re.compile(r"([0-9])_([A-Za-z]+)_([0-9]+)\.wav")
TEST_INDICES, VAL_INDICES = range(0, 5), range(5, 10)


def split_of(index: int) -> str:
    """'test' (index 0-4), 'val' (5-9) or 'train' (10 and above)."""
    return "test" if index in TEST_INDICES else "val" if index in VAL_INDICES else "train"


@dataclass
class Recordings:
    """Every recording found: its 1 s of samples, log-mel spectrogram and labels, in file-name order."""

    source: str
    log_mel: torch.Tensor  # (N, mels, frames)
    waveforms: torch.Tensor  # (N, NUM_SAMPLES) in [-1, 1), padded with silence or trimmed to 1 s
    digits: list[int]
    speakers: list[str]
    indices: list[int]
    names: list[str]
    skipped: list[str] = field(default_factory=list)  # files not named <digit>_<speaker>_<index>.wav
    trimmed: int = 0  # recordings longer than 1.0 s (cut)


class Source:
    """A folder of WAVs or the release zip; lists and opens the recordings in either."""

    def __init__(self, folder: Path | None = None, archive: Path | None = None) -> None:
        self.folder, self.archive = folder, archive

    def describe(self) -> str:
        return str(self.folder if self.folder is not None else self.archive)

    def read_all(self, progress: bool = False) -> Recordings:
        from tqdm.auto import tqdm

        analysis = wav.MelAnalysis()
        if self.folder is not None:
            entries = sorted((p.name, p) for p in self.folder.iterdir() if p.suffix.lower() == ".wav")
            zf = None
        else:
            try:
                zf = zipfile.ZipFile(self.archive)  # type: ignore[arg-type]
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{self.archive}: not a readable zip ({exc}); delete it to download it again, or "
                                f"replace it with {RELEASE.url}") from None
            entries = sorted((Path(n).name, n) for n in zf.namelist()
                             if n.lower().endswith(".wav") and Path(n).parent.name == "recordings")
        out = Recordings(self.describe(), torch.empty(0), torch.empty(0), [], [], [], [])
        mels, waves = [], []
        try:
            for name, ref in tqdm(entries, desc="reading FSDD", unit="file", disable=no_bar(progress), leave=False):
                match = NAME.fullmatch(name)
                if match is None:
                    out.skipped.append(name)
                    continue
                label = str(ref) if zf is None else f"{self.archive}:{ref}"
                if zf is None:
                    samples = wav.read_wav(ref, label)
                else:
                    with zf.open(ref) as handle:  # type: ignore[arg-type]
                        samples = wav.read_wav(handle, label)
                out.trimmed += int(samples.shape[0] > wav.NUM_SAMPLES)
                waves.append(wav.fix_length(samples))
                mels.append(analysis(waves[-1]))
                out.digits.append(int(match.group(1)))
                out.speakers.append(match.group(2).lower())
                out.indices.append(int(match.group(3)))
                out.names.append(name)
        finally:
            if zf is not None:
                zf.close()
        if not mels:
            raise DataError(f"{self.describe()}: no recordings named <digit>_<speaker>_<index>.wav found")
        out.log_mel, out.waveforms = torch.stack(mels), torch.stack(waves)
        return out


def _wav_names(folder: Path) -> bool:
    return folder.is_dir() and any(NAME.fullmatch(p.name) for p in folder.glob("*.wav"))


def find_source(folder: Path) -> Source | None:
    """The recordings in ``folder`` (see the module docstring for what is accepted), or None."""
    if not folder.is_dir():
        return None
    for candidate in [folder / "recordings", *sorted(folder.glob("*/recordings"))]:
        if candidate.is_dir():
            return Source(folder=candidate)
    if _wav_names(folder):
        return Source(folder=folder)
    zips = sorted(folder.glob("*.zip"), key=lambda p: (p.name != RELEASE.filename, p.name))
    for archive in zips:
        try:
            with zipfile.ZipFile(archive) as zf:
                if any(Path(n).parent.name == "recordings" and n.endswith(".wav") for n in zf.namelist()):
                    return Source(archive=archive)
        except (zipfile.BadZipFile, OSError):
            if archive.name == RELEASE.filename:
                raise DataError(f"{archive}: not a readable zip; delete it to download it again, or replace it "
                                f"with {RELEASE.url}") from None
    return None


def missing_message(folder: Path) -> str:
    return (f"no Free Spoken Digit Dataset recordings found in {folder}: expected recordings/<digit>_<speaker>_"
            f"<index>.wav (also accepted one folder down, or the release zip). Download {RELEASE.url} and put "
            f"the zip (or its extracted folder) in {folder}, or set CMMKIT_DATA to a folder holding "
            f"{DATASET}/recordings/, or pass --data-dir FOLDER")
