"""Would modelling the pitch help? A source-filter vocoder probe for speech runs.

    python -m cmmkit_fsdd.source_filter RUN --judge JUDGE [--split test]

Every factorised decoder measured renders the low mel bands smooth: the harmonics, stripes a few
bands apart that follow the pitch, are averaged away (``cmmkit_fsdd.diagnose``: the recording's
lowest 20 bands under a decode restore the digit). Statistical parametric speech synthesis met the
same averaging and answered it by modelling a smooth spectral envelope and the pitch (F0) apart, and
letting the vocoder draw the harmonics. This probe measures what that would buy before building it:
it voices log-mel spectrograms with a harmonic-plus-noise excitation at a given F0, shaped by the
spectrogram as an envelope, and scores the WAVs with the speech judge, beside Griffin-Lim on the
same spectrograms:

- real recordings, and real recordings blurred over 5 mel bands (an envelope without harmonics);
- the run's posterior decodes (a recording's own z) and prior-mean decodes (noise 0), voiced with
  the recording's own F0 (what a model that generated F0 as well as the recording has it could reach)
  and with a constant F0 (the speaker's median: a monotone voice).

The F0 tracker is a plain normalised autocorrelation per analysis frame (60-400 Hz: the shortest lag
whose peak is within 10% of the highest; voiced where that peak exceeds 0.5 and the frame is within 30
dB of the loudest). The tracker and the vocoder are :mod:`cmmkit_fsdd.pitch`'s, which
``pair.x.vocoder=source_filter`` uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from cmmkit_fsdd.diagnose import judge_audio, load_probe, print_report
from cmmkit_fsdd.pitch import pitch_track, synthesise

__all__ = ["pitch_track", "probe", "synthesise"]  # the tracker and vocoder live in cmmkit_fsdd.pitch


@torch.no_grad()
def probe(run: Any, listener: Any, data: Any, split: str = "test") -> dict[str, tuple[float, float]]:
    """(digit, speaker) accuracy of each rendering listed in the module docstring."""
    torch.manual_seed(0)
    model, x_mod = run.model.eval(), run.x
    part = data.splits[split]
    waveforms, y = part.x, part.y
    analysis = x_mod.analysis
    f0, voiced = pitch_track(waveforms)
    real = analysis(waveforms)
    blur = F.avg_pool2d(real.unsqueeze(1), (5, 1), stride=1, padding=(2, 0), count_include_pad=False).squeeze(1)
    prepared = x_mod.prepare(waveforms)
    q, p = model.posterior(prepared, y), model.prior(y)
    posterior = x_mod.unnormalise(model.decoder.generate(q.mu, 0.0))
    prior = x_mod.unnormalise(model.decoder.generate(p.mu, 0.0))
    median = torch.stack([f0[i][voiced[i] > 0].median() if voiced[i].any() else f0.new_tensor(120.0)
                          for i in range(len(f0))])
    spk = run.y.speaker_class(y) if run.y.with_speaker else torch.zeros(len(y), dtype=torch.long)
    monotone = torch.stack([median[spk == s].median() for s in spk]).unsqueeze(1).expand_as(f0)

    def gl(log_mel: torch.Tensor) -> torch.Tensor:
        return analysis.invert(log_mel, x_mod.options.griffin_lim_iterations)

    def sf(log_mel: torch.Tensor, pitch: torch.Tensor = f0) -> torch.Tensor:
        return synthesise(log_mel, pitch, voiced, analysis)

    renderings = {
        "real, Griffin-Lim": gl(real), "real, source-filter (own F0)": sf(real),
        "real blurred over 5 bands, Griffin-Lim": gl(blur), "real blurred over 5 bands, source-filter (own F0)": sf(blur),
        "posterior decode, Griffin-Lim": gl(posterior),
        "posterior decode, source-filter (the recording's F0)": sf(posterior),
        "posterior decode, source-filter (the speaker's median F0)": sf(posterior, monotone),
        "prior mean decode, Griffin-Lim": gl(prior),
        "prior mean decode, source-filter (the recording's F0)": sf(prior),
    }
    return {name: judge_audio(run, listener, audio, y) for name, audio in renderings.items()}


def check_run(run: Any) -> None:
    """Refuse a pitched run: the probe asks what modelling the pitch would buy a run that does not,
    and a pitched run's x (a time-normalised one's time axis too) is not the plain spectrogram it voices."""
    if run.x.options.vocoder != "griffin_lim":
        raise SystemExit(f"{run.path}: this probe is for runs without the pitch (pair.x.vocoder=griffin_lim); this "
                         f"run has vocoder={run.x.options.vocoder}. For a pitched run, python -m cmmkit_fsdd.diagnose "
                         "scores its decodes voiced at the recording's F0 and at their own")


def main(argv: list[str] | None = None) -> int:
    run, listener, data, split = load_probe(__doc__.split("\n\n")[0], argv)
    check_run(run)
    print_report(probe(run, listener, data, split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
