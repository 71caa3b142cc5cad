"""`import cmmkit` as the README shows it."""

import subprocess
import sys


def test_train_stays_the_function_after_the_trainer_is_imported():
    # a subpackage named like a top-level function would replace it on import (it once did)
    code = ("import cmmkit, cmmkit.runs, cmmkit.training.trainer; "
            "assert callable(cmmkit.train) and callable(cmmkit.resume) and callable(cmmkit.load_run); "
            "assert cmmkit.train is cmmkit.runs.train")
    subprocess.run([sys.executable, "-c", code], check=True)
