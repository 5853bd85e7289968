"""`warming config schema|show`: the file's JSON schema, and the effective settings."""

from __future__ import annotations

import json

from warming.rediskit import redacted
from warming.settings import Settings


def schema() -> str:
    """The JSON schema of warming.toml (every key, its type, default and constraints)."""
    return json.dumps(Settings.model_json_schema(), indent=2)


def show(settings: Settings) -> str:
    """The effective settings (file, then environment) as JSON, secrets as '**********'."""
    view = settings.redacted()
    for key in ("broker_url", "result_backend"):
        if view.get(key):
            # A Redis password lives in the URL, not in a SecretStr.
            view[key] = redacted(view[key])
    return json.dumps(view, indent=2)
