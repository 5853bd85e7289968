"""A PoP that drip-feeds a body cannot hold a task: the whole request has a deadline."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from warming.errors import RetryLater
from warming.pop.client import PopClient
from warming.settings import FetchSettings, PopSettings, Variant


def _drip_server(stop: threading.Event) -> int:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Cache: MISS\r\n\r\n")
        while not stop.is_set():  # one byte every 0.2 s: every read is "on time"
            try:
                conn.sendall(b"x")
            except OSError:
                break
            time.sleep(0.2)
        conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1])


def test_a_drip_fed_body_is_cut_at_the_total_deadline() -> None:
    stop = threading.Event()
    port = _drip_server(stop)
    client = PopClient(FetchSettings(read_timeout_s=5, total_timeout_s=1.0))
    pop = PopSettings(name="slow", url=f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    try:
        with pytest.raises(RetryLater, match="body not complete after 1 s"):
            client.get(pop, "http://www.example.com/slow", Variant())
    finally:
        stop.set()
    assert time.monotonic() - t0 < 3
