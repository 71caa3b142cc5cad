"""A generated-vs-real spectrogram grid: one column per digit for one speaker; the first row holds
real test recordings, then for each run its speech at noise 0 and (with ``--sampled``) at noise 1.

    python -m cmmkit_fsdd.grid runs/old runs/new --speaker george --sampled -o docs/img/fsdd_grid.png

Every cell is the log-mel spectrogram (cmmkit's analysis) of the WAV a user would get: generated
spectrograms go through ``to_user`` (Griffin-Lim, or the source-filter vocoder of a pitched run) and are analysed again, as a listener hears them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cmmkit_fsdd import wav
from cmmkit_fsdd.data import NAME, find_source
from cmmkit_fsdd.plot import plot_grid
from cmmkit_fsdd.words import DIGITS


def real_row(data_dir: Path, speaker: str, index: int) -> list[torch.Tensor]:
    """Log-mel spectrograms of ``<digit>_<speaker>_<index>.wav``, digits 0-9."""
    from cmmkit.api import resolve_dataset_dir

    folder, _ = resolve_dataset_dir("fsdd", data_dir)
    source = find_source(folder)
    if source is None or source.folder is None:
        raise SystemExit(f"no recordings/ folder under {folder}")
    analysis = wav.MelAnalysis()
    names = {NAME.fullmatch(p.name).groups(): p for p in source.folder.glob("*.wav") if NAME.fullmatch(p.name)}  # type: ignore[union-attr]
    return [analysis(wav.read_wav(names[(str(d), speaker, str(index))])) for d in range(10)]


@torch.no_grad()
def generated_row(run: object, speaker: str, noise: float, seed: int = 0) -> list[torch.Tensor]:
    """Spectrograms of the WAVs generated for the ten digits of ``speaker`` at ``noise``."""
    torch.manual_seed(seed)
    conds = [{"text": d, "speaker": speaker} for d in DIGITS]
    speech = run.generate(conds, noise_scale=noise)  # type: ignore[attr-defined]
    analysis = wav.MelAnalysis()
    return [analysis(s.waveform) for s in speech]


def main(argv: list[str] | None = None) -> int:
    from cmmkit.api import load_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--label", action="append", help="row label per run (default: its folder name)")
    parser.add_argument("--speaker", default="george")
    parser.add_argument("--index", type=int, default=0, help="recording index of the real row (0-4: test)")
    parser.add_argument("--sampled", action="store_true", help="add a noise-1 row per run")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows, labels = [real_row(args.data_dir, args.speaker, args.index)], [f"real ({args.speaker}, test)"]
    for k, path in enumerate(args.runs):
        run = load_run(path, device="cpu")
        name = args.label[k] if args.label and k < len(args.label) else path.name
        rows.append(generated_row(run, args.speaker, 0.0))
        labels.append(f"{name}, noise 0")
        if args.sampled:
            rows.append(generated_row(run, args.speaker, 1.0))
            labels.append(f"{name}, noise 1")
    plot_grid(rows, args.out, row_labels=labels, col_labels=DIGITS)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
