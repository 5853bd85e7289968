"""CPU per request to a PoP: warming's PopClient against requests, urllib3 and http.client.

python bench/bench_http.py [--n 3000]

One Varnish in front of the sandbox origin, one cached URL, N sequential GETs per client in
this process: CPU microseconds per request (time.process_time) and requests per second.
Why `warming.pop.client` uses urllib3 directly and not requests (README: dependencies).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import sys
import time
from collections.abc import Callable

import requests
import urllib3

from warming.pop.client import PopClient
from warming.sandbox import Origin
from warming.sandbox.varnish import VarnishEdge, varnish_available
from warming.settings import FetchSettings, PopSettings, SiteSettings, Variant

HOST = "www.example.com"


def measure(n: int, get: Callable[[], object]) -> dict[str, float]:
    get()  # a connection open and the object cached
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        get()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return {"cpu_us_per_request": round(1e6 * cpu / n), "requests_per_s": round(n / wall)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    if not varnish_available():
        print("varnishd is needed (apt-get install varnish)", file=sys.stderr)
        return 2
    origin = Origin().start()
    edge = VarnishEdge("edge", ("127.0.0.1", origin.port)).start()
    try:
        client = PopClient(FetchSettings(), SiteSettings(base_url=f"http://{HOST}"))
        pop = PopSettings(name="edge", url=edge.url)
        session = requests.Session()
        pool = urllib3.HTTPConnectionPool("127.0.0.1", edge.port, maxsize=1)
        conn = http.client.HTTPConnection("127.0.0.1", edge.port)

        def with_urllib3() -> None:
            r = pool.urlopen("GET", "/x", headers={"Host": HOST}, preload_content=False,
                             retries=False, redirect=False)  # fmt: skip
            digest = hashlib.sha256()
            while chunk := r.read1(65536):
                digest.update(chunk)
            r.release_conn()

        def with_http_client() -> None:
            conn.request("GET", "/x", headers={"Host": HOST})
            hashlib.sha256(conn.getresponse().read())

        out = {
            "warming PopClient.get (urllib3)": measure(
                args.n, lambda: client.get(pop, f"http://{HOST}/x", Variant())
            ),
            "requests.Session": measure(
                args.n, lambda: session.get(edge.url + "/x", headers={"Host": HOST}).content
            ),
            "urllib3 pool": measure(args.n, with_urllib3),
            "http.client": measure(args.n, with_http_client),
        }
    finally:
        edge.stop()
        origin.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
