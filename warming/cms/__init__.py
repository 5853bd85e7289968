"""CMS webhook adapters, one module each, chosen by the `{adapter}` in `/webhooks/{adapter}`.

Each adapter accepts a request that authenticates under any of its secrets:
`webhook.adapters.<name>.secrets`, else `webhook.secrets` (`WebhookSettings.secrets_for`).
See docs/adapters.md.
"""

from __future__ import annotations

from warming.cms.base import Adapter, Change, Inbound
from warming.cms.contentful import ContentfulAdapter
from warming.cms.generic import GenericAdapter
from warming.cms.ghost import GhostAdapter
from warming.cms.prismic import PrismicAdapter
from warming.cms.sanity import SanityAdapter
from warming.cms.storyblok import StoryblokAdapter
from warming.cms.strapi import StrapiAdapter
from warming.cms.wordpress import WordPressAdapter
from warming.errors import WebhookError

__all__ = ["ADAPTERS", "Adapter", "Change", "Inbound", "adapter_for"]

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        GenericAdapter(),
        ContentfulAdapter(),
        SanityAdapter(),
        StrapiAdapter(),
        WordPressAdapter(),
        GhostAdapter(),
        StoryblokAdapter(),
        PrismicAdapter(),
    )
}


def adapter_for(name: str) -> Adapter:
    """The adapter called `name`, or WebhookError(404) listing the known ones."""
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise WebhookError(404, f"unknown webhook adapter; known: {', '.join(ADAPTERS)}")
    return adapter
