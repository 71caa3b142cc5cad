"""``cmmkit demo RUN [RUN ...]``: load the runs once and serve their page on this machine.

Gradio's analytics are off (``GRADIO_ANALYTICS_ENABLED=False`` is set before gradio is imported and
the page is built with ``analytics_enabled=False``); nothing is shared, there is no server-side
rendering, and the default theme's fonts are served by the app itself, so the page makes no request
outside the machine (the browser test checks it).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmmkit.errors import ConfigError


def default_concurrency() -> int:
    """Requests served at once: the cores left over after torch's threads for one model call (at
    least 1). Model calls themselves run one at a time (see :mod:`cmmkit.demo.engine`); the other
    slots decode uploads and encode results meanwhile."""
    import torch

    return max(1, (os.cpu_count() or 1) // max(1, torch.get_num_threads()))


@dataclass
class Demo:
    """A launched page: ``url`` to open, ``close()`` to stop it."""

    page: Any
    url: str
    runs: Any
    files: Any

    def close(self) -> None:
        self.page.close()
        self.files.close()


def check_port(host: str, port: int) -> int:
    """``port`` if it can be listened on at ``host``, a free one for 0; else a ConfigError saying so."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is in use (another demo?); pick another with --port N, "
                                  "or --port 0 for any free one") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return int(sock.getsockname()[1])


def start(paths: list[str | Path], *, host: str = "127.0.0.1", port: int = 7860, device: str = "cpu",
          data_dir: str | Path | None = None, concurrency: int | None = None) -> Demo:
    """Load the runs, build their page and serve it in the background; returns its address."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("cmmkit demo needs gradio: pip install 'cmmkit[demo]'") from None
    from cmmkit.demo.engine import MAX_UPLOAD_BYTES, DemoRuns
    from cmmkit.demo.files import OutputFiles
    from cmmkit.demo.page import CSS, build
    from cmmkit.runs import load_run

    concurrency = concurrency or default_concurrency()
    if concurrency < 1:
        raise ConfigError(f"--concurrency {concurrency}: expected at least 1")
    port = check_port(host, port)  # before loading: a busy port is said at once
    runs = []
    for path in paths:
        if not Path(path).is_dir():
            raise ConfigError(f"{path}: no such run folder (give folders written by `cmmkit train`)")
        runs.append(load_run(path, device=device))
    demo = DemoRuns(runs, Path(data_dir) if data_dir else None)
    files = OutputFiles()
    page = build(demo, files, concurrency)
    page.queue(default_concurrency_limit=concurrency)
    try:
        _, url, _ = page.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                                quiet=True, share=False, ssr_mode=False, max_file_size=MAX_UPLOAD_BYTES,
                                enable_monitoring=False, pwa=False, mcp_server=False, footer_links=["api"], css=CSS)
    except OSError as exc:
        files.close()
        raise ConfigError(f"cannot serve on {host}:{port}: {exc}") from None
    return Demo(page, url, demo, files)


def _demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    demo = start(args.runs, host=args.host, port=args.port, device=args.device, data_dir=args.data_dir,
                 concurrency=args.concurrency)
    for note in demo.runs.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"cmmkit demo: {len(demo.runs.runs)} run(s) of {demo.runs.pair.name} at {demo.url} "
          f"(started in {time.perf_counter() - started:.1f} s; Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        demo.close()
        return 0


def add_command(sub: Any) -> None:
    d = sub.add_parser("demo", help="a local web page to try runs: faces from attributes and editing, speech, "
                                    "translation; several runs side by side (pip install 'cmmkit[demo]')")
    d.add_argument("runs", nargs="+", help="run folder(s) written by `cmmkit train`, all of one pair")
    d.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860; 0: any free one)")
    d.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    d.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    d.add_argument("--data-dir", help="the pair's data folder, for test examples to pick (else the run's "
                                      "config / $CMMKIT_DATA)")
    d.add_argument("--concurrency", type=int, help="requests served at once (default: cores / torch threads)")
    d.set_defaults(func=_demo)

