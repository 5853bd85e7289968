"""`warming pops [--discover]`: the PoPs a batch would use, and where each is found.

Without `--discover`: each `[[pops]]` entry and its address (a PoP without `url` is
looked up as a batch would look it up). With `--discover`: also the survey of
`[discover]`: the site's CDN name asked of every resolver, as itself and for every
client subnet, and CloudFront's per-PoP names; what each answered, to copy into
`[[pops]]`. Exit 1 when a configured PoP has no address (a batch would fail its pairs).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from warming.pop.discover import Discoverer, Found
from warming.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pops", help="the PoPs and their addresses (--discover: survey DNS)")
    p.add_argument(
        "--discover",
        action="store_true",
        help="also ask [discover]'s resolvers, for each subnet, and CloudFront's PoP names",
    )
    p.add_argument("--json", action="store_true")


def run(settings: Settings, args: argparse.Namespace) -> int:
    finder = Discoverer(settings.site, settings.discover)
    pops, found = finder.addressed(settings.pops)
    rows: list[dict[str, Any]] = []
    for pop in pops:
        f = found.get(pop.name)
        rows.append(
            {
                "name": pop.name,
                "tier": pop.tier,
                "url": None if f is not None and f.error else pop.url,
                "found": None if f is None else {**f.as_dict(), "how": f.how()},
            }
        )
    out: dict[str, Any] = {"pops": rows}
    if args.discover:
        out["discovered"] = [_survey_row(finder, f) for f in finder.survey()]
    print(json.dumps(out, indent=2) if args.json else render(out))
    return 1 if any(r["url"] is None for r in rows) else 0


def _survey_row(finder: Discoverer, f: Found) -> dict[str, Any]:
    return {**f.as_dict(), "urls": [finder.url_for(ip) for ip in f.ips]}


def render(out: dict[str, Any]) -> str:
    lines = ["PoPs (as a batch would address them):"]
    for r in out["pops"]:
        f = r["found"]
        how = "fixed url" if f is None else f["how"]
        where = r["url"] or f"NO ADDRESS: {f['error']}"
        ttl = f" (ttl {f['ttl_s']} s)" if f and f.get("ttl_s") is not None else ""
        lines.append(f"  {r['name']:<12} {r['tier']:<6} {where}  [{how}]{ttl}")
    if "discovered" in out:
        lines.append("discovered:")
        if not out["discovered"]:
            lines.append("  nothing to ask: set discover.resolvers, subnets or cloudfront_pops")
        for d in out["discovered"]:
            who = f" for users in {d['client_subnet']}" if d.get("client_subnet") else ""
            scope = f" (scope /{d['scope']})" if d.get("scope") else ""
            got = ", ".join(d["ips"]) if d["ips"] else f"none: {d['error']}"
            lines.append(f"  {d['name']} asked of {d['resolver']}{who}{scope}: {got}")
    return "\n".join(lines)
