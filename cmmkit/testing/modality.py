"""``check_modality``: one modality's methods, as the engine calls them (step 4 of check_pair)."""

from __future__ import annotations

import math

import torch

from cmmkit.modality import Code, Modality, Value, batch_size
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
    code = _check_code(f"{where}.encoder({features})", feats, n, features, modality.positional)
    _check_finite(f"{where}.encoder({features}) features", code.features)

    decoder = modality.decoder(features)
    if code.mask is not None:
        _check_reads_code_masked(f"{where}.decoder({features})", decoder, code, value)
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


def _check_code(where: str, feats: object, n: int, features: int, positional: bool) -> Code:
    """A flat encoder returns a (n, features) tensor; a positional one a Code (n, *S, features) whose
    mask, if any, is boolean of shape (n, *S) with at least one real position per example."""
    if not positional:
        if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (n, features):
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise _fail(where, f"returned {got}; expected a tensor of shape ({n}, {features}) (the modality is not "
                        "positional; set positional = True to return a Code with positions)")
        return Code(feats)
    if not isinstance(feats, Code):
        raise _fail(where, f"returned {type(feats).__name__}; a positional modality's encoder returns a "
                    "cmmkit.modality.Code (features (B, *S, D) and a mask (B, *S))")
    shape = tuple(feats.features.shape)
    if len(shape) < 3 or shape[0] != n or shape[-1] != features:
        raise _fail(where, f"returned a Code of shape {shape}; expected ({n}, *positions, {features})")
    if feats.mask is not None:
        if feats.mask.dtype != torch.bool:
            raise _fail(where, f"returned a Code whose mask has dtype {feats.mask.dtype}; expected torch.bool")
        if not bool(feats.mask.flatten(1).any(1).all()):
            raise _fail(where, "returned a Code with an example whose positions are all masked out")
    return feats


def _check_reads_code_masked(where: str, decoder: torch.nn.Module, code: Code, value: Value) -> None:
    """The decoder reads a positional code and ignores its masked (padding) positions."""
    torch.manual_seed(0)
    h = Code(torch.randn_like(code.features), code.mask)
    decoder.eval()
    with torch.no_grad():
        try:
            lp = decoder.log_prob(h, value)
        except Exception as exc:
            raise _fail(f"{where}.log_prob(Code)", f"raised {exc!r} on a positional code") from exc
        junk = torch.where(code.mask.unsqueeze(-1), h.features, torch.randn_like(h.features) * 100)
        lp_junk = decoder.log_prob(Code(junk, code.mask), value)
    decoder.train()
    if tuple(lp.shape) != (batch_size(value),):
        raise _fail(f"{where}.log_prob(Code)", f"returned shape {tuple(lp.shape)}; expected ({batch_size(value)},)")
    if not torch.allclose(lp, lp_junk, atol=1e-3, rtol=1e-4):
        raise _fail(f"{where}.log_prob(Code)", "changes when only the masked (padding) positions of the code "
                    "change: the decoder must ignore positions whose mask is False")
