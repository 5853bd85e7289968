"""CDN purge providers: one module each, chosen by `cdn.provider` (or `cdn.providers`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from warming import defaults
from warming.cdn.base import Effect, Pending, PurgeCall, Purger
from warming.errors import ConfigError
from warming.settings import CdnSettings, PopSettings

__all__ = ["PROVIDERS", "Effect", "Pending", "PurgeCall", "Purger", "as_planned", "purger_for"]

# Every provider this folder implements. The settings refuse any other `cdn.provider`
# at load from their own copy of the names (settings sit below cdn/): keep both equal.
PROVIDERS = (
    "varnish",
    "none",
    "fastly",
    "cloudflare",
    "cloudfront",
    "akamai",
    "vercel",
    "nextjs",
    "nginx",
)
if set(PROVIDERS) != set(defaults.CDN_PROVIDERS):
    raise ImportError(
        f"warming.cdn implements {PROVIDERS} but defaults.CDN_PROVIDERS says "
        f"{defaults.CDN_PROVIDERS}: add the new provider to both"
    )

# The settings that name a provider account (or an app): a worker adds its own secrets
# to a plan only when all of these agree, so a token is never sent to another account.
_ACCOUNT = (
    "provider",
    "providers",
    "service_id",
    "zone_id",
    "distribution_id",
    "project",
    "team_id",
    "api_url",
    "revalidate_url",
)


def purger_for(cdn: CdnSettings, pops: Sequence[PopSettings], base_url: str) -> Purger:
    """The purger for `cdn.provider` (or the layers of `cdn.providers`), purging at `pops`.

    Raises ConfigError when `cdn` lacks a setting or secret a provider needs.
    """
    layers = [_checked(cdn.model_copy(update={"provider": p}), pops, base_url) for p in cdn.layers]
    if len(layers) == 1:
        return layers[0]
    from warming.cdn.chain import ChainPurger

    return ChainPurger(cdn, layers)


def _checked(cdn: CdnSettings, pops: Sequence[PopSettings], base_url: str) -> Purger:
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
    # Imported when chosen: a worker purging Varnish never loads boto3 or edgegrid.
    p = cdn.provider
    if p == "varnish":
        from warming.cdn.varnish import VarnishPurger

        return VarnishPurger(cdn, pops, base_url)
    if p == "nginx":
        from warming.cdn.nginx import NginxPurger

        return NginxPurger(cdn, pops, base_url)
    if p == "none":
        from warming.cdn.none import NonePurger

        return NonePurger(cdn)
    if p == "fastly":
        from warming.cdn.fastly import FastlyPurger

        return FastlyPurger(cdn)
    if p == "cloudflare":
        from warming.cdn.cloudflare import CloudflarePurger

        return CloudflarePurger(cdn)
    if p == "cloudfront":
        from warming.cdn.cloudfront import CloudFrontPurger

        return CloudFrontPurger(cdn)
    if p == "akamai":
        from warming.cdn.akamai import AkamaiPurger

        return AkamaiPurger(cdn)
    if p == "vercel":
        from warming.cdn.vercel import VercelPurger

        return VercelPurger(cdn)
    if p == "nextjs":
        from warming.cdn.nextjs import NextjsPurger

        return NextjsPurger(cdn)
    raise ConfigError("cdn.provider", f"{p!r} is not implemented")


def as_planned(planned: Mapping[str, Any] | None, own: CdnSettings) -> CdnSettings:
    """The CDN settings a batch was planned with, completed with this worker's secrets.

    The secrets are added only when this worker is configured for the same provider
    account (every setting in `_ACCOUNT`): a token is never sent to another account.
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
        wanted = [planned.get("provider"), *(planned.get("providers") or [])]
        if key.startswith("cdn.provider") and any(p not in PROVIDERS for p in wanted):
            named = str(planned.get("providers") or planned.get("provider"))[:60]
            raise ConfigError(
                "cdn.provider",
                f"the batch was planned with {named!r}, which this worker does not "
                f"implement (it has {', '.join(PROVIDERS)})",
            ) from None
        # pydantic's message, never the value: a plan holds no secret, but be strict.
        raise ConfigError(
            key, f"this worker cannot honour the batch's plan: {err['msg']}"
        ) from None
    if any(getattr(cdn, n) != getattr(own, n) for n in _ACCOUNT):
        return cdn
    return cdn.model_copy(update={n: v for n, v in own if isinstance(v, SecretStr)})
