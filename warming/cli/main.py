"""The `warming` command: a thin front door onto publish, wait and report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

import redis

from warming import __version__
from warming.batch import report as reports
from warming.batch.publish import WarmRequest, publish, select
from warming.cli import batches, config, dryrun, extras, pops, ranked, schedules
from warming.cli.embedded import running
from warming.cli.show import wait
from warming.errors import BrokerUnavailable, ConfigError, WarmingError
from warming.rediskit import redacted, unreachable
from warming.runtime import Runtime, use
from warming.settings import Settings, load_settings
from warming.sources.deploy import wait_for_build
from warming.sources.filter import Dropped
from warming.sources.lists import from_file, from_sitemap
from warming.sources.sitemaps import parse_since
from warming.stages import schedule

EXIT_OK, EXIT_NOT_ALL_HIT, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warming", description="Purge, warm and verify CDN caches.")
    p.add_argument("--version", action="version", version=f"warming {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("warm", help="build one batch and publish it")
    w.add_argument("urls", nargs="*", metavar="URL")
    w.add_argument("--sitemap", action="append", default=[], metavar="URL")
    w.add_argument("--file", action="append", default=[], metavar="PATH")
    w.add_argument("--tag", action="append", default=[], metavar="KEY")
    w.add_argument(
        "--analytics",
        metavar="FILE",
        help="an analytics CSV export (GA4, Plausible, Matomo) or access log: rank by hits",
    )
    w.add_argument(
        "--top", type=_positive, metavar="N", help="with --analytics: the N most visited"
    )
    w.add_argument(
        "--changed-since",
        metavar="DURATION|DATE",
        help="only sitemap pages whose lastmod is this recent (24h, 7d, 2026-11-30); "
        "pages without lastmod are kept",
    )
    w.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out URLs matching this glob (/blog/* on the path and query, else the URL)",
    )
    w.add_argument("--limit", type=_positive, metavar="N", help="warm at most the first N URLs")
    w.add_argument(
        "--dry-run", action="store_true", help="print the plan and what is dropped; send nothing"
    )
    w.add_argument(
        "--priority",
        choices=["high", "normal", "bulk"],
        help="prefetch queue (default: bulk with --sitemap or --file, else high)",
    )
    w.add_argument(
        "--after-deploy",
        nargs="?",
        const="",
        metavar="VERSION",
        help="first wait until the origin serves this build (or, without VERSION, a new one); "
        "see deploy.version_url",
    )
    w.add_argument("--no-purge", action="store_true")
    w.add_argument("--wait", action="store_true", help="show progress, end with the report")
    w.add_argument("--json", action="store_true")
    r = sub.add_parser("report", help="a batch's report")
    r.add_argument("batch_id")
    r.add_argument("--json", action="store_true")
    s = sub.add_parser("serve", help="run the webhook shim")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=1, help="shim processes sharing the port")
    sub.add_parser("demo", help="the whole system on this machine, with a local site and edges")
    batches.add_parser(sub)
    pops.add_parser(sub)
    sc = sub.add_parser("schedules", help="each [[schedules]] entry, its last and next run")
    sc.add_argument("--json", action="store_true")
    c = sub.add_parser("config", help="the configuration file's schema, the effective settings")
    c.add_argument("what", choices=["schema", "show"])
    return p


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # ultimate-sitemap-parser warns about every line of a text sitemap that is not a URL and
    # every sitemap without a namespace, both of which we read; its errors still show.
    logging.getLogger("usp").setLevel(logging.ERROR)
    broker = "the embedded Redis"
    try:
        need = {"demo": "the demo", "serve": "the shim"}.get(args.command)
        if need and (line := extras.missing("shim", need)):
            print(line, file=sys.stderr)
            return EXIT_USAGE
        if args.command == "demo":
            from warming.cli.demo import run_demo

            return int(run_demo())
        if args.command == "config" and args.what == "schema":
            print(config.schema())
            return EXIT_OK
        settings = load_settings()
        if args.command == "config":
            print(config.show(settings))
            return EXIT_OK
        broker = redacted(settings.broker_url) if settings.broker_url else broker
        if args.command == "warm":
            return _warm(settings, args)
        if args.command == "report":
            return _report(settings, args)
        if args.command == "schedules":
            print(schedules.render(schedule.status(use(settings)), args.json))
            return EXIT_OK
        if args.command == "batches":
            return batches.run(settings, args)
        if args.command == "pops":
            return pops.run(settings, args)
        from warming.shim.serving import serve

        code = serve(use(settings), args.host, args.port, args.workers)
        return int(code)
    except ConfigError as e:
        print(f"warming: invalid configuration: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (BrokerUnavailable, redis.RedisError) as e:  # whenever Redis goes away: one line
        # publish() and check_server() keep the Redis error as the context: its words say why.
        why = e
        if isinstance(e, BrokerUnavailable) and isinstance(e.__context__, redis.RedisError):
            why = e.__context__
        if isinstance(why, redis.RedisError) and not unreachable(why):
            # A refused command (a script error) is a bug to report, not an outage.
            print(f"warming: Redis at {broker} refused a command: {why}", file=sys.stderr)
            return EXIT_NOT_ALL_HIT
        return _unreachable(broker, why)
    except WarmingError as e:
        print(f"warming: {e}", file=sys.stderr)
        return EXIT_NOT_ALL_HIT
    except KeyboardInterrupt:
        print("warming: interrupted", file=sys.stderr)
        return 130


def _unreachable(broker: str, why: BaseException) -> int:
    reason = " ".join(str(why).split()) or type(why).__name__
    print(f"warming: cannot reach Redis at {broker}: {reason}", file=sys.stderr)
    return EXIT_NOT_ALL_HIT


def _warm(settings: Settings, args: argparse.Namespace) -> int:
    if args.after_deploy is not None and not args.dry_run:
        rt = Runtime(settings)
        wait_for_build(
            settings,
            rt.client,
            rt.url_filter,
            args.after_deploy or None,
            say=lambda line: print(f"warming: {line}", file=sys.stderr),
        )
    if args.analytics:
        if args.urls or args.file or args.sitemap or args.tag:
            print("warming warm: --analytics warms its own ranked URLs only", file=sys.stderr)
            return EXIT_USAGE
        return ranked.warm(settings, args)
    if args.top:
        print("warming warm: --top ranks --analytics; use --limit for others", file=sys.stderr)
        return EXIT_USAGE
    urls = list(args.urls)
    for path in args.file:
        urls += from_file(path)
    if not (urls or args.sitemap or args.tag):
        print("warming warm: give at least one URL, --file, --sitemap or --tag", file=sys.stderr)
        return EXIT_USAGE
    try:
        since = parse_since(args.changed_since) if args.changed_since else None
    except ValueError as e:
        print(f"warming warm: --changed-since: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        rt = Runtime(settings)
        req = _request(rt, args, urls, since)
        sel = select(rt.url_filter, rt.redis if settings.broker_url else None, req)
        print(dryrun.render(dryrun.plan(settings, req, sel), args.json))
        return EXIT_OK
    embedded = not settings.broker_url
    with running(settings) as rt:
        req = _request(rt, args, urls, since)
        plan = publish(rt, req)
        if not args.wait and not embedded:
            print(json.dumps({"batch_id": plan.batch_id}) if args.json else plan.batch_id)
            return EXIT_OK
        if not args.json:
            print(f"batch {plan.batch_id}", file=sys.stderr)
        report = wait(rt.store, plan.batch_id)
        if args.json and not args.wait:
            print(json.dumps({"batch_id": plan.batch_id}))
            print(reports.render(report), file=sys.stderr)
        elif args.json:  # every result, streamed: a million pairs never sit in memory
            reports.write_json(rt.store, plan.batch_id, sys.stdout)
        else:
            print(reports.render(report))
    return reports.exit_code(report)


def _request(
    rt: Runtime, args: argparse.Namespace, urls: list[str], since: datetime | None
) -> WarmRequest:
    """The request the arguments describe, sitemaps read (through a PoP)."""
    settings = rt.settings
    pop = rt.discoverer.reader(settings.pops)
    dropped: list[Dropped] = []
    urls = list(urls)
    for sm in args.sitemap:
        sitemap = from_sitemap(rt.client, pop, sm, rt.url_filter, since)
        urls += sitemap.urls
        dropped += sitemap.dropped
    return WarmRequest(
        urls=[u for u in urls if "://" in u],
        paths=[u for u in urls if "://" not in u],
        tags=args.tag,
        purge=not args.no_purge,
        trigger={"source": "cli"},
        dropped=dropped,
        exclude=args.exclude,
        limit=args.limit,
        priority=args.priority or ("bulk" if args.sitemap or args.file else "high"),
    )


def _report(settings: Settings, args: argparse.Namespace) -> int:
    rt = use(settings)
    report = reports.build(rt.store, args.batch_id, keep=reports.KEEP_NOT_HIT)
    if report is None:
        print(f"warming report: no batch {args.batch_id} (unknown or expired)", file=sys.stderr)
        return EXIT_NOT_ALL_HIT
    if args.json:
        reports.write_json(rt.store, args.batch_id, sys.stdout)
    else:
        print(reports.render(report))
    return reports.exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
