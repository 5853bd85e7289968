"""PopClient.get over real sockets: a plain HTTP server and a TLS one, each in a thread."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import need
from warming import defaults
from warming.errors import FetchError, RetryLater
from warming.pop.client import PopClient
from warming.settings import FetchSettings, PopSettings, Variant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SITE_HOST = "www.example.com"
BIG = os.urandom(300 * 1024)  # several 64 KiB read chunks
GZIPPED = b"\x1f\x8b\x08\x00not-really-gzip-but-opaque-bytes"


@dataclass
class Seen:
    """What one server received."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


def handler_for(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.requests.append({"path": self.path, "headers": dict(self.headers.items())})
            path = self.path.split("?")[0]
            status, headers, body = ROUTES.get(path, (404, {}, b"not found"))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/ok": (
        200,
        {
            "X-Cache": "MISS",
            "Age": "0",
            "ETag": '"v1"',
            "Surrogate-Key": "post-1 home",
            "Cache-Tag": "home,blog",
            "xkey": "post-1 author-9",
        },
        b"<html>hello</html>",
    ),
    "/big": (200, {"X-Cache": "HIT", "Age": "12"}, BIG),
    "/gz": (200, {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}, GZIPPED),
    "/429": (429, {"Retry-After": "7"}, b"slow down"),
    "/503": (503, {}, b"unavailable"),
    "/503-date": (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, b""),
    "/500": (500, {}, b"boom"),
    "/404": (404, {}, b"nope"),
}


class Server:
    """A ThreadingHTTPServer on 127.0.0.1:0, optionally TLS with an SNI recorder."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen = Seen()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.seen))
        if tls is not None:
            tls.sni_callback = self._sni
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.seen.sni.append(name)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def make_client() -> Iterator[Callable[..., PopClient]]:
    made: list[PopClient] = []

    def make(**kw: Any) -> PopClient:
        c = PopClient(FetchSettings(connect_timeout_s=2, read_timeout_s=5, **kw))
        made.append(c)
        return c

    yield make
    for c in made:
        for pool in c._pools.values():
            pool.close()


def pop_at(server: Server) -> PopSettings:
    return PopSettings(name="fra", url=server.url)


# -- plain HTTP ------------------------------------------------------------------------


def test_request_goes_to_the_pop_with_the_site_host(
    server: Server, make_client: Callable[..., PopClient]
) -> None:
    got = make_client().get(pop_at(server), f"http://{SITE_HOST}/ok?x=1&y=2", Variant())
    [req] = server.seen.requests
    assert req["path"] == "/ok?x=1&y=2"
    assert req["headers"]["Host"] == SITE_HOST
    assert req["headers"]["User-Agent"] == defaults.USER_AGENT
    # As a visitor's client asks: a cache that varies on it keys the object on it.
    assert req["headers"]["Accept-Encoding"] == "gzip, deflate"
    assert got.status == 200
    assert got.digest == hashlib.sha256(b"<html>hello</html>").hexdigest()
    assert got.size == len(b"<html>hello</html>")
    assert got.etag == '"v1"'
    assert (got.cache.verdict.value, got.cache.header, got.age) == ("MISS", "x-cache", 0)
    assert got.keys == ("post-1", "home", "blog", "author-9")
    assert got.ttfb_ms > 0 and got.elapsed_ms >= got.ttfb_ms


def test_host_keeps_a_non_default_port_and_variant_headers_are_sent(
    server: Server, make_client: Callable[..., PopClient]
) -> None:
    variant = Variant(name="br", headers={"Accept-Encoding": "br"})
    make_client().get(pop_at(server), f"http://{SITE_HOST}:8080/ok", variant)
    [req] = server.seen.requests
    assert req["headers"]["Host"] == f"{SITE_HOST}:8080"
    assert req["headers"]["Accept-Encoding"] == "br"


def test_whole_body_is_read_and_hashed(
    server: Server, make_client: Callable[..., PopClient]
) -> None:
    got = make_client().get(pop_at(server), f"http://{SITE_HOST}/big", Variant())
    assert got.size == len(BIG)
    assert got.digest == hashlib.sha256(BIG).hexdigest()
    assert (got.cache.is_hit, got.age) == (True, 12)


def test_encoded_body_is_hashed_as_sent(
    server: Server, make_client: Callable[..., PopClient]
) -> None:
    got = make_client().get(pop_at(server), f"http://{SITE_HOST}/gz", Variant())
    assert got.digest == hashlib.sha256(GZIPPED).hexdigest()
    assert got.size == len(GZIPPED)


@pytest.mark.parametrize(
    ("path", "status", "delay"),
    [("/429", 429, 7.0), ("/503", 503, None), ("/503-date", 503, 0.0), ("/500", 500, None)],
)
def test_retryable_statuses(
    server: Server,
    make_client: Callable[..., PopClient],
    path: str,
    status: int,
    delay: float | None,
) -> None:
    url = f"http://{SITE_HOST}{path}"
    with pytest.raises(RetryLater) as info:
        make_client().get(pop_at(server), url, Variant())
    e = info.value
    assert (e.status, e.delay, e.url, e.pop) == (status, delay, url, "fra")
    assert str(status) in str(e)


def test_404_is_final(server: Server, make_client: Callable[..., PopClient]) -> None:
    with pytest.raises(FetchError) as info:
        make_client().get(pop_at(server), f"http://{SITE_HOST}/404", Variant())
    assert not isinstance(info.value, RetryLater)
    assert info.value.status == 404


@pytest.fixture
def moved(server: Server) -> Iterator[tuple[Server, str]]:
    """A 301 at /moved pointing at a second server, which must never be asked."""
    target = Server()
    location = f"{target.url}/elsewhere"
    ROUTES["/moved"] = (301, {"Location": location}, b"")
    yield target, location
    del ROUTES["/moved"]
    target.close()


def test_redirect_is_not_followed(
    server: Server, moved: tuple[Server, str], make_client: Callable[..., PopClient]
) -> None:
    target, _ = moved
    with pytest.raises(FetchError) as info:
        make_client().get(pop_at(server), f"http://{SITE_HOST}/moved", Variant())
    assert info.value.pop == "fra"
    assert len(server.seen.requests) == 1
    assert target.seen.requests == [], "the redirect was followed"


def test_redirect_is_a_final_error_naming_the_location(
    server: Server, moved: tuple[Server, str], make_client: Callable[..., PopClient]
) -> None:
    _, location = moved
    with pytest.raises(FetchError) as info:
        make_client().get(pop_at(server), f"http://{SITE_HOST}/moved", Variant())
    assert not isinstance(info.value, RetryLater)
    assert info.value.status == 301
    assert location in str(info.value)


def test_connection_refused_is_retryable(make_client: Callable[..., PopClient]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pop = PopSettings(name="dead", url=f"http://127.0.0.1:{port}")
    with pytest.raises(RetryLater) as info:
        make_client().get(pop, f"http://{SITE_HOST}/ok", Variant())
    assert "Connection refused" in str(info.value)
    assert (info.value.pop, info.value.delay) == ("dead", None)


# -- HTTPS -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PKI:
    ca: Path
    good: Path  # cert + key for SITE_HOST
    evil: Path  # cert + key for evil.example, same CA


def _pki_cryptography(d: Path) -> PKI:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("warming test CA"))
        .issuer_name(name("warming test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(host: str) -> Path:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(host))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        path = d / f"{host}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    return PKI(d / "ca.pem", leaf(SITE_HOST), leaf("evil.example"))


def _pki_openssl(d: Path) -> PKI:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=warming test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip

    def leaf(host: str) -> Path:
        (d / f"{host}.ext").write_text(
            f"subjectAltName=DNS:{host}\nbasicConstraints=critical,CA:FALSE\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
        )
        run("req", *ec, "-keyout", f"{host}.key", "-out", f"{host}.csr", "-subj", f"/CN={host}")
        run("x509", "-req", "-in", f"{host}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{host}.crt", "-days", "1",
            "-extfile", f"{host}.ext")  # fmt: skip
        path = d / f"{host}.pem"
        path.write_bytes((d / f"{host}.crt").read_bytes() + (d / f"{host}.key").read_bytes())
        return path

    return PKI(d / "ca.pem", leaf(SITE_HOST), leaf("evil.example"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    try:
        return _pki_cryptography(d)
    except ImportError:
        need(shutil.which("openssl") is not None, "neither cryptography nor openssl")
        return _pki_openssl(d)


def tls_server(cert_chain: Path) -> Server:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_chain)
    return Server(tls=ctx)


@pytest.fixture
def good(pki: PKI) -> Iterator[Server]:
    s = tls_server(pki.good)
    yield s
    s.close()


@pytest.fixture
def evil(pki: PKI) -> Iterator[Server]:
    s = tls_server(pki.evil)
    yield s
    s.close()


def trusting(make: Callable[..., PopClient], ca: Path) -> PopClient:
    """A client that trusts our test CA (fetch.ca_bundle), verification on."""
    return make(verify_tls=True, ca_bundle=str(ca))


def test_https_sends_the_site_name_as_sni_and_checks_the_cert_against_it(
    good: Server, pki: PKI, make_client: Callable[..., PopClient]
) -> None:
    client = trusting(make_client, pki.ca)
    got = client.get(pop_at(good), f"https://{SITE_HOST}/ok", Variant())
    assert good.seen.sni == [SITE_HOST]
    [req] = good.seen.requests
    assert req["headers"]["Host"] == SITE_HOST
    assert got.status == 200
    assert got.digest == hashlib.sha256(b"<html>hello</html>").hexdigest()


def test_https_cert_for_another_name_is_refused(
    evil: Server, pki: PKI, make_client: Callable[..., PopClient]
) -> None:
    client = trusting(make_client, pki.ca)
    with pytest.raises(FetchError) as info:
        client.get(pop_at(evil), f"https://{SITE_HOST}/ok", Variant())
    assert evil.seen.sni == [SITE_HOST]
    assert evil.seen.requests == [], "a request was sent over an unverified connection"
    assert info.value.pop == "fra"


def test_https_cert_for_another_name_says_why(
    evil: Server, pki: PKI, make_client: Callable[..., PopClient]
) -> None:
    client = trusting(make_client, pki.ca)
    with pytest.raises(FetchError) as info:
        client.get(pop_at(evil), f"https://{SITE_HOST}/ok", Variant())
    text = str(info.value).lower()
    assert "certificate" in text or "hostname" in text


def test_https_untrusted_ca_is_refused_by_default(
    good: Server, make_client: Callable[..., PopClient]
) -> None:
    with pytest.raises(FetchError) as info:
        make_client().get(pop_at(good), f"https://{SITE_HOST}/ok", Variant())
    assert "certificate verify failed" in str(info.value)
    assert good.seen.sni == [SITE_HOST]
    assert good.seen.requests == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_without_verification_still_sends_sni(
    evil: Server, make_client: Callable[..., PopClient]
) -> None:
    got = make_client(verify_tls=False).get(pop_at(evil), f"https://{SITE_HOST}/ok", Variant())
    assert got.status == 200
    assert evil.seen.sni == [SITE_HOST]
    assert evil.seen.requests[0]["headers"]["Host"] == SITE_HOST
