"""`cmmkit generate`, `edit`, `infer`, `figure` and `evaluate-edits` through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cmmkit.cli import main
from cmmkit.figures import make_figure
from cmmkit.images import labelled_grid


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_writes_one_labelled_row_per_condition(lfw_runs, tmp_path, capsys):
    out = tmp_path / "faces.png"
    code, stdout, _ = _cli(capsys, "generate", lfw_runs["cmma"], "--attr", "Male=1", "--attr", "Eyeglasses=1",
                           "--n", 3, "--noise", 1, "-o", out)
    assert code == 0 and f"wrote {out}" in stdout
    one = Image.open(out)
    code, _, _ = _cli(capsys, "generate", lfw_runs["cgan"], "--attr", "Male=1", "-o", tmp_path / "one.png")
    assert code == 0
    assert one.width > Image.open(tmp_path / "one.png").width  # 3 samples side by side vs 1


def test_generate_warns_that_samples_at_noise_0_are_the_same(lfw_runs, tmp_path, capsys, caplog):
    code, _, _ = _cli(capsys, "generate", lfw_runs["cmma"], "--attr", "Male=1", "--n", 2, "-o", tmp_path / "a.png")
    assert code == 0 and "--n 2 at --noise 0" in caplog.text
    caplog.clear()
    code, _, _ = _cli(capsys, "generate", lfw_runs["cmma"], "--attr", "Male=1", "--n", 2, "--noise", 1,
                      "--output-noise", 0, "-o", tmp_path / "b.png")
    assert code == 0 and "--noise 0" not in caplog.text


@pytest.mark.parametrize("argv,message", [
    (["--attr", "Mle=1"], "unknown attribute 'Mle'. Did you mean 'Male'?"),
    (["--attr", "Male=7"], "'Male'=7 is outside the training range [-1, 1]"),
    (["--attr", "Male=yes"], "attribute 'Male': expected a number, got 'yes'"),
    (["--attr", "Male"], "expected NAME=VALUE"),
    ([], "nothing to condition on"),
    (["--attr", "Male=1", "--n", "0"], "--n 0: expected at least 1"),
])
def test_generate_validates_its_input(lfw_runs, tmp_path, capsys, argv, message):
    code, _, err = _cli(capsys, "generate", lfw_runs["cmma"], *argv, "-o", tmp_path / "x.png")
    assert code == 2 and message in err


def test_generate_refuses_unwritable_outputs(lfw_runs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _cli(capsys, "generate", lfw_runs["cmma"], "--attr", "Male=1", "-o", blocker / "x.png")
    assert code == 2 and "cannot write there" in err
    code, _, err = _cli(capsys, "generate", lfw_runs["cmma"], "--attr", "Male=1", "-o", tmp_path / "x.gif")
    assert code == 2 and "expected a .png or .jpg output path" in err


def _face_file(lfw_runs, tmp_path, name="Someone_0001.png", size=(90, 120)):
    faces = lfw_runs["fixture"]["faces"]
    path = tmp_path / name
    Image.fromarray(faces[0]).resize(size).save(path)  # any size: centre-cropped and resized
    return path


def test_edit_uses_known_attributes_or_infers_them(lfw_runs, tmp_path, capsys):
    face = _face_file(lfw_runs, tmp_path)
    out = tmp_path / "edit.png"
    code, stdout, err = _cli(capsys, "edit", lfw_runs["cmma_x"], "--image", face, "--set", "Mustache=1", "-o", out)
    assert code == 0 and out.is_file() and "inferred from the image" in err
    key = lfw_runs["fixture"]["keys"][0]  # an attributed face, named as lfwcrop names it
    named = _face_file(lfw_runs, tmp_path, f"{key}.ppm", (64, 64))
    code, _, err = _cli(capsys, "edit", lfw_runs["cmma"], "--image", named, "--set", "Mustache=1", "-o", out)
    assert code == 0 and "inferred" not in err  # its row is looked up in the attribute file
    code, _, err = _cli(capsys, "edit", lfw_runs["cmma"], "--image", face, "--set", "Mustache=1",
                        "--infer-with", lfw_runs["cmma_x"], "-o", out)
    assert code == 0 and str(lfw_runs["cmma_x"]) in err


@pytest.mark.parametrize("run,argv,message", [
    ("cgan", ["--set", "Male=1"], "cannot edit an existing x"),
    ("cmma", ["--set", "Mustach=1", "--infer-with", "cmma_x"], "Did you mean 'Mustache'?"),
    ("cmma", ["--set", "Male=1"], "model.posterior=x"),  # unknown face, and this run cannot infer
    ("cmma_x", [], "give at least one change"),
])
def test_edit_errors(lfw_runs, tmp_path, capsys, run, argv, message):
    argv = [lfw_runs[a] if a in lfw_runs else a for a in argv]
    code, _, err = _cli(capsys, "edit", lfw_runs[run], "--image", _face_file(lfw_runs, tmp_path), *argv,
                        "-o", tmp_path / "e.png")
    assert code == 2 and message in err


def test_edit_rejects_what_is_not_an_image(lfw_runs, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code, _, err = _cli(capsys, "edit", lfw_runs["cmma_x"], "--image", bad, "--set", "Male=1", "-o", tmp_path / "e.png")
    assert code == 2 and f"{bad}: not a readable image" in err
    code, _, err = _cli(capsys, "edit", lfw_runs["cmma_x"], "--image", tmp_path / "nope.png", "--set", "Male=1",
                        "-o", tmp_path / "e.png")
    assert code == 2 and "no such file" in err


def test_infer_prints_every_attribute(lfw_runs, tmp_path, capsys):
    code, stdout, _ = _cli(capsys, "infer", lfw_runs["cmma_x"], "--image", _face_file(lfw_runs, tmp_path))
    assert code == 0
    values = next(iter(json.loads(stdout).values()))
    assert len(values) == 73 and "Eyeglasses" in values


def _panel_size(rows, cols, row_labels, col_labels, title):
    cells = [[Image.new("RGB", (64, 64))] * cols for _ in range(rows)]
    return labelled_grid(cells, row_labels, col_labels, title).size


def test_fig6_is_four_by_seven_per_run(lfw_runs, tmp_path):
    from cmmkit_lfw.figures import FIG6_COLUMNS, FIG6_ROWS

    from cmmkit.figures import panel_title
    from cmmkit.runs import load_run

    out = tmp_path / "fig6.png"
    make_figure("fig6", [lfw_runs["cmma"], lfw_runs["cgan"]], out)
    w, h = _panel_size(4, 7, [r for r, _ in FIG6_ROWS], [c for c, _ in FIG6_COLUMNS],
                       panel_title(load_run(lfw_runs["cmma"])))
    img = Image.open(out)
    assert img.width >= w and abs(img.height - (2 * h + 8)) <= 2  # two panels of 4 x 7 faces, stacked
    arr = np.asarray(img)
    assert arr.std() > 5  # faces, not a blank canvas


def test_fig8_and_fig10_grids(lfw_runs, tmp_path):
    from cmmkit_lfw.figures import FIG8_ROWS, FIG10_ROWS

    out = tmp_path / "fig8.png"
    make_figure("fig8", [lfw_runs["cmma"], lfw_runs["cvae"]], out, faces=[0, 1, 2])
    w, h = _panel_size(1 + len(FIG8_ROWS), 3, ["input"] + [r for r, _ in FIG8_ROWS], ["train 0"] * 3, "T")
    assert abs(Image.open(out).height - (2 * h + 8)) <= 2
    out10 = tmp_path / "fig10.png"
    make_figure("fig10", [lfw_runs["cmma_x"]], out10, count=2)
    _, h10 = _panel_size(1 + len(FIG10_ROWS), 2, ["input"] + [r for r, _ in FIG10_ROWS], ["x"] * 2, "T")
    assert abs(Image.open(out10).height - h10) <= 2  # 2 faces without attribute rows in the fixture


def test_fig4_reports_posterior_spread(lfw_runs, tmp_path, capsys):
    out = tmp_path / "fig4.png"
    make_figure("fig4", [lfw_runs["cmma_x"], lfw_runs["vae"]], out, count=3)
    printed = capsys.readouterr().out
    assert printed.count("average posterior standard deviation") == 2
    assert Image.open(out).height > Image.open(out).width / 2  # two rows of (a), (b)


def test_figure_errors(lfw_runs, tmp_path, capsys):
    code, _, err = _cli(capsys, "figure", "fig4", lfw_runs["cmma"], "-o", tmp_path / "f.png")
    assert code == 2 and "has a 16-d latent; train one with --set model.latent_dim=2" in err
    code, _, err = _cli(capsys, "figure", "fig9", lfw_runs["cmma"], "-o", tmp_path / "f.png")
    assert code == 2 and "Did you mean 'fig8'" in err
    code, _, err = _cli(capsys, "figure", "fig8", lfw_runs["cgan"], "-o", tmp_path / "f.png")
    assert code == 2 and "cannot edit" in err


def test_evaluate_edits(lfw_runs, capsys):
    code, stdout, _ = _cli(capsys, "evaluate-edits", lfw_runs["cmma_x"], "--judge", lfw_runs["judge"],
                           "--examples", 8, "--attributes", "Mustache", "Eyeglasses", "--no-progress")
    assert code == 0 and "| Mustache |" in stdout
    saved = json.loads((lfw_runs["cmma_x"] / "edit_eval.json").read_text())
    assert set(saved["edit_fidelity"]["per_attribute"]) == {"Mustache", "Eyeglasses"}
    assert 0.0 <= saved["edit_fidelity"]["mean_rate"] <= 1.0
    inf = saved["attribute_inference"]
    assert inf["examples"] == 8 and 0.0 <= inf["mean_accuracy"] <= 1.0 and len(inf["per_attribute"]) == 73
    code, _, err = _cli(capsys, "evaluate-edits", lfw_runs["cgan"], "--judge", lfw_runs["judge"])
    assert code == 2 and "cannot edit" in err



def test_output_noise_separates_latent_and_pixel_noise(lfw_runs, tmp_path):
    import torch

    from cmmkit.runs import load_run

    run = load_run(lfw_runs["cmma"])
    y = run.prepare_y([{"Male": 1}] * 4)
    torch.manual_seed(0)
    clean = run.model.generate(y, noise_scale=1.0, output_noise=0.0)
    torch.manual_seed(0)
    noisy = run.model.generate(y, noise_scale=1.0)
    mean = run.model.generate(y, noise_scale=0.0)
    assert not torch.allclose(clean[0], clean[1])  # z varies between samples
    assert (clean - mean).abs().mean() < (noisy - mean).abs().mean()  # but no pixel noise on top


def test_edit_converts_each_input_file_once(lfw_runs, tmp_path, capsys, monkeypatch):
    """Issue 15: `cmmkit edit` went file -> uint8 -> prepared -> PIL -> uint8 -> prepared (and once
    more for the second edit); now the pixels are read and prepared once, and turned into pictures
    once for the grid (the edit's pixels are the file's, not a rounded copy)."""
    from cmmkit.modalities.image import ImageModality

    calls: dict[str, list] = {"from_user": [], "prepare": []}
    from_user, prepare = ImageModality.from_user, ImageModality.prepare
    monkeypatch.setattr(ImageModality, "from_user",
                        lambda self, items: calls["from_user"].append(len(items)) or from_user(self, items))
    monkeypatch.setattr(ImageModality, "prepare",
                        lambda self, v, dequantize=True: calls["prepare"].append(dequantize) or prepare(self, v, dequantize))
    face = _face_file(lfw_runs, tmp_path)
    code, _, err = _cli(capsys, "edit", lfw_runs["cmma_x"], "--image", face, "--set", "Mustache=1",
                        "-o", tmp_path / "e.png")
    assert code == 0, err
    assert calls == {"from_user": [1], "prepare": [False]}


def test_generate_takes_the_condition_modalitys_options_by_name(lfw_runs):
    from cmmkit.errors import ConfigError
    from cmmkit.runs import load_run

    run = load_run(lfw_runs["cmma"])
    torch.manual_seed(0)
    mean = run.generate({"Male": -1}, condition_options={"base": "mean"})[0]
    torch.manual_seed(0)
    conditional = run.generate({"Male": -1})[0]
    assert mean.tobytes() != conditional.tobytes()  # the option reached the y modality
    with pytest.raises(ConfigError, match=r"condition option\(s\) 'noise': the named_vector modality's conditions "
                                          r"take 'base'"):
        run.generate({"Male": 1}, condition_options={"noise": 1})
    with pytest.raises(TypeError):  # no longer swallowed into the y modality's from_user
        run.generate({"Male": 1}, base="mean")
