"""Log-mel spectrograms drawn as a labelled PNG grid: the modality's previews and ``save_outputs``,
and the comparison grids of :mod:`cmmkit_fsdd.grid`."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cmmkit_fsdd import wav


def plot_grid(rows: list[list[torch.Tensor]], path: Path, row_labels: list[str] | None = None,
              col_labels: list[str] | None = None, cell_titles: list[list[str]] | None = None,
              title: str | None = None) -> Path:
    """Log-mel spectrograms (mels, frames) drawn as a labelled matplotlib grid (time in s, mel band),
    saved to ``path`` (PNG) atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from cmmkit.api import atomic_write

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols + 0.6, 2.0 * n_rows + 0.4), squeeze=False)
    vmin, vmax = math.log(wav.LOG_FLOOR), max(float(c.max()) for r in rows for c in r)
    seconds = wav.NUM_SAMPLES / wav.SAMPLE_RATE
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            if j >= len(row):
                ax.axis("off")
                continue
            ax.imshow(row[j].numpy(), origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                      extent=(0.0, seconds, 0, row[j].shape[0]))
            ax.tick_params(labelsize=6)
            heading = []
            if i == 0 and col_labels and j < len(col_labels):
                heading.append(col_labels[j])
            if cell_titles:
                heading.append(cell_titles[i][j])
            if heading:
                ax.set_title("\n".join(heading), fontsize=7)
            if j == 0:
                label = row_labels[i] if row_labels and i < len(row_labels) else ""
                ax.set_ylabel(f"{label}\nmel band" if label else "mel band", fontsize=7)
            if i == n_rows - 1:
                ax.set_xlabel("time (s)", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_write(Path(path), "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
