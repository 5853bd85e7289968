"""A watchdog that kills a sandbox process group if the Python process that owns it dies.

atexit and ``finally`` cover normal exits and Ctrl-C, but not SIGKILL, an
unhandled SIGTERM (``timeout``, a CI runner, the OOM killer) or a crash. The
guard is a tiny separate interpreter holding the read end of a pipe whose
write end only the owner holds: when the owner dies, the kernel closes it, the
guard reads EOF and ends the group and its work directory. A clean stop writes
``done`` first, so the guard exits without touching anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Seconds the group gets to exit on SIGTERM before SIGKILL.
_GRACE_S = 3

_SCRIPT = f"""
import os, shutil, signal, sys, time
pgid, workdir = int(sys.argv[1]), sys.argv[2]

def alive():
    # Zombies count as gone: with the owner dead nobody may reap them soon.
    try:
        entries = os.listdir("/proc")
    except OSError:
        os.killpg(pgid, 0)
        return True
    for entry in entries:
        try:
            with open("/proc/" + entry + "/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False

if sys.stdin.buffer.read().strip() != b"done":
    try:
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + {_GRACE_S}
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive():
            os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(workdir, ignore_errors=True)
"""


class Guard:
    """Started right after the process group it watches; release() on a clean stop."""

    def __init__(self, pgid: int, workdir: Path) -> None:
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            # -I -S: no site packages or environment, so it starts in ~10 ms.
            [sys.executable, "-I", "-S", "-c", _SCRIPT, str(pgid), str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C meant for the owner must not stop the guard.
            start_new_session=True,
        )

    def release(self) -> None:
        """Tell the guard the group was stopped on purpose, and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(b"done\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=_GRACE_S + 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
