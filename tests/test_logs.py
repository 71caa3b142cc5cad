"""Issue 15: cmmkit's messages go through `logging` (one logger per module), `-q`/`-v` set their
level, results stay on stdout, and progress bars honour TQDM_DISABLE."""

import logging

import pytest

from cmmkit.cli import main
from cmmkit.logs import configure, no_bar


def _train(tmp_path, *flags):
    return main([*flags, "train", "--pair", "synthetic", "--out", str(tmp_path / "r"), "--no-progress"])


def test_messages_go_to_stderr_and_quiet_silences_them(synthetic_pair, tmp_path, capsys):
    assert _train(tmp_path) == 0
    out = capsys.readouterr()
    assert "Training cmma" in out.err and "Run saved in" in out.out and "Training" not in out.out
    assert main(["-q", "train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "Training" not in out.err and "resume:" not in out.err  # info silenced
    assert "Run saved in" in out.out  # the result is not a log message
    assert logging.getLogger("cmmkit").level == logging.INFO  # restored for in-process callers


def test_errors_still_show_under_quiet(synthetic_pair, capsys):
    assert main(["-q", "train", "--pair", "synthetic", "--set", "train.epoch=2"]) == 2
    assert "Did you mean 'epochs'?" in capsys.readouterr().err


def test_messages_come_from_module_loggers(synthetic_pair, tmp_path):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("cmmkit").addHandler(handler)
    try:
        assert _train(tmp_path) == 0
    finally:
        logging.getLogger("cmmkit").removeHandler(handler)
    names = {r.name for r in records}
    assert "cmmkit.runs" in names and "cmmkit.training.trainer" in names


def test_verbose_and_non_main_ranks(monkeypatch):
    try:
        configure(1)
        assert logging.getLogger("cmmkit").level == logging.DEBUG
        monkeypatch.setenv("RANK", "1")
        configure(0)
        assert logging.getLogger("cmmkit").level == logging.WARNING  # torchrun's other ranks do not repeat info
    finally:
        monkeypatch.delenv("RANK")
        configure(0)


@pytest.mark.parametrize("env, progress, disabled", [
    (None, True, False), (None, False, True), ("1", True, True), ("0", True, False), ("true", True, True),
])
def test_progress_bars_honour_tqdm_disable(monkeypatch, env, progress, disabled):
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    assert no_bar(progress) is disabled


def test_quiet_hides_progress_bars(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    previous = configure(-1)
    try:
        assert no_bar(True)  # -q: only warnings and errors on stderr, so no bars either
    finally:
        logging.getLogger("cmmkit").setLevel(previous)
    assert not no_bar(True)
