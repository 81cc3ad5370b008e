"""A real uvicorn server on a free loopback port, in a background thread, for the serve tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Generous bound on start-up (loading and warming the models), for a loaded CI machine.
START_S = 300


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while the block runs; yields the base URL.

    Returns once the server has started (its start-up has signalled it), not after a guess at
    how long that takes.
    """
    import uvicorn

    ready = threading.Event()  # set when start-up ended, well or not

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().startup(sockets=sockets)
            finally:
                ready.set()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server(uvicorn.Config(app, log_level="warning", access_log=False))

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(START_S) or not server.started:
        server.should_exit = True
        raise RuntimeError(f"the test server did not start (waited up to {START_S} s)")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
