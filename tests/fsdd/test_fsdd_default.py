"""The FSDD `default` preset's CMMA (issue 17): the pitched modality with the source-filter vocoder
and one residual block per decoder resolution, on top of the third round's Laplace likelihood,
warmup-stable-decay and 128-d latent. The other models keep Griffin-Lim (they were not measured
with the pitch).

Why (docs/pairs/fsdd_digits_speech.md, "Fifth round"): over three training seeds the speech judge
recognises the generated test speech far more often with the pitch modelled and the decoder
refined, and the bound's spectrogram term rises.
"""

from __future__ import annotations

from cmmkit.config import build_config


def test_default_cmma_models_the_pitch_with_a_refined_decoder():
    cfg = build_config("fsdd_digits_speech", model="cmma")
    x = cfg.pair.x
    assert (x.vocoder, x.refine_blocks, x.decoder) == ("source_filter", 1, "conv")
    assert (x.likelihood, x.logvar_floor, x.logvar_ceiling) == ("laplace", -6.0, -4.0)
    assert (cfg.model.latent_dim, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr_schedule) == (128, 30, 16, "linear")


def test_other_models_keep_griffin_lim_and_the_plain_decoder():
    for model in ("cvae", "vae", "cgan"):
        x = build_config("fsdd_digits_speech", model=model).pair.x
        assert (x.vocoder, x.refine_blocks) == ("griffin_lim", 0), model


def test_tiny_preset_stays_plain():
    x = build_config("fsdd_digits_speech", preset="tiny", model="cmma").pair.x
    assert (x.vocoder, x.refine_blocks) == ("griffin_lim", 0)
