"""`warming warm --dry-run`: what a batch would be, without purging, warming or storing it."""

from __future__ import annotations

import json
from typing import Any

from warming.batch.publish import Selection, WarmRequest
from warming.settings import Settings


def plan(settings: Settings, req: WarmRequest, sel: Selection) -> dict[str, Any]:
    """The batch `req` would give: URLs, PoPs, variants, dropped URLs, time at the cap."""
    pops = settings.pops
    variants = [v.name for v in settings.site.variants]
    pairs = len(sel.urls) * len(pops) * len(variants)
    cluster = settings.limits.prefetch_rate.per_second
    # The cluster-wide cap, or a PoP's own `rate` if that is slower for its share.
    warm_s = pairs / cluster
    for pop in pops:
        if pop.rate_limit:
            warm_s = max(warm_s, len(sel.urls) * len(variants) / pop.rate_limit.per_second)
    return {
        "urls": sel.urls,
        "tags": sel.tags,
        # A PoP without `url` is found when the batch is planned (`warming pops` shows it).
        "pops": [{"name": p.name, "tier": p.tier, "url": p.url or None} for p in pops],
        "variants": variants,
        "pairs": pairs,
        "priority": req.priority,
        "purge": req.purge,
        "dropped": [d.as_dict() for d in sel.dropped],
        "estimate": {
            "prefetch_rate": settings.limits.prefetch,
            "warm_s": round(warm_s, 1),
            # A pair whose warm answer is not its own proof costs one more request.
            "with_verification_s": round(2 * warm_s, 1),
        },
    }


def render(p: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(p, indent=2)
    est = p["estimate"]
    pops = ", ".join(f"{x['name']} ({x['tier']})" for x in p["pops"])
    lines = [
        "dry run: nothing purged, warmed or stored",
        f"{len(p['urls']):,} URLs x {len(p['pops'])} PoPs x {len(p['variants'])} variants "
        f"= {p['pairs']:,} pairs; priority {p['priority']}, purge {'yes' if p['purge'] else 'no'}",
        f"PoPs: {pops}",
        f"variants: {', '.join(p['variants'])}",
        f"estimated time at limits.prefetch = {est['prefetch_rate']}: {est['warm_s']:,} s to "
        f"warm, up to {est['with_verification_s']:,} s if every pair needs a verification "
        "request",
    ]
    if p["tags"]:
        lines.append(f"tags purged: {', '.join(p['tags'])}")
    lines.append(f"URLs ({len(p['urls']):,}):")
    lines += [f"  {u}" for u in p["urls"]]
    lines.append(f"dropped ({len(p['dropped']):,}):")
    lines += [f"  {d['url']}: {d['reason']}" for d in p["dropped"]]
    return "\n".join(lines)
