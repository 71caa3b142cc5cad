"""Use cmmkit as a library: list pairs, load a trained run, generate faces from attributes.

    python examples/library_generate.py runs/lfw_faces_attrs-cmma-YYYYMMDD-HHMMSS [out.png]

Any run folder written by `cmmkit train --pair lfw_faces_attrs` works.
"""

from __future__ import annotations

import sys

import torch
from torchvision.transforms.functional import pil_to_tensor

import cmmkit
from cmmkit.images import save_grid


def main(run_dir: str, out: str = "library_faces.png") -> None:
    print("installed pairs:", ", ".join(cmmkit.list_pairs()))
    run = cmmkit.load_run(run_dir)
    print(f"loaded {run.config.model.name} on {run.config.pair.name}, trained {run.meta.get('epoch')} epochs")
    # Fig. 6 of the paper in miniature: the four Male/Asian combinations, with and without eyeglasses.
    conditions = []
    for male in (-1, 1):
        for asian in (1, -1):
            base = {"Male": male, "Asian": asian, "White": -asian}
            conditions += [base, {**base, "Eyeglasses": 1, "No Eyewear": -1}, {**base, "Mouth Slightly Open": 1}]
    faces = run.generate(conditions)  # PIL images, noise 0 (the prior means, as in §4.5)
    save_grid(torch.stack([pil_to_tensor(f) for f in faces]), out, nrow=3)
    print(f"wrote {out}: rows Female Asian, Female not Asian, Male Asian, Male not Asian; "
          "columns no change, eyeglasses, mouth open")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(*sys.argv[1:3])
