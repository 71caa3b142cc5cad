"""The speech pair ``fsdd_digits_speech``: spoken digits (log-mel spectrograms of the Free Spoken
Digit Dataset) generated from the digit word and, optionally, the speaker. It registers its two
modalities (``digit_text``, ``log_mel``), its judge model (``speech_judge``; the older
``digit_classifier`` stays loadable) and the pair
through the ``cmmkit`` entry-point group like any third-party plugin, and adds ``--speaker`` to
``cmmkit generate``."""

from __future__ import annotations

from typing import Any

from cmmkit.api import Register, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_modalities(register: Register) -> None:
    from cmmkit_fsdd.audio import LogMelModality
    from cmmkit_fsdd.words import DigitTextModality

    register(LogMelModality)
    register(DigitTextModality)


@hookimpl
def register_models(register: Register) -> None:
    from cmmkit_fsdd.judge import DigitClassifier
    from cmmkit_fsdd.listener import SpeechJudge

    register(SpeechJudge)
    register(DigitClassifier)


@hookimpl
def register_pairs(register: Register) -> None:
    from cmmkit_fsdd.pair import FSDDDigitsSpeech

    register(FSDDDigitsSpeech())


@hookimpl
def register_commands(register: Any) -> None:
    register.condition("--speaker", key="speaker", help="speaker to condition on (fsdd_digits_speech: e.g. jackson)")
