"""The local world against real processes: a threaded origin, varnishd PoPs and PyEdge.

Varnish tests skip when varnishd is missing, and fail instead under CI=true.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from warming.sandbox import (
    HEALTH_PATH,
    Origin,
    PyEdge,
    VarnishEdge,
    World,
    start_world,
    varnish_available,
)
from warming.sandbox.varnish import process_alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOST = "www.example.com"
KINDS = ["varnish", "python"]


def _need(kind: str) -> None:
    if kind == "varnish" and not varnish_available():
        if os.environ.get("CI") == "true":
            pytest.fail("varnishd is required under CI")
        pytest.skip("varnishd not installed")


def _world(
    kind: str, n_edges: int, shield: bool = False, throttle_rps: int | None = None
) -> Iterator[World]:
    _need(kind)
    world = start_world(
        n_edges, shield=shield, throttle_rps=throttle_rps, prefer_varnish=kind == "varnish"
    )
    assert world.kind == kind
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture(scope="module", params=KINDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    yield from _world(request.param, n_edges=2)


@pytest.fixture(scope="module", params=KINDS)
def shielded(request: pytest.FixtureRequest) -> Iterator[World]:
    yield from _world(request.param, n_edges=2, shield=True)


@pytest.fixture
def path() -> str:
    """A fresh path per test, so tests sharing a world never see each other's objects."""
    return f"/blog/{uuid.uuid4().hex[:12]}"


def get(base: str, path: str, **headers: str) -> requests.Response:
    return requests.get(base + path, headers={"Host": HOST, **headers}, timeout=10)


def purge(base: str, path: str = "/", **headers: str) -> requests.Response:
    return requests.request("PURGE", base + path, headers={"Host": HOST, **headers}, timeout=10)


# -- origin -------------------------------------------------------------------------


def test_origin_page_headers_and_counters() -> None:
    with Origin() as origin:
        origin.set_keys("/a", ["team-x"])
        r = get(origin.url, "/a")
        assert r.status_code == 200
        assert "<h1>/a</h1>" in r.text and "version 1" in r.text
        assert r.headers["Cache-Control"] == "public, max-age=3600"
        assert r.headers["Vary"] == "Accept-Encoding"
        assert r.headers["xkey"] == r.headers["Surrogate-Key"] == "all path-a team-x"
        etag = r.headers["ETag"]
        assert get(origin.url, "/a", **{"If-None-Match": etag}).status_code == 304

        head = requests.head(origin.url + "/a", headers={"Host": HOST}, timeout=5)
        assert head.headers["Content-Length"] == r.headers["Content-Length"] and not head.content

        origin.bump("/a")
        assert "version 2" in get(origin.url, "/a").text
        assert "version 1" in get(origin.url, "/b").text
        origin.set_version(7)
        assert "version 7" in get(origin.url, "/a").text
        assert origin.requests("/a") == 5 and origin.requests() == 6
        assert origin.counts == {"/a": 5, "/b": 1}
        assert origin.hosts_seen == {HOST}
        origin.reset_counts()
        assert origin.requests() == 0


def test_origin_failures_and_latency() -> None:
    with Origin() as origin:
        origin.fail("/down", 503, times=2, retry_after=3)
        first = get(origin.url, "/down/x")
        assert (first.status_code, first.headers["Retry-After"]) == (503, "3")
        assert first.headers["Cache-Control"] == "no-store"
        assert get(origin.url, "/down/y").status_code == 503
        assert get(origin.url, "/down/x").status_code == 200
        origin.fail("/gone", 404)
        assert [get(origin.url, "/gone").status_code for _ in range(3)] == [404] * 3
        origin.clear_failures()
        assert get(origin.url, "/gone").status_code == 200

        origin.latency_s = 0.2
        began = time.monotonic()
        get(origin.url, "/slow")
        assert time.monotonic() - began >= 0.2


# -- one tier -------------------------------------------------------------------------


def test_miss_then_hit(world: World, path: str) -> None:
    edge = world.edges[0]
    first = get(edge.url, path)
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    assert f"<h1>{path}</h1>" in first.text
    assert f"version {world.origin.version(path)}" in first.text
    second = get(edge.url, path)
    assert second.headers["X-Cache"] == "HIT"
    assert second.text == first.text
    assert "Age" in second.headers
    assert world.origin.requests(path) == 1
    assert HOST in world.origin.hosts_seen
    # Each edge has its own cache; the Host is part of the key.
    assert get(world.edges[1].url, path).headers["X-Cache"] == "MISS"
    assert get(edge.url, path, Host="other.example.com").headers["X-Cache"] == "MISS"
    assert "other.example.com" in world.origin.hosts_seen


def test_head_and_health(world: World, path: str) -> None:
    edge = world.edges[0]
    head = requests.head(edge.url + path, headers={"Host": HOST}, timeout=10)
    assert (head.status_code, head.headers["X-Cache"], head.content) == (200, "MISS", b"")
    assert get(edge.url, path).headers["X-Cache"] == "HIT"
    health = get(edge.url, HEALTH_PATH)
    assert (health.status_code, health.text) == (200, "OK\n")


def test_purge_makes_next_get_a_miss(world: World, path: str) -> None:
    edge = world.edges[0]
    get(edge.url, path)
    assert get(edge.url, path).headers["X-Cache"] == "HIT"
    answer = purge(edge.url, path)
    assert (answer.status_code, answer.text) == (200, "Purged\n")
    assert get(edge.url, path).headers["X-Cache"] == "MISS"
    assert world.origin.requests(path) == 2


def test_xkey_purge_drops_exactly_the_tagged_objects(world: World, path: str) -> None:
    edge = world.edges[0]
    tag = f"group-{uuid.uuid4().hex[:8]}"
    tagged, untagged = [path + "/a", path + "/b"], path + "/c"
    for p in tagged:
        world.origin.set_keys(p, [tag])
    for p in [*tagged, untagged]:
        assert get(edge.url, p).headers["X-Cache"] == "MISS"
    answer = purge(edge.url, **{"xkey-purge": f"{tag} no-such-key"})
    assert answer.status_code == 200
    assert answer.headers["X-Purged"] == "2"
    assert answer.text == "Purged 2\n"
    assert [get(edge.url, p).headers["X-Cache"] for p in tagged] == ["MISS", "MISS"]
    assert get(edge.url, untagged).headers["X-Cache"] == "HIT"


def test_xkey_purge_by_path_key(world: World, path: str) -> None:
    edge = world.edges[0]
    get(edge.url, path)
    key = "path-" + path.strip("/").replace("/", "-")
    assert purge(edge.url, **{"xkey-purge": key}).headers["X-Purged"] == "1"
    assert get(edge.url, path).headers["X-Cache"] == "MISS"


def test_bump_then_purge_serves_new_content(world: World, path: str) -> None:
    edge = world.edges[0]
    before = world.origin.version(path)
    assert f"version {before}" in get(edge.url, path).text
    world.origin.bump(path)
    stale = get(edge.url, path)
    assert (stale.headers["X-Cache"], f"version {before}" in stale.text) == ("HIT", True)
    purge(edge.url, path)
    fresh = get(edge.url, path)
    assert fresh.headers["X-Cache"] == "MISS"
    assert f"version {before + 1}" in fresh.text


def test_origin_errors_are_not_cached(world: World, path: str) -> None:
    edge = world.edges[0]
    world.origin.fail(path, 500, times=1)
    failed = get(edge.url, path)
    assert (failed.status_code, failed.headers["X-Cache"]) == (500, "MISS")
    assert get(edge.url, path).status_code == 200
    assert get(edge.url, path).headers["X-Cache"] == "HIT"


def test_purge_only_from_loopback_127_0_0_1(world: World, path: str) -> None:
    edge = world.edges[0]
    get(edge.url, path)
    conn = http.client.HTTPConnection(
        "127.0.0.1", edge.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    try:
        conn.request("PURGE", path, headers={"Host": HOST})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 403
    assert get(edge.url, path).headers["X-Cache"] == "HIT"


def test_pops_shape(world: World) -> None:
    pops = world.pops()
    assert [p["name"] for p in pops] == ["edge1", "edge2"]
    assert all(p["tier"] == "edge" and p["url"].startswith("http://127.0.0.1:") for p in pops)


# -- shield ---------------------------------------------------------------------------


def test_shield_chains_x_cache_edge_most_last(shielded: World, path: str) -> None:
    edge1, edge2 = shielded.edges
    assert shielded.shield is not None
    assert [p["tier"] for p in shielded.pops()] == ["shield", "edge", "edge"]
    assert shielded.pops()[0]["name"] == "shield"
    # shield MISS, edge MISS -> the edge then holds the shield's "MISS" with the object.
    assert get(edge1.url, path).headers["X-Cache"] == "MISS, MISS"
    assert get(edge1.url, path).headers["X-Cache"] == "MISS, HIT"
    # A second edge fills from the warm shield.
    assert get(edge2.url, path).headers["X-Cache"] == "HIT, MISS"
    assert get(edge2.url, path).headers["X-Cache"] == "HIT, HIT"
    assert get(shielded.shield.url, path).headers["X-Cache"] == "HIT"
    assert shielded.origin.requests(path) == 1
    # Purging one edge only: it refills from the shield.
    purge(edge1.url, path)
    assert get(edge1.url, path).headers["X-Cache"] == "HIT, MISS"
    assert shielded.origin.requests(path) == 1
    assert shielded.origin.hosts_seen == {HOST}


# -- throttle -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_throttle_answers_429_with_retry_after(kind: str) -> None:
    for world in _world(kind, n_edges=1, throttle_rps=5):
        edge = world.edges[0]
        with requests.Session() as session:
            answers = [
                session.get(edge.url + "/t", headers={"Host": HOST}, timeout=10) for _ in range(30)
            ]
        statuses = [a.status_code for a in answers]
        limited = [a for a in answers if a.status_code == 429]
        assert 5 <= statuses.count(200) < 15, statuses
        assert limited and all(a.headers["Retry-After"] == "1" for a in limited)
        assert set(statuses) == {200, 429}
        # Only GETs are throttled: purges still go through.
        assert purge(edge.url, "/t").status_code == 200
        time.sleep(1.1)
        assert get(edge.url, "/t").status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_dead_backend_is_a_503_and_not_cached(kind: str) -> None:
    _need(kind)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    edge_type = VarnishEdge if kind == "varnish" else PyEdge
    with edge_type("edge1", ("127.0.0.1", dead)) as edge:
        for _ in range(2):
            answer = get(edge.url, "/x")
            assert (answer.status_code, answer.headers["X-Cache"]) == (503, "MISS")


# -- lifecycle ------------------------------------------------------------------------


def test_varnish_stop_leaves_no_process_and_no_workdir(tmp_path: Path) -> None:
    _need("varnish")
    with Origin() as origin:
        edge = VarnishEdge("edge1", ("127.0.0.1", origin.port), workdir=tmp_path)
        with edge:
            assert edge.startup_s is not None and edge.startup_s < 2.0
            assert len(edge.pids) == 2  # manager and cache process
            assert all(process_alive(pid) for pid in edge.pids)
            workdir = edge.workdir
            assert workdir is not None and workdir.parent == tmp_path
            assert get(edge.url, "/x").headers["X-Cache"] == "MISS"
        assert not any(process_alive(pid) for pid in edge.pids)
        assert not workdir.exists()
        edge.stop()  # idempotent


def test_varnish_stop_after_manager_killed(tmp_path: Path) -> None:
    _need("varnish")
    with Origin() as origin:
        edge = VarnishEdge("edge1", ("127.0.0.1", origin.port), workdir=tmp_path).start()
        os.kill(edge.pids[0], 9)
        edge.stop()
        assert not any(process_alive(pid) for pid in edge.pids)


def test_varnish_bad_backend_host_fails_cleanly(tmp_path: Path) -> None:
    _need("varnish")
    edge = VarnishEdge("bad", ('bad"host', 1), workdir=tmp_path)
    with pytest.raises(Exception, match="varnishd exited"):
        edge.start()
    assert list(tmp_path.iterdir()) == []
    assert edge.workdir is None


@pytest.mark.parametrize("kind", KINDS)
def test_two_worlds_at_once_are_independent(kind: str) -> None:
    _need(kind)
    with (
        start_world(n_edges=1, prefer_varnish=kind == "varnish") as a,
        start_world(n_edges=1, prefer_varnish=kind == "varnish") as b,
    ):
        assert a.edges[0].port != b.edges[0].port
        a.origin.set_version(11)
        b.origin.set_version(22)
        assert "version 11" in get(a.edges[0].url, "/same").text
        assert "version 22" in get(b.edges[0].url, "/same").text
        urls = [a.edges[0].url, b.edges[0].url]
    for url in urls:
        with pytest.raises(requests.ConnectionError):
            get(url, "/same")


def test_failed_start_stops_what_started(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[PyEdge] = []
    real_start = PyEdge.start

    def start(self: PyEdge) -> PyEdge:
        if self.name == "edge2":
            raise OSError("no more ports")
        started.append(self)
        return real_start(self)

    monkeypatch.setattr(PyEdge, "start", start)
    with pytest.raises(OSError, match="no more ports"):
        start_world(n_edges=2, shield=True, prefer_varnish=False)
    assert [e.name for e in started] == ["shield", "edge1"]
    for edge in started:
        with pytest.raises(Exception, match="not running"):
            _ = edge.port


def test_ports_are_free_after_stop() -> None:
    world = start_world(n_edges=1, prefer_varnish=False)
    port = world.edges[0].port
    world.stop()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


_OWNER = """
import sys, time
from warming.sandbox import VarnishEdge
edge = VarnishEdge("edge1", ("127.0.0.1", 9), workdir=sys.argv[1]).start()
print(" ".join(map(str, edge.pids)), flush=True)
time.sleep(60)
"""


def test_varnish_dies_with_a_killed_owner(tmp_path: Path) -> None:
    """SIGKILL of the owning interpreter skips atexit; the guard still ends varnishd."""
    _need("varnish")
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(process_alive(pid) for pid in pids)
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    killed = time.monotonic()
    deadline = killed + 5
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(process_alive(pid) for pid in pids)
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - killed < 2


def test_falls_back_to_pyedge_without_varnishd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("warming.sandbox.world.varnish_available", lambda: False)
    with start_world(n_edges=1, shield=True) as world:
        assert world.kind == "python"
        assert all(isinstance(e, PyEdge) for e in [world.shield, *world.edges])
        assert get(world.edges[0].url, "/x").headers["X-Cache"] == "MISS, MISS"
