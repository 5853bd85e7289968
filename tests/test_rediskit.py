"""rediskit: the server check at start, URLs without passwords, what "unreachable" means."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, TEST_REDIS, env_for, need, run_cli, write_config
from warming.errors import ConfigError
from warming.rediskit import check_server, redacted, unreachable

pytestmark = pytest.mark.timeout(60)

POPS = [{"name": "edge1", "url": "http://127.0.0.1:9"}]


class OldRedis:
    """A server that speaks just enough RESP to pass for an old Redis.

    No Redis that old is installed here. HELLO (answered from 6.0 on, refused before, as
    Redis 5 refuses it), INFO, PING and SELECT are all a client sends before it runs a
    command, and warming must stop before it runs any.
    """

    def __init__(self, version: str = "5.0.7") -> None:
        self.version = version
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.commands: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while line := f.readline():
                n = int(line[1:])
                args = []
                for _ in range(n):
                    size = int(f.readline()[1:])
                    args.append(f.read(size + 2)[:-2].decode())
                cmd = args[0].upper()
                self.commands.append(cmd)
                if cmd == "HELLO" and self.version < "6":
                    conn.sendall(b"-ERR unknown command `HELLO`, with args beginning with: \r\n")
                elif cmd == "HELLO":
                    fields = {"server": "redis", "version": self.version}
                    reply = b"%%%d\r\n" % (len(fields) + 1)
                    for k, v in fields.items():
                        reply += b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                            len(k),
                            k.encode(),
                            len(v),
                            v.encode(),
                        )
                    conn.sendall(reply + b"$5\r\nproto\r\n:3\r\n")
                elif cmd == "INFO":
                    body = f"# Server\r\nredis_version:{self.version}\r\n".encode()
                    conn.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
                elif cmd == "PING":
                    conn.sendall(b"+PONG\r\n")
                elif cmd == "SELECT":
                    conn.sendall(b"+OK\r\n")
                else:
                    conn.sendall(b"-ERR unknown command\r\n")
        except (OSError, ValueError):
            pass
        finally:
            f.close()
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["5.0.7", "6.0.16"])
def old_redis(request: pytest.FixtureRequest) -> Iterator[OldRedis]:
    server = OldRedis(request.param)
    yield server
    server.close()


def _refusal(version: str) -> str:
    if version < "6":
        return "the server refused the connection's HELLO"
    return f"the server runs Redis {version}; warming needs 6.2 or later"


def test_an_old_redis_is_refused_saying_why(old_redis: OldRedis) -> None:
    with pytest.raises(ConfigError) as info:
        check_server(redis.Redis.from_url(old_redis.url))
    assert info.value.key == "broker_url"
    assert _refusal(old_redis.version) in info.value.message
    assert "6.2 or later" in info.value.message


def test_the_redis_here_is_accepted() -> None:
    r = redis.Redis.from_url(TEST_REDIS + "/0", socket_connect_timeout=1)
    try:
        version = check_server(r)
    except Exception as e:  # no Redis on this laptop
        need(False, f"no Redis at {TEST_REDIS}: {e}")
        return
    assert tuple(int(x) for x in version.split(".")[:2]) >= (6, 2)


@pytest.mark.integration
def test_cli_shim_and_worker_stop_at_start_on_an_old_redis(
    tmp_path: Path, old_redis: OldRedis
) -> None:
    config = write_config(tmp_path / "warming.toml", old_redis.url, POPS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "warming", "worker", "-P", "threads"],
        env=env_for(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    runs = {
        "warm": run_cli(config, "warm", "/x", "--wait", timeout=60),
        "serve": run_cli(config, "serve", "--port", port, timeout=60),
        "worker": worker,
    }
    for name, res in runs.items():
        assert res.returncode == 2, (name, res.returncode, res.stderr[-2000:])
        line = f"warming: invalid configuration: broker_url: {_refusal(old_redis.version)}"
        assert line in res.stderr, (name, res.stderr[-2000:])
        assert "Traceback" not in res.stderr, (name, res.stderr[-2000:])
    # Only looked: no script loaded, nothing written.
    assert set(old_redis.commands) <= {"HELLO", "INFO", "PING", "SELECT", "CLIENT"}, (
        old_redis.commands
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@10.0.0.1:6379/2", "redis://10.0.0.1:6379/2"),
        (
            "rediss://ops:hunter2@redis.internal/1?ssl_cert_reqs=none",
            "rediss://ops@redis.internal/1?ssl_cert_reqs=none",
        ),
        ("unix:///run/redis.sock?password=hunter2&db=3", "unix:/run/redis.sock?db=3"),
    ],
)
def test_redacted_drops_the_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (redis.ConnectionError("Error 111 connecting"), True),
        (redis.TimeoutError("Timeout reading"), True),
        (redis.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), True),
        (redis.ResponseError("BUSY Redis is busy running a script."), True),
        (redis.ResponseError("ERR warming accept: create: bad deadline"), False),
        (redis.ResponseError("ERR Error running script: @user_script:3: syntax error"), False),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
    ],
)
def test_unreachable_tells_a_broker_away_from_a_refused_command(
    error: redis.RedisError, down: bool
) -> None:
    assert unreachable(error) is down
