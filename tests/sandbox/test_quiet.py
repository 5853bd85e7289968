"""The sandbox's servers stay silent when a client resets its connection, and only then."""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from warming.sandbox import start_world
from warming.sandbox.quiet import QuietServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOST = "www.example.com"


def _reset(port: int, sent: bytes, read: bool = False) -> None:
    """Connect, send `sent`, maybe read a little, then close with a RST (SO_LINGER 0)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(sent)
    if read:
        s.recv(1)
    s.close()


def test_resets_mid_request_and_mid_response_print_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    get = f"GET /blog HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    with start_world(n_edges=1, shield=True, prefer_varnish=False) as world:
        assert world.kind == "python"
        ports = [world.origin.port] + [int(p["url"].rsplit(":", 1)[1]) for p in world.pops()]
        for port in ports:
            for _ in range(5):
                _reset(port, b"GET /blog HTTP/1.1\r\nHo")  # mid-request
                _reset(port, get)  # the answer is written to a reset socket
                _reset(port, get * 20, read=True)  # reset mid-response, answers queued
        time.sleep(0.5)  # the handler threads meet the resets
        for port in ports:  # and every server still answers
            req = urllib.request.Request(f"http://127.0.0.1:{port}/blog", headers={"Host": HOST})
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err, err


class _Failing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        raise ValueError("a real bug")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_other_errors_still_show(capfd: pytest.CaptureFixture[str]) -> None:
    server = QuietServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        _reset(server.server_address[1], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        err = ""
        while "ValueError" not in err and time.monotonic() < deadline:
            time.sleep(0.05)
            err += capfd.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert "Traceback" in err and "ValueError: a real bug" in err, err
