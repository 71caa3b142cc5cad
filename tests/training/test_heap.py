"""``train.speed.reuse_freed_memory`` (issue 14): on CPU the trainer fixes glibc malloc's thresholds,
so a block freed by one step is reused by the next instead of being unmapped and page-faulted
afresh. The setting is process-wide, so its effect is measured in child processes."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cmmkit.config import build_config
from cmmkit.errors import ConfigError
from cmmkit.training import heap

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc only (the setting does nothing elsewhere)")
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
small_pages = pytest.mark.skipif(_THP.exists() and "[always]" in _THP.read_text(),
                                 reason="transparent huge pages are always on: fresh mappings fault in 2 MiB pages, "
                                        "so the page counts below do not apply")

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
@small_pages
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


@pytest.fixture
def fresh(monkeypatch):
    """This process's heap module as if nothing had been applied yet (restored afterwards)."""
    monkeypatch.setattr(heap, "_state", {"keep": None, "tried": False})
    for name in (*heap.USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _fake_mallopt(limit: int, calls: list):
    def mallopt(option: int, value: int) -> int:
        calls.append((option, value))
        return int(option != heap._M_MMAP_THRESHOLD or value <= limit)
    return lambda: mallopt


def test_on_without_glibc_warns_and_does_nothing(fresh, caplog):
    fresh.setattr(heap, "_glibc_mallopt", lambda: None)
    with caplog.at_level(logging.WARNING, logger="cmmkit.training.heap"):
        assert heap.apply(torch.device("cpu"), "auto") is False
        assert not caplog.records  # auto: silent
        assert heap.apply(torch.device("cpu"), "on") is False
    assert "not glibc" in caplog.text


def test_an_older_glibc_gets_its_largest_threshold(fresh):
    calls: list = []
    fresh.setattr(heap, "_glibc_mallopt", _fake_mallopt(32 << 20, calls))  # glibc < 2.35: at most 32 MiB
    assert heap.apply(torch.device("cpu"), "auto") is True
    assert heap._state["keep"] == heap.KEEP_OLD_GLIBC
    assert (heap._M_TRIM_THRESHOLD, heap.KEEP_OLD_GLIBC) in calls
    calls.clear()
    assert heap.apply(torch.device("cpu"), "auto") is True and not calls  # once per process


def test_a_refused_mallopt_is_silent_for_auto_and_reported_for_on(fresh, caplog):
    calls: list = []
    fresh.setattr(heap, "_glibc_mallopt", _fake_mallopt(0, calls))
    with caplog.at_level(logging.WARNING, logger="cmmkit.training.heap"):
        assert heap.apply(torch.device("cpu"), "auto") is False
        assert not caplog.records
        n = len(calls)
        assert heap.apply(torch.device("cpu"), "auto") is False and len(calls) == n  # not retried
        assert heap.apply(torch.device("cpu"), "on") is False
    assert "refused mallopt" in caplog.text


@pytest.mark.parametrize(("name", "value"), [("MALLOC_MMAP_THRESHOLD_", "65536"),
                                             ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")])
def test_auto_leaves_a_users_own_malloc_policy_alone(fresh, name, value):
    calls: list = []
    fresh.setattr(heap, "_glibc_mallopt", _fake_mallopt(heap.KEEP, calls))
    fresh.setenv(name, value)
    assert heap.apply(torch.device("cpu"), "auto") is False and not calls
    assert heap.apply(torch.device("cpu"), "on") is True  # asked for explicitly: the user's choice


def test_the_setting_is_validated():
    assert build_config("lfw_faces_attrs", preset="tiny").train.speed.reuse_freed_memory == "auto"
    with pytest.raises(ConfigError, match="reuse_freed_memory"):
        build_config("lfw_faces_attrs", preset="tiny", sets=["train.speed.reuse_freed_memory=always"])


def test_a_resumed_run_may_switch_it_off():
    from cmmkit.config_changes import resume_changes

    saved = build_config("lfw_faces_attrs", preset="tiny")
    off = build_config("lfw_faces_attrs", preset="tiny", sets=["train.speed.reuse_freed_memory=off"])
    assert resume_changes(saved, off) == [("train.speed.reuse_freed_memory", "auto", "off")]
    with pytest.raises(ConfigError, match="fused_optimizer"):  # the other speed settings stay fixed
        resume_changes(saved, build_config("lfw_faces_attrs", preset="tiny",
                                           sets=["train.speed.fused_optimizer=false"]))
