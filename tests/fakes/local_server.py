"""A Starlette app served by uvicorn on a free loopback port, in a thread: the base of the
fakes of services Terry talks to (GitHub, Argo CD, Anthropic) and of tests' own receivers."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.applications import Starlette

from terry.ports import free_port

__all__ = ["LocalServer"]


class LocalServer:
    label = "local server"

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Starlette:
        raise NotImplementedError

    def start(self) -> None:
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
