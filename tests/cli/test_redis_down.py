"""Redis down: every command says so in one line naming the broker, exits 1, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, env_for, run_cli, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

POPS = [{"name": "edge1", "url": "http://127.0.0.1:9"}]
PASSWORD = "hunter2-the-broker-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line(res: subprocess.CompletedProcess[str], address: str) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert PASSWORD not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warming: cannot reach Redis at {address}: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("report", "some-batch"),
        ("report", "some-batch", "--json"),
        ("warm", "/x"),
        ("warm", "/x", "--wait"),
        ("warm", "/x", "--wait", "--json"),
        ("serve", "--port", "{port}"),
        ("serve", "--port", "{port}", "--workers", "2"),
    ],
)
def test_every_command_with_redis_down_says_so_in_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    port = _free_port()  # nothing listens there
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    config = write_config(tmp_path / "warming.toml", url, POPS)
    argv = [a.format(port=_free_port()) for a in args]
    line = _one_line(run_cli(config, *argv, timeout=60), f"redis://127.0.0.1:{port}/0")
    assert "Connection refused" in line, line


def test_redis_going_away_while_warm_waits_is_one_line_too(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        config = write_config(tmp_path / "warming.toml", url, POPS)
        time.sleep(0.5)
        # No worker: the batch is recorded and queued, and `--wait` waits for it.
        cli = subprocess.Popen(
            [sys.executable, "-m", "warming", "warm", "/x", "--wait"],
            env=env_for(config),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        assert cli.poll() is None, cli.communicate()
    finally:
        server.kill()
        server.wait()
    out, err = cli.communicate(timeout=60)
    res = subprocess.CompletedProcess(cli.args, cli.returncode, out, err)
    lines = [x for x in err.splitlines() if not x.startswith("batch ")]  # the id, on stderr
    _one_line(subprocess.CompletedProcess(cli.args, cli.returncode, out, "\n".join(lines)), url)
    assert res.returncode == 1


def test_a_command_redis_refuses_is_said_so_not_called_unreachable(tmp_path: Path) -> None:
    """A Redis that runs no scripts (EVAL renamed away): up, but refusing warming's."""
    port = _free_port()
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--save", "", "--appendonly", "no"),
            *("--rename-command", "EVALSHA", "", "--rename-command", "EVAL", ""),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        config = write_config(tmp_path / "warming.toml", url, POPS)
        time.sleep(0.5)
        res = run_cli(config, "warm", "/x", timeout=60)
        r = redis.Redis.from_url(url)
        assert r.dbsize() == 0, "nothing was written"
        r.close()
    finally:
        server.kill()
        server.wait()
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warming: Redis at {url} refused a command: ")
    assert "unknown command" in lines[0] and "cannot reach" not in lines[0]
