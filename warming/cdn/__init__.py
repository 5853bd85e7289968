"""CDN purge providers: one module each, chosen by `cdn.provider`."""

from __future__ import annotations

from warming.cdn.base import PurgeCall, Purger
from warming.errors import ConfigError
from warming.settings import Settings

__all__ = ["PurgeCall", "Purger", "purger_for"]


def purger_for(settings: Settings) -> Purger:
    """The purger for the configured provider."""
    provider = settings.cdn.provider
    if provider == "varnish":
        from warming.cdn.varnish import VarnishPurger

        return VarnishPurger(settings.cdn, settings.pops, settings.site.base_url)
    if provider == "none":
        from warming.cdn.none import NonePurger

        return NonePurger(settings.cdn)
    raise ConfigError("cdn.provider", f"{provider!r} is not implemented yet; use varnish or none")
