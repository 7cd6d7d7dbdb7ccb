"""Serving an app for a test: uvicorn on 127.0.0.1, a free port, on a thread."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import uvicorn

from tailorgen.service import ServiceSettings


class Running:
    """An app served by uvicorn on 127.0.0.1 (a free port) on a thread, on an event loop the test can reach."""

    def __init__(self, app):
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.server.serve()), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=120)
        return self

    def wait_ready(self, seconds: float = 120) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r = self.client.get("/ready")
            if r.status_code == 200:
                return r.json()
            time.sleep(0.1)
        raise RuntimeError("the models did not load")

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


def settings_for(small_shop, models, outputs, **overrides) -> ServiceSettings:
    return ServiceSettings(dataset=small_shop, outputs=outputs, generator=models["generator"], unimp=models["unimp"],
                           gnr=models["gnr"], **overrides)  # fmt: skip
