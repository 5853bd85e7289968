"""The Celery app: `celery -A warming worker` finds it as `warming.app`.

Importing this reads no settings. Celery reads its configuration when it first
needs it; then `_configure` adds what follows warming's settings: those a front
door bound (`bind`), else the ones in WARMING_CONFIG and the environment (a plain
`celery -A warming worker`). A broken file stops a worker with exit 2 and the key.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery

from warming.broker import config, kombufix
from warming.errors import ConfigError
from warming.settings import Settings, load_settings

# Before the first broker connection: a Redis restart must not kill a worker (kombufix).
kombufix.install()
app = Celery("warming", include=["warming.tasks"])
app.config_from_object(os.environ.get("CELERY_CONFIG_MODULE", "warming.broker.config"))

_bound: Settings | None = None


def bind(settings: Settings) -> None:
    """Configure the app from `settings` (now, or when Celery first reads its config)."""
    global _bound
    _bound = settings
    if app.configured:
        app.conf.update(config.from_settings(settings))


def _configure(sender: Celery, **_: Any) -> None:
    try:
        config.check_transport(sender.conf.broker_transport_options)
        settings = _bound or load_settings()
        sender.conf.update(config.from_settings(settings))
    except ConfigError as e:
        print(f"warming: invalid configuration: {e}", file=sys.stderr)
        raise SystemExit(2) from None


app.on_after_configure.connect(_configure, weak=False)
