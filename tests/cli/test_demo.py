"""`warming demo` prints where its report pages and metrics are, and they answer meanwhile."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.ops.prom import samples
from tests.support import ROOT

pytestmark = pytest.mark.integration


def test_the_demo_serves_its_report_pages_and_metrics_until_enter() -> None:
    # A terminal on stdin: the demo waits for Enter with everything still running.
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMING_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "warming", "demo"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
        text=True,
    )
    os.close(follower)
    out = ""
    try:
        assert proc.stdout is not None
        end = time.monotonic() + 240
        while not re.search(r"^metrics: http", out, re.M) and time.monotonic() < end:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
        pages = re.findall(r"report page: (http://127\.0\.0\.1:\d+/batches/\w+)", out)
        metrics = re.search(r"^metrics: (http://127\.0\.0\.1:\d+/metrics)", out, re.M)
        assert len(pages) == 2 and metrics, out
        page = requests.get(pages[1], headers={"accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and 'class="cell hit"' in page.text
        got = samples(requests.get(metrics.group(1), timeout=10).text)
        hits = sum(v for (n, labels), v in got.items() if n == "warming_pairs_total"
                   and ("outcome", "hit") in labels)  # fmt: skip
        assert hits == 18  # 15 pairs, then 3: the embedded worker counts in the same process
    finally:
        os.write(leader, b"\n")
        rest, _ = proc.communicate(timeout=60)
        os.close(leader)
    assert proc.returncode == 0, out + rest
    assert "demo passed" in rest


def test_the_demo_without_varnish_prints_no_traceback() -> None:
    # varnishd is found in /usr/sbin whatever PATH says: the sandbox is told it is missing.
    code = (
        "import sys\n"
        "import warming.sandbox.world as world\n"
        "world.varnish_available = lambda: False\n"
        "from warming.cli.main import main\n"
        "sys.exit(main(['demo']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMING_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
    )
    assert "(python)" in out.stdout and "demo passed" in out.stdout, out.stdout + out.stderr
    assert out.returncode == 0
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
