"""PopClient's Host and SNI: only an allowed host, never user info, whatever URL it is given.

Against a real Varnish PoP in front of the sandbox origin (which records every Host
the PoP forwarded), and a bare TCP listener standing in for an HTTPS PoP (which
records every connection: no connection, no SNI).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support import SITE, need
from warming.errors import FetchError
from warming.pop.client import PopClient
from warming.sandbox import Origin, VarnishEdge, varnish_available
from warming.settings import FetchSettings, PopSettings, SiteSettings, Variant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ELSEWHERE = 9  # a port on another host
HOSTILE = [
    f"http://127.0.0.1:{ELSEWHERE}/x",
    f"http://2130706433:{ELSEWHERE}/x",
    f"http://www.example.com@127.0.0.1:{ELSEWHERE}/x",
    "http://user:hunter2@www.example.com/x",
    f"http://localhost:{ELSEWHERE}/x",
    "http://cdn.other.example/x",
    f"http://www.example.com:{ELSEWHERE}/x",
    "http://[::1]/x",
]


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[Origin, PopSettings]]:
    need(varnish_available(), "varnishd is not installed")
    with Origin() as origin, VarnishEdge("edge1", ("127.0.0.1", origin.port)) as e:
        yield origin, PopSettings(name="edge1", url=e.url)


class Listener:
    """Accepts and closes connections, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def client() -> PopClient:
    return PopClient(
        FetchSettings(connect_timeout_s=2, read_timeout_s=5), SiteSettings(base_url=SITE)
    )


@pytest.mark.parametrize("url", HOSTILE)
def test_a_url_the_site_does_not_allow_never_reaches_the_pop(
    edge: tuple[Origin, PopSettings], url: str
) -> None:
    origin, pop = edge
    origin.reset_counts()
    with pytest.raises(FetchError, match=r"^not requested: ") as info:
        client().get(pop, url, Variant())
    assert origin.requests() == 0 and origin.hosts_seen == set()
    assert "hunter2" not in str(info.value) and "hunter2" not in info.value.url


def test_an_allowed_url_reaches_the_pop_with_only_its_host(
    edge: tuple[Origin, PopSettings],
) -> None:
    origin, pop = edge
    origin.reset_counts()
    c = client()
    assert c.get(pop, SITE + "/allowed", Variant()).status == 200
    assert c.get(pop, "http://WWW.Example.COM:80/allowed-too", Variant()).status == 200
    assert origin.hosts_seen == {"www.example.com"}
    assert origin.counts == {"/allowed": 1, "/allowed-too": 1}


def test_without_the_site_user_info_is_still_refused(edge: tuple[Origin, PopSettings]) -> None:
    """A client built without the site (a purger's) still never sends user info as Host."""
    origin, pop = edge
    origin.reset_counts()
    bare = PopClient(FetchSettings())
    with pytest.raises(FetchError, match="user info"):
        bare.request("PURGE", pop, f"http://www.example.com@127.0.0.1:{ELSEWHERE}/x")
    assert origin.requests() == 0


def test_over_https_a_refused_url_opens_no_connection_so_sends_no_sni() -> None:
    listener = Listener()
    pop = PopSettings(name="tls", url=f"https://127.0.0.1:{listener.port}")
    try:
        for url in ["https://cdn.other.example/x", "https://www.example.com@evil.example/x"]:
            with pytest.raises(FetchError, match=r"^not requested: "):
                client().get(pop, url, Variant())
        assert listener.connections == 0
        # The control: an allowed URL does connect (and fails the handshake).
        with pytest.raises(FetchError):
            client().get(pop, "https://www.example.com/x", Variant())
        assert listener.connections >= 1
    finally:
        listener.close()
