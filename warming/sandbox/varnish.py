"""A real Varnish PoP: one varnishd on 127.0.0.1 in front of one backend."""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from importlib import resources
from pathlib import Path
from string import Template
from typing import Self

from warming.sandbox.edge import HEALTH_PATH, RETRY_AFTER_S, SandboxError
from warming.sandbox.guard import Guard

# Debian and most packages install varnishd outside a normal user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/varnish/sbin")
# varnishd compiles its VCL with cc at start (~0.4 s); 10 s only fails a broken install.
START_TIMEOUT_S = 10.0
# varnishd stops its cache process in ~0.1 s on SIGTERM; past this it is killed.
STOP_TIMEOUT_S = 5.0
# How often start() looks again while varnishd comes up.
_POLL_S = 0.02
# One small pool: a sandbox PoP serves a handful of clients, and fewer idle
# threads start faster and use less memory than varnishd's 2 x 100 default.
_PARAMS = {
    "default_ttl": "3600",
    "thread_pools": "1",
    "thread_pool_min": "10",
    "thread_pool_max": "500",
    # The shared-memory log defaults to 80 MB per instance; nobody reads it here.
    "vsl_space": "1M",
    # start() asks varnishadm for the port; that must not fill the system log.
    "syslog_cli_traffic": "off",
}
_LISTEN_RE = re.compile(r"127\.\d+\.\d+\.\d+ (\d+)")


def _find(program: str) -> str | None:
    found = shutil.which(program)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def varnish_available() -> bool:
    """Whether varnishd (and varnishadm, used to learn its port) can be run here."""
    return _find("varnishd") is not None and _varnishadm() is not None


def _varnishadm() -> str | None:
    varnishd = _find("varnishd")
    if varnishd is not None:
        sibling = Path(varnishd).parent.parent / "bin" / "varnishadm"
        if sibling.is_file():
            return str(sibling)
    return _find("varnishadm")


# How a PoP answers PURGE. "honest" purges; the others misbehave the ways a real CDN
# can, for the tests of the freshness proof: "ignore_purge" answers 200 and purges
# nothing; "stale_soft_purge" soft-purges (the object stays, expired, inside a long
# grace) and its background refreshes never land, so it keeps serving the old copy as a
# HIT; "tags_only" honours tag purges and answers 200 to a URL purge without purging
# (a VCL written for xkey alone). Each PoP reads tag purges from `xkey-purge` only.
QUIRKS = ("honest", "ignore_purge", "stale_soft_purge", "tags_only")
_PURGE = {
    "honest": """
        if (req.http.xkey-purge) {
            set req.http.X-Sandbox-Purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged"));
        }
        return (purge);""",
    "ignore_purge": """
        return (synth(200, "Purged"));""",
    "tags_only": """
        if (req.http.xkey-purge) {
            set req.http.X-Sandbox-Purged = xkey.purge(req.http.xkey-purge);
        }
        return (synth(200, "Purged"));""",
    "stale_soft_purge": """
        if (req.http.xkey-purge) {
            set req.http.X-Sandbox-Purged = xkey.softpurge(req.http.xkey-purge);
            return (synth(200, "Purged"));
        }
        return (hash);""",
}
_HIT = {
    "stale_soft_purge": """
    if (req.method == "PURGE") {
        purge.soft(0s);
        return (synth(200, "Purged"));
    }""",
}
_BACKEND = {
    "stale_soft_purge": """
    if (bereq.is_bgfetch) {
        return (abandon);
    }
    set beresp.grace = 1h;""",
}


def render_vcl(
    backend: tuple[str, int],
    throttle_rps: int | None,
    quirk: str = "honest",
    colo: str | None = None,
) -> str:
    """The edge VCL for this backend; ``throttle_rps`` None or 0 disables the throttle."""
    if quirk not in QUIRKS:
        raise ValueError(f"quirk must be one of {QUIRKS}, not {quirk!r}")
    template = resources.files("warming.sandbox").joinpath("edge.vcl").read_text()
    return Template(template).substitute(
        backend_host=backend[0],
        backend_port=str(backend[1]),
        throttle_rps=str(max(0, throttle_rps or 0)),
        health_path=HEALTH_PATH,
        retry_after_s=str(RETRY_AFTER_S),
        purge_block=_PURGE[quirk],
        hit_block=_HIT.get(quirk, ""),
        backend_block=_BACKEND.get(quirk, ""),
        deliver_block=f'set resp.http.CF-Ray = "7d1a2b3c4d5e6f70-{colo}";' if colo else "",
    )


class VarnishEdge:
    """One varnishd (``-F``, own session) with a private ``-n`` directory.

    The listening port is chosen by the kernel (``-a 127.0.0.1:0``) and read
    back with varnishadm, so concurrent worlds never race for a port. stop()
    ends the manager and its cache process and removes the directory; edges
    still running when the interpreter exits are stopped by an atexit hook,
    and a :class:`Guard` ends them if the interpreter dies without exiting.
    """

    def __init__(
        self,
        name: str,
        backend: tuple[str, int],
        throttle_rps: int | None = None,
        workdir: str | Path | None = None,
        quirk: str = "honest",
        listen: str = "127.0.0.1:0",
        colo: str | None = None,
        storage: str = "malloc,64m",
    ) -> None:
        """`listen`: a loopback address and port (0: the kernel's pick); `colo`: answers
        carry `CF-Ray: …-<colo>`, as a Cloudflare location names itself."""
        self.name = name
        self.listen = listen
        self.colo = colo
        self.storage = storage  # varnishd -s: bigger for the benchmarks' 250k objects
        self.backend = backend
        self.throttle_rps = throttle_rps
        self.quirk = quirk
        self._parent_dir = workdir
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._guard: Guard | None = None
        self._port: int | None = None
        self.pids: tuple[int, ...] = ()
        self.startup_s: float | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise SandboxError(self.name, "not running")
        return self._port

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._port if self._port is not None else "stopped"
        return f"VarnishEdge({self.name!r}, {where}, backend={self.backend})"

    # -- start --------------------------------------------------------------------

    def start(self) -> Self:
        if self._proc is not None:
            return self
        varnishd, varnishadm = _find("varnishd"), _varnishadm()
        if varnishd is None or varnishadm is None:
            raise SandboxError(self.name, "varnishd/varnishadm not found")
        began = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"warming-{self.name}-", dir=self._parent_dir))
        vcl = self.workdir / "edge.vcl"
        command = [
            varnishd,
            "-F",
            # We may be root; "none" skips the privilege separation that needs a varnish user.
            "-j",
            "none",
            "-n",
            str(self.workdir / "varnishd"),
            "-a",
            self.listen,
            "-T",
            "127.0.0.1:0",
            "-f",
            str(vcl),
            "-s",
            self.storage,
        ]
        for param, value in _PARAMS.items():
            command += ["-p", f"{param}={value}"]
        try:
            vcl.write_text(render_vcl(self.backend, self.throttle_rps, self.quirk, self.colo))
            with open(self.workdir / "varnishd.log", "wb") as log:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own process group: stop() can kill the manager and its cache process
                    # together, and a Ctrl-C in a terminal does not reach them half-way.
                    start_new_session=True,
                )
            _running.add(self)
            self._guard = Guard(self._proc.pid, self.workdir)
            self._wait_ready(varnishadm, began + START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.pids = (self._proc.pid, *_children(self._proc.pid))
        self.startup_s = time.monotonic() - began
        return self

    def _wait_ready(self, varnishadm: str, deadline: float) -> None:
        assert self._proc is not None and self.workdir is not None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise SandboxError(self.name, f"varnishd exited ({code}):\n{self._log_tail()}")
            # The manager writes its pid file once the VCL is compiled and its CLI is up;
            # before that varnishadm would block in its own retry loop.
            if self._port is None and (self.workdir / "varnishd" / "_.pid").exists():
                self._port = self._listen_port(varnishadm)
            if self._port is not None and _healthy(self._port, self.host):
                return
            time.sleep(_POLL_S)
        raise SandboxError(
            self.name, f"varnishd not ready after {START_TIMEOUT_S} s:\n{self._log_tail()}"
        )

    def _listen_port(self, varnishadm: str) -> int | None:
        assert self.workdir is not None
        try:
            done = subprocess.run(
                [
                    varnishadm,
                    "-n",
                    str(self.workdir / "varnishd"),
                    "-t",
                    "1",
                    "debug.listen_address",
                ],
                capture_output=True,
                timeout=5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        found = _LISTEN_RE.search(done.stdout.decode(errors="replace"))
        return int(found.group(1)) if done.returncode == 0 and found else None

    def _log_tail(self) -> str:
        assert self.workdir is not None
        try:
            return (self.workdir / "varnishd.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # -- stop ---------------------------------------------------------------------

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is not None:
            known = set(self.pids) | set(_children(proc.pid))
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait()
            # Whatever is left in its group (a cache process whose manager died first).
            _kill_group(proc.pid)
            _wait_gone(known - {proc.pid}, STOP_TIMEOUT_S)
        self._port = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release()


def _healthy(port: int, host: str = "127.0.0.1") -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", HEALTH_PATH)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _wait_gone(pids: set[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(_POLL_S)


_running: weakref.WeakSet[VarnishEdge] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Never leave a varnishd behind when the interpreter exits normally."""
    for edge in list(_running):
        edge.stop()
