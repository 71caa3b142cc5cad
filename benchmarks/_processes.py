"""Alternating pairs of child processes, for benchmarks whose two sides cannot share a process
(cmmkit's allocator setting, ``train.speed.reuse_freed_memory``, is process-wide)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator


def child_result(command: list[str]) -> dict:
    """Run one child; its last line of standard output is its JSON result."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[-2:])}: the process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternating(base: list[str], flag: str, sides: tuple[str, str], pairs: int) -> Iterator[dict[str, dict]]:
    """Per pair, ``{side: result}`` of ``base + [flag, side]`` for both sides, in alternating order
    (A B, then B A, ...) so a machine's drift hits both."""
    for p in range(pairs):
        order = sides if p % 2 == 0 else sides[::-1]
        yield {side: child_result([*base, flag, side]) for side in order}
