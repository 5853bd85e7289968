"""CDN purge providers: one module each, chosen by `cdn.provider`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from warming import defaults
from warming.cdn.base import PurgeCall, Purger
from warming.errors import ConfigError
from warming.settings import CdnSettings, PopSettings

__all__ = ["PROVIDERS", "PurgeCall", "Purger", "as_planned", "purger_for"]

# Every provider this folder implements. The settings refuse any other `cdn.provider`
# at load from their own copy of the names (settings sit below cdn/): keep both equal.
PROVIDERS = ("varnish", "none")
if set(PROVIDERS) != set(defaults.CDN_PROVIDERS):
    raise ImportError(
        f"warming.cdn implements {PROVIDERS} but defaults.CDN_PROVIDERS says "
        f"{defaults.CDN_PROVIDERS}: add the new provider to both"
    )


def purger_for(cdn: CdnSettings, pops: Sequence[PopSettings], base_url: str) -> Purger:
    """The purger for `cdn.provider`, purging at `pops` (a batch's plan, or the config's).

    Raises ConfigError when `cdn` lacks a secret the provider needs.
    """
    purger = _build(cdn, pops, base_url)
    for name in purger.needs:
        if getattr(cdn, name, None) is None:
            raise ConfigError(
                f"cdn.{name}",
                f"is needed to purge with {cdn.provider!r} (service {cdn.service_id or '-'}, "
                f"zone {cdn.zone_id or '-'}) and this worker has none for that account",
            )
    return purger


def _build(cdn: CdnSettings, pops: Sequence[PopSettings], base_url: str) -> Purger:
    if cdn.provider == "varnish":
        from warming.cdn.varnish import VarnishPurger

        return VarnishPurger(cdn, pops, base_url)
    if cdn.provider == "none":
        from warming.cdn.none import NonePurger

        return NonePurger(cdn)
    raise ConfigError("cdn.provider", f"{cdn.provider!r} is not implemented")


def as_planned(planned: Mapping[str, Any] | None, own: CdnSettings) -> CdnSettings:
    """The CDN settings a batch was planned with, completed with this worker's secrets.

    The secrets are added only when this worker is configured for the same provider
    account (provider, service and zone): a token is never sent to another account.
    Raises ConfigError when this worker cannot honour the plan (a provider it does not
    implement, a key it does not know); None (an older plan) means `own`.
    """
    if planned is None:
        return own
    try:
        cdn = CdnSettings.model_validate(planned)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(["cdn", *(str(p) for p in err["loc"])])
        if key == "cdn.provider" and planned.get("provider") not in PROVIDERS:
            raise ConfigError(
                key,
                f"the batch was planned with {str(planned.get('provider'))[:40]!r}, which "
                f"this worker does not implement (it has {', '.join(PROVIDERS)})",
            ) from None
        # pydantic's message, never the value: a plan holds no secret, but be strict.
        raise ConfigError(
            key, f"this worker cannot honour the batch's plan: {err['msg']}"
        ) from None
    same = (cdn.provider, cdn.service_id, cdn.zone_id) == (
        own.provider,
        own.service_id,
        own.zone_id,
    )
    if not same:
        return cdn
    return cdn.model_copy(update={n: v for n, v in own if isinstance(v, SecretStr)})
