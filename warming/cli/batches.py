"""`warming batches`: the recent batches, newest first (the shim's `GET /batches`)."""

from __future__ import annotations

import argparse
import json
import sys

from warming import defaults
from warming.batch import listing
from warming.runtime import use
from warming.settings import Settings

STATES = ("queued", "purging", "warming", "verifying", "done", "failed")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("batches", help="recent batches, newest first")
    b.add_argument("--state", choices=STATES, help="only batches in this state")
    b.add_argument("--limit", type=int, default=defaults.BATCHES_LIST, metavar="N")
    b.add_argument("--json", action="store_true")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= defaults.BATCHES_MAX:
        print(f"warming batches: --limit is 1 to {defaults.BATCHES_MAX}", file=sys.stderr)
        return 2
    items = listing.recent(use(settings).store, args.state, args.limit)
    print(json.dumps({"batches": items}, indent=2) if args.json else listing.render(items))
    return 0
