"""Checkpoints as one safetensors file: weights, optimizer and RNG state, plus JSON metadata.

Nothing is ever unpickled on load. Optimizer ``state_dict``s are split into tensors (stored as
tensors) and everything else (stored as JSON in the header). A SHA-256 over the tensor bytes is
kept in the metadata, so truncation or tampering is detected and reported instead of loading
garbage. Files are written to a temporary name in the same folder, fsynced, then renamed (and the
folder fsynced), so a crash or Ctrl-C mid-write never destroys the previous checkpoint; a
temporary file left by a killed writer is removed by the next owner of the folder
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from cmmkit.data.download import atomic_path
from cmmkit.errors import CheckpointError
from cmmkit.training import faults

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _digest(tensors: dict[str, torch.Tensor], *texts: str) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode() + b"\0")
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous().cpu()
        h.update(key.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _split_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors inside a nested structure by ``{"__tensor__": key}`` references."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), _split_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_split_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    return obj


def _key(k: Any) -> Any:
    if not isinstance(k, (str, int)):
        raise TypeError(f"cannot checkpoint a dict key of type {type(k).__name__}")
    return k


def _join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _join_state(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_join_state(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


def save_checkpoint(path: Path, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    meta: dict[str, Any]) -> None:
    """Atomically write ``weights`` (model tensors), ``state`` (nested optimizer/RNG state with
    tensors anywhere) and ``meta`` (JSON: config, epoch, ...) to ``path``."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in weights.items()}
    state_tensors: dict[str, torch.Tensor] = {}
    skeleton = _split_state(state, "state", state_tensors)
    tensors.update(state_tensors)
    header = {"format": str(FORMAT_VERSION), "meta": json.dumps(meta), "state": json.dumps(skeleton)}
    header["sha256"] = _digest(tensors, header["meta"], header["state"])
    try:
        with atomic_path(path, before_replace=lambda: faults.point("checkpoint-tmp")) as tmp:
            save_file(tensors, str(tmp), metadata=header)
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {getattr(exc, 'strerror', None) or exc} (read-only or full file "
                              "system?); the previous checkpoint, if any, is unchanged") from None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder`` (call only as its owner)."""
    removed = []
    # ours, and safetensors' own temporary file (``.tmpXXXXXX``, renamed onto ours when complete)
    for pattern in (".*.safetensors.*.tmp", ".config.*.yaml", "*.csv.tmp", ".tmp*"):
        for p in Path(folder).glob(pattern):
            try:
                if p.is_dir():
                    continue
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    if removed:
        log.info("removed %d stale temporary file(s) in %s: %s", len(removed), folder,
                 ", ".join(p.name for p in removed))
    return removed


def nonfinite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity (one host sync per device)."""
    names = [k for k, t in tensors.items() if t.is_floating_point() and t.numel()]
    if not names:
        return []
    by_device: dict[torch.device, list[str]] = {}
    for k in names:
        by_device.setdefault(tensors[k].device, []).append(k)
    bad = []
    for keys in by_device.values():
        flags = torch.stack([torch.isfinite(tensors[k]).all() for k in keys]).cpu()
        bad += [k for k, ok in zip(keys, flags.tolist()) if not ok]
    return bad


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Return (model weights, state, meta) from a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a safetensors file): {exc}") from None
    if header.get("format") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format {header.get('format')!r}, this cmmkit reads "
                              f"format {FORMAT_VERSION}")
    if _digest(tensors, header.get("meta", ""), header.get("state", "")) != header.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch: the checkpoint was modified or corrupted after saving")
    try:
        meta = json.loads(header["meta"])
        state = _join_state(json.loads(header["state"]), tensors)
    except (KeyError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: checkpoint metadata nested too deeply to be one cmmkit wrote") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: damaged checkpoint metadata (expected a JSON object)")
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    return weights, state, meta
