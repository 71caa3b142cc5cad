"""Conformance checks for pair and modality plugins, to run in a plugin's own pytest suite.

Why: the engine (bound, models, trainer, ``cmmkit generate``) only calls the public methods of
:class:`~cmmkit.pair.Pair` and :class:`~cmmkit.modality.Modality`; a pair that gets one of them
subtly wrong (a decoder returning (B, D) instead of (B,), ``info`` holding a tensor, ``y`` one
example short) fails far from the cause, epochs into a run. These checks exercise every method the
engine relies on, on a few examples, in seconds, and fail with one precise message.

    from cmmkit.testing import check_pair, registered
    import my_package.plugin

    def test_my_pair_conforms(tmp_path):
        with registered(my_package.plugin, name="my-plugin"):      # skip if installed
            check_pair("my_pair", preset="tiny", data_dir=fixture_dir, run_dir=tmp_path / "run")

:func:`check_pair` verifies, in order (each failure raises :class:`ConformanceError`, an
``AssertionError`` naming the pair, the step and what was expected):

1. the config builds (preset, ``config_sets``) and ``load()`` returns a :class:`PairData` with
   non-empty ``train``, ``val`` and ``test`` :class:`PairDataset` splits;
2. ``info`` has ``x``/``y`` dicts and is strict JSON (no NaN), and the modalities build from its
   JSON round trip (as :func:`cmmkit.load_run` builds them from a checkpoint);
3. every split yields ``{"x", "y"}`` items and batches whose x and y hold as many examples as asked,
   with the same structure (dict keys, dtypes, number of dimensions) in every split;
4. each modality (:func:`check_modality`): ``prepare`` works with and without dequantization and is
   finite; the encoder returns finite (B, F) features; the decoder's ``log_prob`` is a finite (B,)
   tensor with a gradient to the decoder's input and parameters; ``decoder.generate`` gives B
   examples that ``to_user`` turns into B items and ``from_user`` accepts back; for the sides in
   ``roundtrip`` (default ``y``: the conditions users type) ``prepare(from_user(to_user(v)))``
   reproduces ``v``;
5. the model: ``evaluate`` gives finite (B,) metrics; for each optimizer group in turn (the others
   frozen), a few of the model's own ``train_step`` on one fixed batch (fixed seeds, so the noise
   is the same before and after) lower that group's loss log (``loss``, or ``loss_<group>`` for a
   model with several groups); ``generate`` from user conditions returns one item per condition;
6. optionally (``run_dir``), one epoch of ``cmmkit.train`` into ``run_dir``, then
   :func:`cmmkit.load_run` generates exactly what the trained model generates.

Only public interfaces are used, so the same call works for images, speech and text pairs.
"""

from cmmkit.testing._common import ConformanceError, PairReport, registered
from cmmkit.testing.modality import check_modality
from cmmkit.testing.pair import check_pair

__all__ = ["ConformanceError", "PairReport", "check_modality", "check_pair", "registered"]
