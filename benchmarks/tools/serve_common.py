"""Helpers for the web service benchmarks: a ``tcnn serve`` subprocess and a loopback client."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(workers: int = 1, *extra: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``tcnn serve`` on a free loopback port until the block ends; yields (port, process)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "tcnn", "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [*cmd, "-q", *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcnn serve did not start (exit {proc.poll()})")
            time.sleep(0.1)
        if workers > 1:  # every worker answers /healthz once it has loaded
            while len(worker_pids(proc.pid)) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            for _ in range(20 * workers):
                get(port, "/healthz")
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def worker_pids(pid: int) -> list[int]:
    """The uvicorn worker processes under ``pid`` (itself when it has no children)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    out = []
    for k in kids:
        cmd = Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"resource_tracker" not in cmd:
            out.append(int(k))
    return out or [pid]


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else float("nan")


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


@dataclass
class Load:
    """What one load level measured.

    Per request, in the order they ended: its latency (s) from its first send to its last
    answer, and that answer's status (a retrying client's request ends at its first answer
    that is not a 503). Per HTTP answer, retries included: the statuses.
    """

    latencies: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    #: Every HTTP answer by status, retried ones included.
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Seconds the clients slept as ``Retry-After`` told them.
    backed_off_s: float = 0.0
    #: Requests a retrying client gave up on: its next retry would have passed the deadline.
    unfinished: int = 0


def load(
    port: int,
    body: bytes,
    ctype: str,
    clients: int,
    count: int,
    max_s: float,
    retry: bool = True,
) -> Load:
    """``count`` requests (POST /v1/landmarks) from ``clients`` keep-alive connections, each
    sending its next request when the last one ends, for at most ``max_s`` seconds.

    A naive client (``retry`` false) takes any answer as the end of its request. A retrying
    one, refused with 503, waits the ``Retry-After`` seconds it was told and sends the same
    request again, until it is answered otherwise; one whose wait would pass the deadline
    gives up (counted in ``unfinished``, not served).
    """
    out = Load()
    lock = threading.Lock()
    left = [count]
    deadline = time.monotonic() + max_s

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": ctype, "Content-Length": str(len(body))}
        while time.monotonic() < deadline:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            t0 = time.perf_counter()
            while True:
                conn.request("POST", "/v1/landmarks", body, headers)
                r = conn.getresponse()
                r.read()
                with lock:
                    out.statuses[r.status] = out.statuses.get(r.status, 0) + 1
                if r.status != 503 or not retry:
                    with lock:
                        out.latencies.append(time.perf_counter() - t0)
                        out.codes.append(r.status)
                    break
                wait = float(r.getheader("Retry-After") or 1)
                if time.monotonic() + wait > deadline:
                    with lock:
                        out.unfinished += 1
                    break
                time.sleep(wait)
                with lock:
                    out.backed_off_s += wait
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.seconds = time.perf_counter() - t0
    return out


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
