"""``train.speed.reuse_freed_memory`` (issue 14): on CPU the trainer fixes glibc malloc's thresholds,
so a block freed by one step is reused by the next instead of being unmapped and page-faulted
afresh. The setting is process-wide, so its effect is measured in child processes."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys

import pytest
import torch

from cmmkit.config import build_config
from cmmkit.errors import ConfigError
from cmmkit.training import heap

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc only (the setting does nothing elsewhere)")

# A step's activations, 36-48 MB each: above glibc's largest self-set mmap threshold (32 MiB on
# 64-bit), so without the setting every one is a fresh mapping whose pages all fault on first touch
_CHILD = """
import json, resource, sys, torch
from cmmkit.training import heap
applied = heap.apply(torch.device(sys.argv[1]), sys.argv[2])
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
per_step = []
for step in range(20):
    before = faults()
    acts = [torch.empty(mb << 18).fill_(1.0) for mb in (40, 48, 36, 44)]
    del acts
    per_step.append(faults() - before)
print(json.dumps({"applied": applied, "per_step": per_step}))
"""


def _child(device: str, setting: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, device, setting], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc
def test_freed_blocks_are_reused_without_page_faults():
    off = _child("cpu", "off")
    on = _child("cpu", "auto")
    assert not off["applied"] and on["applied"]
    assert min(off["per_step"]) > 40_000  # 43,000 pages of fresh mappings, every step
    # the heap's blocks, touched already. The first steps may still map a block afresh (measured:
    # settled by step 8 in every process) while freed blocks coalesce: glibc's aligned allocation
    # needs 64 bytes more than a freed block of the same size offers
    assert max(on["per_step"][-6:]) < 1_000


@glibc
def test_auto_leaves_a_cuda_process_alone():
    assert not _child("cuda", "auto")["applied"]
    assert _child("cuda", "on")["applied"]  # asked for explicitly


@pytest.mark.parametrize(("device", "setting", "expected"), [
    ("cpu", "auto", True), ("cpu", "on", True), ("cpu", "off", False),
    ("cuda", "auto", False), ("cuda", "on", True), ("cuda", "off", False),
])
def test_wanted(device, setting, expected):
    assert heap.wanted(torch.device(device), setting) is expected


def test_on_without_glibc_warns_and_does_nothing(monkeypatch, caplog):
    monkeypatch.setattr(heap, "_applied", False)
    monkeypatch.setattr(heap, "_glibc_mallopt", lambda: None)
    with caplog.at_level(logging.WARNING, logger="cmmkit.training.heap"):
        assert heap.apply(torch.device("cpu"), "auto") is False
        assert not caplog.records  # auto: silent
        assert heap.apply(torch.device("cpu"), "on") is False
    assert "not glibc" in caplog.text


def test_a_refused_mallopt_is_reported(monkeypatch, caplog):
    monkeypatch.setattr(heap, "_applied", False)
    monkeypatch.setattr(heap, "_glibc_mallopt", lambda: (lambda option, value: 0))
    with caplog.at_level(logging.WARNING, logger="cmmkit.training.heap"):
        assert heap.apply(torch.device("cpu"), "on") is False
    assert "refused mallopt" in caplog.text


def test_the_setting_is_validated():
    assert build_config("lfw_faces_attrs", preset="tiny").train.speed.reuse_freed_memory == "auto"
    with pytest.raises(ConfigError, match="reuse_freed_memory"):
        build_config("lfw_faces_attrs", preset="tiny", sets=["train.speed.reuse_freed_memory=always"])
