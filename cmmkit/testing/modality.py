"""``check_modality``: one modality's methods, as the engine calls them (step 4 of check_pair)."""

from __future__ import annotations

import math

import torch

from cmmkit.modality import Modality, Value, batch_size
from cmmkit.testing._common import _check_batch, _check_finite, _compare, _fail


def check_modality(modality: Modality, raw: Value, *, side: str = "x", features: int = 8,
                   roundtrip: bool = False, atol: float = 1e-4, seed: int = 0) -> list[str]:
    """Check one modality on a raw batch ``raw`` (as a dataset's ``get_batch`` returns it); see
    the module docstring, step 4. ``roundtrip``: ``prepare(from_user(to_user(v)))`` must equal
    ``v`` for the undequantized prepared batch (within ``atol``). Returns notes (checks skipped
    because a method raises ``NotImplementedError``)."""
    where = f"{side} modality {getattr(modality, 'name', type(modality).__name__)!r}"
    notes: list[str] = []
    torch.manual_seed(seed)
    n = batch_size(raw)
    if n < 1:
        raise _fail(where, "the batch to check is empty")
    dims = modality.dims
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise _fail(where, f"dims is {dims!r}; expected a positive int (scalars per example, for bits/dim)")
    offset = modality.discrete_log_offset()
    if not (isinstance(offset, (int, float)) and math.isfinite(offset) and offset <= 0):
        raise _fail(where, f"discrete_log_offset() is {offset!r}; expected a finite float <= 0")
    prepared = {}
    for deq in (True, False):
        try:
            value = modality.prepare(raw, dequantize=deq)
        except Exception as exc:
            raise _fail(f"{where}.prepare(dequantize={deq})", f"raised {exc!r}") from exc
        _check_batch(f"{where}.prepare(dequantize={deq})", value, n)
        _check_finite(f"{where}.prepare(dequantize={deq})", value)
        prepared[deq] = value
    value = prepared[True]

    encoder = modality.encoder(features)
    try:
        feats = encoder(value)
    except Exception as exc:
        raise _fail(f"{where}.encoder({features})", f"raised {exc!r} on a prepared batch") from exc
    if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (n, features):
        got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise _fail(f"{where}.encoder({features})", f"returned {got}; expected a tensor of shape ({n}, {features})")
    _check_finite(f"{where}.encoder({features}) features", feats)

    decoder = modality.decoder(features)
    h = torch.randn(n, features, requires_grad=True)
    try:
        log_p = decoder.log_prob(h, value)
    except Exception as exc:
        raise _fail(f"{where}.decoder({features}).log_prob", f"raised {exc!r}") from exc
    if not isinstance(log_p, torch.Tensor) or tuple(log_p.shape) != (n,):
        got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
        raise _fail(f"{where}.decoder({features}).log_prob", f"returned shape {got}; expected ({n},): one "
                    "log-likelihood per example, summed over the example's dimensions")
    _check_finite(f"{where}.decoder({features}).log_prob", log_p)
    log_p.sum().backward()
    if h.grad is None or not bool(h.grad.abs().sum() > 0):
        raise _fail(f"{where}.decoder({features}).log_prob", "does not depend on the decoder's input h "
                    "(zero gradient): the latent code could never influence this modality")
    if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in decoder.parameters()):
        raise _fail(f"{where}.decoder({features}).log_prob", "no decoder parameter gets a gradient")

    with torch.no_grad():
        generated = decoder.generate(h.detach(), noise_scale=0.0)
    _check_batch(f"{where}.decoder({features}).generate", generated, n)
    try:
        items = modality.to_user(generated)
    except NotImplementedError:
        notes.append(f"{where}: to_user not implemented; user round trips not checked")
        return notes
    if len(items) != n:
        raise _fail(f"{where}.to_user", f"returned {len(items)} item(s) for {n} generated examples")
    back = modality.from_user(list(items))
    _check_batch(f"{where}.from_user(to_user(generated))", back, n)
    _check_batch(f"{where}.prepare(from_user(to_user(generated)))", modality.prepare(back, dequantize=False), n)
    if roundtrip:
        user = modality.to_user(prepared[False])
        again = modality.prepare(modality.from_user(list(user)), dequantize=False)
        _compare(f"{where}: prepare(from_user(to_user(v))) should reproduce the prepared batch v", prepared[False],
                 again, atol)
    return notes


# --- pairs ----------------------------------------------------------------------------------
