"""``cmmkit demo`` as a command, and what the pairs declare for the page."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

pytest.importorskip("gradio", reason="cmmkit demo needs the demo extra: pip install -e '.[demo]'")
pytest.importorskip("gradio_client", reason="the demo tests drive the page with gradio_client (the demo extra)")

def test_command_prints_the_address_and_serves_the_page(demo_runs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cmmkit.cli", "demo", str(demo_runs["translation"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # a suite started in the background by a non-interactive shell inherits an
                            # ignored SIGINT; the demo must see Ctrl-C as a user's terminal sends it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()  # blocks until the page is up (or the command failed)
        match = re.search(r"cmmkit demo: 1 run\(s\) of multi30k_en_de at (http://127\.0\.0\.1:\d+/)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(match.group(1), timeout=30) as response:
            assert response.status == 200 and "cmmkit demo: multi30k_en_de" in response.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0


def test_every_lfw_attribute_is_in_exactly_one_group():
    from cmmkit_lfw.demo import GROUPS
    from lfw_fixtures import ATTRIBUTE_NAMES

    names = [n for group in GROUPS.values() for n in group]
    assert sorted(names) == sorted(ATTRIBUTE_NAMES) and len(GROUPS) == 8


def test_modalities_declare_controls_and_views(demo_runs):
    from cmmkit.demo.engine import DemoRuns
    from cmmkit.demo.spec import Choice, Slider, Text
    from cmmkit.runs import load_run

    faces = DemoRuns([load_run(demo_runs["cmma"])])
    assert [type(c) for c in faces.y_spec.controls] == [Slider] * 73 and faces.y_spec.bases == ("conditional", "mean")
    assert all(c.minimum == -1 and c.maximum == 1 for c in faces.y_spec.controls)  # the binarized training range
    assert [v.kind for v in faces.x_spec.views] == ["image"] and faces.x_spec.upload == "image"
    assert faces.can_edit and faces.inferrer is None
    speech = DemoRuns([load_run(demo_runs["speech"])])
    assert [type(c) for c in speech.y_spec.controls] == [Text, Choice]
    assert [v.kind for v in speech.x_spec.views] == ["audio", "image"] and not speech.can_edit
    text = DemoRuns([load_run(demo_runs["translation"])])
    assert [type(c) for c in text.y_spec.controls] == [Text] and text.x_spec.alternatives == 3
    with pytest.raises(Exception, match="seed -1"):
        with faces.seeded(-1):
            pass
