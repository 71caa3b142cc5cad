"""§4.5's editing algorithm and attribute inference on tiny trained runs."""

from __future__ import annotations

import pytest
import torch

from cmmkit.errors import CmmkitError
from cmmkit.runs import load_data, load_run


def _batch(run, n=6):
    data = load_data(run.config, progress=False)
    return data.splits["train"].get_batch(torch.arange(n))


@pytest.mark.parametrize("name", ["cmma", "cmma_x"])
def test_edit_with_the_same_attributes_is_the_reconstruction(lfw_runs, name):
    run = load_run(lfw_runs[name])
    b = _batch(run)
    m = run.model
    x, y = m.x.prepare(b["x"], dequantize=False), m.y.prepare(b["y"], dequantize=False)
    recon = m.decoder.generate(m.posterior(x, y).mean, 0.0)
    torch.testing.assert_close(m.edit(x, y, y), recon)


def test_cmma_edit_moves_the_latent_by_exactly_f_difference(lfw_runs):
    for name in ("cmma", "cmma_x"):
        run = load_run(lfw_runs[name])
        b = _batch(run)
        m = run.model
        y_new = b["y"].clone()
        mustache = m.y.names.index("Mustache")
        y_new[:, mustache] = -y_new[:, mustache]
        x = m.x.prepare(b["x"], dequantize=False)
        y, y_new = m.y.prepare(b["y"], dequantize=False), m.y.prepare(y_new, dequantize=False)
        z = m.edit_latent(x, y, y_new)
        f_diff = m.prior(y_new.float()).mean - m.prior(b["y"].float()).mean
        assert f_diff.abs().max() > 0  # the change does move f
        # steps 2-4: h(x, attr_new) + f(attr_new) - f(attr_orig)
        torch.testing.assert_close(z - m.posterior(x, y_new.float()).mean, f_diff)
        if name == "cmma_x":  # h ignores y: the latent moves by f's difference alone
            torch.testing.assert_close(z - m.edit_latent(x, y, y), f_diff)


def test_cvae_edit_encodes_with_the_old_and_decodes_with_the_new_attributes(lfw_runs):
    run = load_run(lfw_runs["cvae"])
    b = _batch(run)
    m = run.model
    y_new = -b["y"]
    x = m.x.prepare(b["x"], dequantize=False)
    z = m.posterior(x, b["y"].float()).mean
    expected = m.decoder.generate(m.decoder_input(z, y_new.float()), 0.0)
    y, y_new = m.y.prepare(b["y"], dequantize=False), m.y.prepare(y_new, dequantize=False)
    torch.testing.assert_close(m.edit(x, y, y_new), expected)
    assert not torch.allclose(expected, m.edit(x, y, y))


@pytest.mark.parametrize("name,reason", [("cgan", "no way to encode"), ("vae", "never sees y")])
def test_models_that_cannot_edit_say_why(lfw_runs, name, reason):
    run = load_run(lfw_runs[name])
    assert not run.model.can_edit
    with pytest.raises(CmmkitError, match=reason):
        run.edit(["unused.png"], {"Male": 1}, original=[{}])


def test_inference_needs_an_x_only_posterior(lfw_runs):
    run = load_run(lfw_runs["cmma_x"])
    b = _batch(run, 3)
    faces = run.x.to_user(run.x.prepare(b["x"], dequantize=False))
    inferred = run.infer(faces)
    assert len(inferred) == 3 and set(inferred[0]) == set(run.y.names)
    lo, hi = min(run.y.info["min"]), max(run.y.info["max"])
    assert all(lo <= v <= hi for row in inferred for v in row.values())  # clamped: valid input again
    with pytest.raises(CmmkitError, match="model.posterior=x"):
        load_run(lfw_runs["cmma"]).infer(faces)


def test_edit_of_a_face_without_attributes_infers_them(lfw_runs):
    run = load_run(lfw_runs["cmma_x"])
    b = _batch(run, 2)
    faces = run.x.to_user(run.x.prepare(b["x"], dequantize=False))
    edited, originals = run.edit(faces, {"Mustache": 1})
    assert len(edited) == 2 and originals == run.infer(faces)
    helper_used = load_run(lfw_runs["cmma"]).edit(faces, {"Mustache": 1}, infer_with=run)[1]
    assert helper_used == originals


def test_run_edit_infers_only_the_missing_conditions(lfw_runs):
    run = load_run(lfw_runs["cmma_x"])
    b = _batch(run, 3)
    faces = run.x.to_user(run.x.prepare(b["x"], dequantize=False))
    given = run.y.to_user(b["y"].float())
    inferred = run.infer(faces)
    _, used = run.edit(faces, {}, original=[given[0], None, given[2]])
    assert used[0] == given[0] and used[2] == given[2]
    assert used[1] == pytest.approx(inferred[1], abs=1e-4) and used[1] != given[1]  # batch-size float noise
