"""How the training step uses the hardware: ``train.speed`` (docs/training.md, "Speed").

Measured on the 2-core CPU this project runs on (benchmarks/README.md): the fused Adam kernel
(:func:`cmmkit.training.optim.make_optimizers`, on by default) takes 4.0 ms of CPU per step of the
reference pair's default against 10.8 ms for the per-parameter loop; oneDNN (``torch.backends.mkldnn``, on by default
in PyTorch) halves the step against the native convolutions; channels_last changed nothing
measurable on CPU; ``torch.compile`` of the loss took ~2 minutes to compile and made the step
~15% slower, so it is opt-in. On CPU, glibc's malloc keeps freed tensor memory for the next step
(:mod:`cmmkit.training.heap`), which removes thousands of page faults per step. On CUDA the
defaults add TF32 matmuls, channels_last, page-locked batches and non-blocking copies. bf16
autocast of the loss (``train.speed.autocast``) runs on CUDA and on CPUs with native bf16 instructions (AVX512-BF16 or AMX, where oneDNN's bf16 convolutions and
matmuls beat float32); elsewhere it would be emulated and slower, so it is skipped with a warning.
None of these changes the model; each changes results at most by float rounding.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from cmmkit.config import SpeedConfig
from cmmkit.models.base import ConditionalModel
from cmmkit.training import heap

log = logging.getLogger(__name__)


def channels_last(device: torch.device, speed: SpeedConfig) -> bool:
    """Whether weights and 4-d images use the channels_last memory format on ``device``."""
    return speed.channels_last == "on" or (speed.channels_last == "auto" and device.type == "cuda")


def configure(model: ConditionalModel, device: torch.device, speed: SpeedConfig) -> None:
    """Apply the settings that live on the model or in torch's global flags (once, at start)."""
    heap.apply(device, speed.reuse_freed_memory)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = speed.tf32
        torch.backends.cudnn.allow_tf32 = speed.tf32
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest conv algorithm once
    if channels_last(device, speed):
        model.to(memory_format=torch.channels_last)  # only 4-d weights change; the rest is untouched
    if speed.compile or autocast_dtype(device, speed) is not None:
        _wrap_loss(model, device, speed)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), as oneDNN needs to make a
    bf16 convolution faster than a float32 one."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast_dtype(device: torch.device, speed: SpeedConfig) -> torch.dtype | None:
    """The dtype the loss's forward pass autocasts to on ``device``, or None (float32 throughout).
    ``bf16`` asks for it and warns where the hardware would emulate it; ``auto`` takes it where the
    hardware computes bf16 natively and stays in float32 silently elsewhere."""
    if speed.autocast == "off":
        return None
    if device.type == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = device.type == "cpu" and cpu_has_native_bf16()
    if native:
        return torch.bfloat16
    if speed.autocast == "bf16":
        log.warning("train.speed.autocast=bf16: this %s has no native bf16 (AVX512-BF16, AMX or a CUDA device "
                    "that computes bf16), where it would be slower than float32; training in float32", device.type)
    return None


def _wrap_loss(model: ConditionalModel, device: torch.device, speed: SpeedConfig) -> None:
    """Compile and/or autocast the model's ``training_loss`` (the forward pass and loss of the
    default step), so the backward pass and the optimizer step stay outside autocast."""
    if type(model).training_loss is ConditionalModel.training_loss:
        log.warning("train.speed: model %r owns its train_step without a training_loss; compile and autocast "
                    "apply to training_loss only, so it runs eagerly in float32", model.name)
        return
    loss = model.training_loss
    if speed.compile:
        loss = torch.compile(loss)
    dtype = autocast_dtype(device, speed)
    if dtype is not None:
        loss = torch.autocast(device.type, dtype=dtype)(loss)
    model.training_loss = loss  # type: ignore[method-assign]


def to_device(value: Any, device: torch.device, speed: SpeedConfig) -> Any:
    """A raw batch (tensor or nested dict) on ``device``: on CUDA from page-locked memory with a
    non-blocking copy (the step's kernels queue behind it), elsewhere as it is."""
    if isinstance(value, dict):
        return {k: to_device(v, device, speed) for k, v in value.items()}
    if not isinstance(value, torch.Tensor) or value.device == device:
        return value
    if device.type == "cuda" and speed.pin_memory and value.device.type == "cpu":
        value = value.pin_memory()
    return value.to(device, non_blocking=True)


def format_batch(value: Any, device: torch.device, speed: SpeedConfig) -> Any:
    """A prepared batch with its 4-d float tensors (images) in channels_last when that is on."""
    if not channels_last(device, speed):
        return value
    if isinstance(value, dict):
        return {k: format_batch(v, device, speed) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point():
        return value.contiguous(memory_format=torch.channels_last)
    return value
