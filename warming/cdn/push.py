"""Push mode's providers, chosen by `warm.provider`: `gcore`, or `generic` (pushapi.py).

The base class and the call are in `pushbase`; this picks one, and completes a batch's
planned settings with this worker's token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from warming.cdn.pushbase import PushCall, Pusher, url_path
from warming.errors import ConfigError
from warming.settings import WarmSettings

__all__ = ["PushCall", "Pusher", "as_planned", "pusher_for", "url_path"]

# The settings that name a push account: a worker adds its own token to a plan only when
# all of these agree, so a token is never sent to another account.
_ACCOUNT = ("provider", "api_url", "resource_id", "endpoint")


def pusher_for(warm: WarmSettings) -> Pusher:
    """The pusher for `warm.provider`; ConfigError when a setting or secret it needs is missing."""
    pusher: Pusher
    if warm.provider == "gcore":
        from warming.cdn.gcore import GcorePusher

        pusher = GcorePusher(warm)
    else:
        from warming.cdn.pushapi import GenericPusher

        pusher = GenericPusher(warm)
    for name in pusher.needs:
        if getattr(warm, name, None) is None:
            raise ConfigError(
                f"warm.{name}",
                f"is needed to push with {warm.provider!r} and this worker has none for "
                "that account",
            )
    return pusher


def as_planned(planned: Mapping[str, Any], own: WarmSettings) -> WarmSettings:
    """The push settings a batch was planned with, completed with this worker's token
    when this worker is configured for the same account (every key of `_ACCOUNT`).

    Raises ConfigError when this worker cannot read the plan's settings.
    """
    try:
        warm = WarmSettings.model_validate(planned)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(["warm", *(str(p) for p in err["loc"])])
        why = f"this worker cannot honour the batch's plan: {err['msg']}"
        raise ConfigError(key, why) from None
    if any(getattr(warm, n) != getattr(own, n) for n in _ACCOUNT):
        return warm
    return warm.model_copy(update={"api_token": own.api_token})
