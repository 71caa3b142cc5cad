"""The demo page's endpoints through gradio_client against the launched app (no browser)."""

from __future__ import annotations

import json
import socket
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from cmmkit.errors import CmmkitError
from cmmkit.runs import load_run

pytest.importorskip("gradio", reason="cmmkit demo needs the demo extra: pip install -e '.[demo]'")
pytest.importorskip("gradio_client", reason="the demo tests drive the page with gradio_client (the demo extra)")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_generate_faces_side_by_side(faces_client, demo_runs):
    cond = {"Male": -1, "Eyeglasses": 1}
    out = faces_client.predict(json.dumps(cond), 0.0, 0, "", api_name="/generate")
    assert len(out) == 4  # one image per run (cmma, cmma_x, cgan), then the notes
    assert out[-1] == ""
    # noise 0 is the library's noise-free output for the conditional base, exactly
    want = load_run(demo_runs["cmma"]).generate([cond], noise_scale=0.0, output_noise=0.0)[0]
    assert np.abs(pixels(out[0]) - np.asarray(want, dtype=np.int16)).max() == 0
    other = faces_client.predict(json.dumps({"Male": 1}), 0.0, 0, "", api_name="/generate")
    assert np.abs(pixels(other[0]) - pixels(out[0])).max() > 0  # the condition matters
    mean_base = faces_client.predict(json.dumps(cond), 0.0, 0, "mean", api_name="/generate")
    assert np.abs(pixels(mean_base[0]) - pixels(out[0])).max() > 0  # so does the base


def test_seed_gives_the_same_face_even_under_concurrent_requests(faces_client):
    cond = json.dumps({"Smiling": 1})
    first = [pixels(faces_client.predict(cond, 1.0, seed, "", api_name="/generate")[0]) for seed in (1, 2)]
    assert np.abs(first[0] - first[1]).max() > 0  # noise 1 draws z: seeds differ
    with ThreadPoolExecutor(6) as pool:  # interleaved requests with both seeds
        jobs = [pool.submit(faces_client.predict, cond, 1.0, 1 + i % 2, "", api_name="/generate") for i in range(6)]
        again = [pixels(j.result()[0]) for j in jobs]
    for i, image in enumerate(again):
        assert np.array_equal(image, first[i % 2])


def test_example_known_condition(faces_client, faces_demo, demo_runs):
    labels = sorted(faces_demo.runs.examples)
    known = [lab for lab in labels if "no attributes" not in lab]
    assert known and any("no attributes" in lab for lab in labels)  # test faces by person, and Fig. 10's faces
    image, cond, how = faces_client.predict(known[0], api_name="/example")
    fx = demo_runs["fixture"]
    person, num = known[0].rsplit(" ", 1)
    key = f"{person.replace(' ', '_')}_{num}"
    row = list(fx["keys"]).index(key)
    assert how.startswith("the data's own condition")
    assert json.loads(cond) == dict(zip(fx["names"], (float(v) for v in fx["values"][_row(fx, key)])))
    assert np.abs(pixels(image) - fx["faces"][row].astype(np.int16)).max() <= 1


def _row(fx, key):
    """The attribute-file row of a kept face (rows without a face are left out of ``keys``)."""
    person, num = key.rsplit("_", 1)
    lines = fx["attributes"].read_text().splitlines()[2:]
    return next(i for i, line in enumerate(lines)
                if line.split("\t")[0] == person.replace("_", " ") and int(line.split("\t")[1]) == int(num))


def test_infer_and_edit_an_uploaded_face(faces_client, demo_runs, face_file):
    from gradio_client import handle_file

    cond, how = faces_client.predict(handle_file(str(face_file)), api_name="/infer")
    assert how == "inferred from the image by cmma (cmma_x)"
    inferred = json.loads(cond)
    want = load_run(demo_runs["cmma_x"]).infer([Image.open(face_file)])[0]
    assert inferred.keys() == want.keys() and max(abs(inferred[k] - want[k]) for k in want) < 1e-5

    out = faces_client.predict(handle_file(str(face_file)), json.dumps({"Mustache": 1, "Eyeglasses": 1}), "", 0,
                               api_name="/edit")
    seen, cmma_same, cmma_edit, _, _, cgan_same, cgan_edit, notes, used = out
    assert pixels(seen).shape == (64, 64, 3)
    assert json.loads(used) == pytest.approx(inferred)
    assert cgan_same is None and cgan_edit is None and "cgan" in notes and "cannot edit" in notes
    assert np.abs(pixels(cmma_edit) - pixels(cmma_same)).max() > 0  # the change shows
    run = load_run(demo_runs["cmma"])
    edited, _ = run.edit([Image.open(face_file)], {"Mustache": 1, "Eyeglasses": 1}, original=[inferred])
    assert np.abs(pixels(cmma_edit) - np.asarray(edited[0], dtype=np.int16)).max() <= 1
    unchanged = faces_client.predict(handle_file(str(face_file)), "{}", used, 0, api_name="/edit")
    assert np.array_equal(pixels(unchanged[1]), pixels(unchanged[2]))  # no change: the reconstruction


def test_bad_input_is_a_message_not_a_traceback(faces_client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.txt"
    text.write_text("not a face")
    with pytest.raises(AppError, match=r"notes\.txt is not an image"):
        faces_client.predict(handle_file(str(text)), api_name="/infer")
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(huge)  # 48 megapixels in a small file
    with pytest.raises(AppError, match=r"8000x6000 pixels; upload an image of at most 40 megapixels"):
        faces_client.predict(handle_file(str(huge)), api_name="/infer")
    with pytest.raises(AppError, match=r"unknown attribute 'Mustach'.*Mustache"):
        faces_client.predict(json.dumps({"Mustach": 1}), 0.0, 0, "", api_name="/generate")
    with pytest.raises(AppError, match=r"condition: not valid JSON"):
        faces_client.predict("{Male: 1", 0.0, 0, "", api_name="/generate")
    with pytest.raises(AppError, match=r"outside the training range"):
        faces_client.predict(json.dumps({"Male": 5}), 0.0, 0, "", api_name="/generate")
    with pytest.raises(AppError, match=r"-3 is less than minimum value 0"):
        faces_client.predict("{}", 0.0, -3, "", api_name="/generate")
    with pytest.raises(AppError, match=r"no example named"):
        faces_client.predict("Nobody 0001", api_name="/example")
    for message in ("Traceback", "File \""):  # the server is still fine after all that
        assert message not in faces_client.predict("{}", 0.0, 0, "", api_name="/generate")[-1]


def test_speech_page(demo_runs):
    from gradio_client import Client

    from cmmkit.demo.serve import start

    demo = start([str(demo_runs["speech"])], port=0)
    try:
        client = Client(demo.url, verbose=False)
        assert "/edit" not in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        speaker = demo.runs.y_spec.controls[1].choices[0]
        audio, spectrogram, notes = client.predict(json.dumps({"text": "seven", "speaker": speaker}), 0.0, 0, "",
                                                   api_name="/generate")
        with wave.open(audio) as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 8000, 8000)
        assert Image.open(spectrogram).size == (126 * 3, 64 * 3) and notes == ""
        with pytest.raises(Exception, match=r"unknown speaker 'nobody'"):
            client.predict(json.dumps({"text": "seven", "speaker": "nobody"}), 0.0, 0, "", api_name="/generate")
    finally:
        demo.close()


def test_translation_page(demo_runs):
    from gradio_client import Client

    from cmmkit.demo.serve import start

    demo = start([str(demo_runs["translation"])], port=0)
    try:
        client = Client(demo.url, verbose=False)
        sentence = "A man rides a bike."
        text, alternatives, notes = client.predict(json.dumps({"text": sentence}), 0.0, 0, "", api_name="/generate")
        assert text == load_run(demo_runs["translation"]).generate([{"text": sentence}])[0]
        assert 1 <= len(alternatives.split("\n")) <= 3 and notes == ""  # the distinct samples
        assert client.predict(json.dumps({"text": sentence}), 0.0, 0, "", api_name="/generate")[1] == alternatives
    finally:
        demo.close()


def test_start_up_errors(demo_runs, tmp_path, capsys):
    from cmmkit.cli import main
    from cmmkit.demo.serve import start

    assert main(["demo", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    with pytest.raises(CmmkitError, match="runs shown side by side must be of one pair"):
        start([str(demo_runs["cmma"]), str(demo_runs["speech"])], port=0)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    (broken / "config.yaml").write_text("pair: {name: lfw_faces_attrs}\n")
    with pytest.raises(CmmkitError):
        start([str(broken)], port=0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", str(demo_runs["cmma"]), "--port", str(port)]) == 2
        assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
