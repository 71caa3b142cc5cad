"""Fig. 4 of the paper: priors p(z | y) and posteriors q(z | x, y) of a 2-d latent space.

For each run (a latent-variable model trained with ``model.latent_dim=2``), two panels:

(a) the prior p(z | y) of several individuals, each an ellipse whose semi-axes are its standard
    deviations (a circle when they are equal), centred on its mean;
(b) the prior of individual 1 as density contours (1, 2 and 3 standard deviations) with the
    posteriors q(z | x, y) of individuals 1-3 drawn the same way.

It also reports the average posterior standard deviation over the validation split (the paper saw
.04 for CMMA and .036 for a VAE after 5,000 iterations). A VAE has one prior N(0, I) for everyone,
which is what (a) shows for it; CMMA "tilts" that prior towards each individual's y.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from PIL import Image

from cmmkit import bound
from cmmkit.errors import ConfigError
from cmmkit.figures import FigureOptions, load_split, panel_title
from cmmkit.modality import to_device

COLORS = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
          "tab:gray", "tab:olive", "tab:cyan"]


@torch.no_grad()
def latent_stats(run: Any, dataset: Any, n: int, batch: int = 250) -> dict[str, torch.Tensor]:
    """Prior and posterior means and standard deviations (n, 2) of the first n examples."""
    out: dict[str, list[torch.Tensor]] = {"prior_mu": [], "prior_std": [], "post_mu": [], "post_std": []}
    model = run.model
    for start in range(0, n, batch):
        idx = torch.arange(start, min(n, start + batch))
        raw = to_device(dataset.get_batch(idx), run.device)
        b = model.prepare(raw, dequantize=False)
        q, p = bound.posterior_and_prior(model, b["x"], b["y"])
        out["prior_mu"].append(p.mu.cpu())
        out["prior_std"].append(p.std.cpu())
        out["post_mu"].append(q.mu.cpu())
        out["post_std"].append(q.std.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _check(run: Any) -> None:
    from cmmkit.models.latent import LatentModel

    if not isinstance(run.model, LatentModel):
        raise ConfigError(f"fig4: {run.path} is a {run.model.name} run; it needs a latent-variable model "
                          "(cmma, cvae or vae) trained with --set model.latent_dim=2")
    if run.model.y.positional:
        raise ConfigError(f"fig4: {run.path} has a structured latent (one {run.model.config.latent_dim}-d Gaussian "
                          f"per position of its {run.model.y.name} condition); fig4 plots one flat 2-d latent per "
                          "example, so it needs a pair whose condition is a fixed-size vector")
    if run.model.config.latent_dim != 2:
        raise ConfigError(f"fig4: {run.path} has a {run.model.config.latent_dim}-d latent; train one with "
                          "--set model.latent_dim=2 (e.g. cmmkit train --pair ... --set model.latent_dim=2)")


def _ellipse(ax: Any, mu: torch.Tensor, std: torch.Tensor, color: str, k: float = 1.0, **kw: Any) -> None:
    from matplotlib.patches import Ellipse

    ax.add_patch(Ellipse((float(mu[0]), float(mu[1])), 2 * k * float(std[0]), 2 * k * float(std[1]),
                         fill=False, edgecolor=color, **kw))


def _limits(ax: Any, mus: torch.Tensor, stds: torch.Tensor, k: float) -> None:
    """Equal axes holding every ellipse (k standard deviations) with a margin."""
    lo, hi = (mus - k * stds).min(0).values, (mus + k * stds).max(0).values
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.1 + 1e-3
    ax.set_xlim(float(centre[0]) - half, float(centre[0]) + half)
    ax.set_ylim(float(centre[1]) - half, float(centre[1]) + half)
    ax.set_aspect("equal", adjustable="box")


def latent_figure(runs: list[Any], opts: FigureOptions) -> tuple[Image.Image, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for run in runs:
        _check(run)
    count = min(opts.count, len(COLORS))
    fig, axes = plt.subplots(len(runs), 2, figsize=(10, 4.8 * len(runs)), squeeze=False)
    notes = []
    splits: dict[str, Any] = {}  # runs of the same pair settings share one loaded validation split
    for row, run in enumerate(runs):
        run.model.eval()
        key = run.config.pair.model_dump_json() + run.config.data.model_dump_json()
        if key not in splits:
            splits[key] = load_split(run, "val", opts.data_dir)
        val = splits[key]
        stats = latent_stats(run, val, min(len(val), 1000))
        avg = float(stats["post_std"].mean())
        notes.append(f"{panel_title(run)}: average posterior standard deviation {avg:.4f} over "
                     f"{len(stats['post_std'])} validation examples (paper: .04 CMMA, .036 VAE)")
        pick = list(opts.examples or range(count))[:count]
        if max(pick) >= len(stats["prior_mu"]):
            raise ConfigError(f"--examples: the validation split has {len(stats['prior_mu'])} examples")
        a, b = axes[row]
        for i, c in zip(pick, COLORS):
            _ellipse(a, stats["prior_mu"][i], stats["prior_std"][i], c, lw=1.5, label=f"individual {i + 1}")
            a.plot(*stats["prior_mu"][i].tolist(), "+", color=c)
        _limits(a, stats["prior_mu"][pick], stats["prior_std"][pick], 1.2)
        a.set_title(f"(a) p(z|y), radius = std\n{panel_title(run)}", fontsize=9)
        a.legend(fontsize=7, loc="upper right")
        first = pick[0]
        for k in (1, 2, 3):
            _ellipse(b, stats["prior_mu"][first], stats["prior_std"][first], "black", k, lw=1, ls="--",
                     label="prior of individual 1 (1-3 std)" if k == 1 else None)
        shown = pick[:3]
        for i, c in zip(shown, COLORS):
            for k in (1, 2, 3):
                _ellipse(b, stats["post_mu"][i], stats["post_std"][i], c, k, lw=1)
            # posteriors are often far narrower than a line is wide: mark their means too
            b.plot(*stats["post_mu"][i].tolist(), "x", color=c, ms=7, label=f"posterior of individual {i + 1}")
        mus = torch.cat([stats["prior_mu"][[first]], stats["post_mu"][shown]])
        stds = torch.cat([stats["prior_std"][[first]], stats["post_std"][shown]])
        _limits(b, mus, stds, 3.2)
        b.set_title(f"(b) prior of 1, posteriors q(z|x,y) of 1-3\naverage posterior std {avg:.3f}", fontsize=9)
        b.legend(fontsize=7, loc="upper right")
        for ax in (a, b):
            ax.set_xlabel("z1")
            ax.set_ylabel("z2")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB"), notes
