"""``python -m cmmkit ...`` and ``torchrun -m cmmkit train ...``: the same as the ``cmmkit`` command."""

from __future__ import annotations

import sys

from cmmkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
