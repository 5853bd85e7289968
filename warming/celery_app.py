"""The Celery app: `celery -A warming worker` finds it as `warming.app`."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("warming", include=["warming.tasks", "warming.watchdog"])
app.config_from_object(os.environ.get("CELERY_CONFIG_MODULE", "warming.celeryconf"))
