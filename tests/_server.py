"""Helpers for the reward-server tests: a slow fake backend and a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import uvicorn

from spct.backends.fake import FakeBackend


class SlowFake(FakeBackend):
    """FakeBackend whose every generate call takes `delay` seconds."""

    def __init__(self, delay: float, **kw):
        super().__init__(**kw)
        self.delay = delay

    def generate(self, requests):
        time.sleep(self.delay)
        return super().generate(requests)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app, **options):
    """The app under a real uvicorn on 127.0.0.1, in a thread; `options` go to uvicorn.Config."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def cli_server(*args: str, env: dict | None = None):
    """`spct serve --engine fake ARGS` in a subprocess on a free port; yields (port, first /health response)."""
    import subprocess
    import sys

    import httpx
    import pytest

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "spct", "serve", "--engine", "fake", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"server did not start: {proc.stderr.read1().decode() if proc.poll() is not None else ''}")
        yield port, health
    finally:
        proc.terminate()
        proc.wait(timeout=10)
