"""Score WAV files with speech judges: the honest ``speech_judge`` and, for comparison, the older
log-mel ``digit_classifier``, on the same files.

    python -m cmmkit_fsdd.compare_judges RUN/judged_speech/test --judge runs/judge --judge runs/oldjudge

Each sub-folder of the given folder (``real``... as written by ``cmmkit evaluate --judge``) or the
folder itself is scored; the digit (and speaker) a file should carry is read from its name
(``<index>_<digit word>[_<speaker>].wav`` as ``digit_accuracy`` writes them, or the dataset's
``<digit>_<speaker>_<index>.wav``). Prints one line per folder and judge, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import torch

from cmmkit_fsdd.data import NAME
from cmmkit_fsdd.words import DIGITS

_WRITTEN = re.compile(r"[0-9]+_([a-z]+)(?:_([a-z]+))?\.wav")


def labels_of(path: Path) -> tuple[int, str | None] | None:
    """(digit, speaker or None) a file should carry, from its name; None when the name says nothing."""
    m = _WRITTEN.fullmatch(path.name)
    if m and m.group(1) in DIGITS:
        return DIGITS.index(m.group(1)), m.group(2)
    m = NAME.fullmatch(path.name)
    if m:
        return int(m.group(1)), m.group(2).lower()
    return None


@torch.no_grad()
def score(judge: Any, paths: list[Path]) -> dict[str, Any]:
    """Digit (and speaker) accuracy of one judge run on ``paths``."""
    from cmmkit_fsdd.listener import SpeechJudge

    model = judge.model.eval()
    labelled = [(p, labels_of(p)) for p in paths]
    labelled = [(p, lab) for p, lab in labelled if lab is not None]
    digits = torch.tensor([lab[0] for _, lab in labelled])
    audio = SpeechJudge.waveforms([p for p, _ in labelled])
    out: dict[str, Any] = {"files": len(labelled)}
    if isinstance(model, SpeechJudge):
        digit_logits, speaker_logits = model.logits(audio)
        if speaker_logits is not None and all(lab[1] in model.speakers for _, lab in labelled):
            speakers = torch.tensor([model.speakers.index(lab[1]) for _, lab in labelled])
            out["speaker_accuracy"] = float((speaker_logits.argmax(-1) == speakers).float().mean())
    else:  # the old digit_classifier: cmmkit's own log-mel features, normalised with its training statistics
        digit_logits = model.logits(model.x.prepare(audio))
    out["digit_accuracy"] = float((digit_logits.argmax(-1) == digits).float().mean())
    return out


def main(argv: list[str] | None = None) -> int:
    from cmmkit.api import load_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--judge", action="append", required=True, help="judge run folder (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.folder.iterdir() if p.is_dir()) or [args.folder]
    results: dict[str, dict[str, Any]] = {}
    for j in args.judge:
        judge = load_run(j, device="cpu")
        for folder in folders:
            paths = sorted(folder.glob("*.wav"))
            if paths:
                results.setdefault(folder.name, {})[f"{judge.model.name}:{j}"] = score(judge, paths)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        for folder, by_judge in results.items():
            for name, r in by_judge.items():
                extra = f", speaker {r['speaker_accuracy']:.3f}" if "speaker_accuracy" in r else ""
                print(f"{folder:>10}  {name:<40} digit {r['digit_accuracy']:.3f}{extra}  ({r['files']} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
