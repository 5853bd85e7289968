"""The optional extras a command needs, named in one line when one is not installed."""

from __future__ import annotations

import importlib

# What each extra brings that a warming command imports (pyproject's optional-dependencies):
# Flower runs as `celery flower`, and embedded mode names its extra where it looks for Redis.
MODULES = {"shim": ("fastapi", "uvicorn")}


def missing(extra: str, what: str) -> str | None:
    """The line to print when `what` cannot run for want of `extra`, else None."""
    for module in MODULES[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            return f"warming: {what} needs `pip install warming[{extra}]`"
    return None
