"""`warming warm --analytics FILE [--top N]`: the most visited URLs, a batch per rank band."""

from __future__ import annotations

import argparse
import json
import sys

from warming.batch import report as reports
from warming.batch.publish import WarmRequest, publish, select
from warming.cli import dryrun
from warming.cli.embedded import running
from warming.cli.show import wait
from warming.runtime import Runtime
from warming.settings import Priority, Settings
from warming.sources.traffic import Ranked, bands, rank

EXIT_OK = 0


def requests(settings: Settings, args: argparse.Namespace, ranked: Ranked) -> list[WarmRequest]:
    """One request per rank band, top band first; `--priority` puts them all in one."""
    top = ranked.urls[: args.top] if args.top else ranked.urls
    t = settings.traffic
    parts: dict[str, list[str]] = (
        {args.priority: top} if args.priority else bands(top, t.high, t.normal)
    )
    out = []
    for i, (priority, urls) in enumerate(parts.items()):
        prio: Priority = priority  # type: ignore[assignment]  # one of bands()' three
        out.append(
            WarmRequest(
                urls=urls,
                purge=not args.no_purge,
                trigger={"source": "cli", "analytics": str(args.analytics), "band": priority},
                priority=prio,
                # Refused pages are reported once, with the first batch.
                dropped=ranked.dropped if i == 0 else (),
                exclude=args.exclude,
                limit=args.limit,
            )
        )
    return out


def warm(settings: Settings, args: argparse.Namespace) -> int:
    ranked = rank(args.analytics, Runtime(settings).url_filter)
    reqs = requests(settings, args, ranked)
    took = sum(len(r.urls) for r in reqs)
    print(
        f"{ranked.kind}: {len(ranked.urls):,} URLs ranked, the top {took:,} warmed in "
        + ", ".join(f"{r.priority} {len(r.urls):,}" for r in reqs),
        file=sys.stderr,
    )
    if args.dry_run:
        rt = Runtime(settings)
        plans = []
        for req in reqs:
            sel = select(rt.url_filter, rt.redis if settings.broker_url else None, req)
            plan = dryrun.plan(settings, req, sel)
            plan["hits"] = [ranked.hits[u] for u in sel.urls if u in ranked.hits]
            plans.append(plan)
        if args.json:
            print(json.dumps(plans, indent=2))
        else:
            print("\n\n".join(dryrun.render(p, False) for p in plans))
        return EXIT_OK
    embedded = not settings.broker_url
    with running(settings) as rt:
        ids = [publish(rt, req).batch_id for req in reqs]
        if not args.wait and not embedded:
            print(
                json.dumps({"batch_id": ids[0], "batch_ids": ids}) if args.json else "\n".join(ids)
            )
            return EXIT_OK
        done = [wait(rt.store, i) for i in ids]
        if args.json:  # a list of the whole reports, each streamed
            for k, i in enumerate(ids):
                sys.stdout.write("[\n" if k == 0 else ",\n")
                for piece in reports.json_chunks(rt.store, i) or ["null"]:
                    sys.stdout.write(piece)
            sys.stdout.write("\n]\n")
        else:
            print("\n\n".join(reports.render(r) for r in done))
    return max(reports.exit_code(r) for r in done)
