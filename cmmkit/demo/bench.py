"""Response times of a demo page through ``gradio_client``: p50/p95 per request kind.

``python -m cmmkit.demo.bench RUN [RUN ...] [--n 50] [--image FACE]`` starts the page on a free
port, then times ``--n`` sequential requests of each kind the runs support, end to end (the client's
call, the queue, the model, the files): ``generate`` (a new condition and seed each time, so nothing
is served from a cache), ``edit`` (an uploaded face, inferred once, then a new change each time) and,
for text pairs, ``generate`` is a translation with its sampled alternatives. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 (nearest rank) and the mean, in milliseconds."""
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50_ms": round(1000 * rank(0.5), 1), "p95_ms": round(1000 * rank(0.95), 1),
            "mean_ms": round(1000 * statistics.fmean(ordered), 1), "n": len(ordered)}


def timed(n: int, call: Callable[[int], Any]) -> dict[str, float]:
    call(0)  # warm-up, not counted
    times = []
    for i in range(1, n + 1):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return percentiles(times)


def measure(runs: list[str], n: int = 50, image: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gradio_client import Client, handle_file

    from cmmkit.demo.serve import start

    demo = start(runs, port=0, data_dir=data_dir)
    try:
        client = Client(demo.url, verbose=False)
        spec = demo.runs.y_spec
        result: dict[str, Any] = {"runs": runs, "torch_threads": __import__("torch").get_num_threads(),
                                  "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
        if spec.bases:  # named attributes: a different attribute and seed each request
            names = [c.name for c in spec.controls]

            def generate(i: int) -> Any:
                cond = {names[i % len(names)]: 1.0 if i % 2 else -1.0}
                return client.predict(json.dumps(cond), 0.0, i, "", api_name="/generate")
        else:  # text boxes and choices: their defaults ("seven", a sentence), a new seed each request
            cond = json.dumps({c.name: c.value for c in spec.controls})

            def generate(i: int) -> Any:
                return client.predict(cond, 0.0, i, "", api_name="/generate")
        result["generate"] = timed(n, generate)
        if demo.runs.can_edit and image:
            cond, _ = client.predict(handle_file(image), api_name="/infer")
            names = [c.name for c in spec.controls]

            def edit(i: int) -> Any:
                change = {names[i % len(names)]: 1.0 if i % 2 else -1.0}
                return client.predict(handle_file(image), json.dumps(change), cond, i, api_name="/edit")

            result["edit"] = timed(n, edit)
        return result
    finally:
        demo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmmkit.demo.bench", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--n", type=int, default=50, help="timed requests per kind (default 50)")
    parser.add_argument("--image", help="a face to edit (image pairs)")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    out = measure(args.runs, args.n, str(Path(args.image)) if args.image else None, args.data_dir)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
