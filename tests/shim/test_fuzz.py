"""Fuzz the shim from its own OpenAPI description: whatever arrives, never a 5xx.

Runs against a reachable Redis (a 503 would be a correct answer for a dead broker,
so the broker is live here and any 5xx is a bug).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from tests.support import TEST_REDIS
from warming.cms.standard import sign
from warming.runtime import Runtime
from warming.settings import Settings
from warming.shim.app import create_app

pytestmark = pytest.mark.integration


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BROKER = f"{TEST_REDIS}/15"


def _app() -> FastAPI:
    os.environ.setdefault("WARMING_CONFIG", "/nonexistent/warming.toml")
    s = Settings.model_validate(
        {
            "broker_url": BROKER,
            "site": {"base_url": "http://www.example.com"},
            "pops": [{"name": "edge1", "url": "http://127.0.0.1:9"}],
            "webhook": {"secrets": [SECRET]},
        }
    )
    return create_app(Runtime(s))


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(BROKER, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


if not _redis_up():
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI: Redis at {TEST_REDIS}", pytrace=False)
    pytest.skip(f"no Redis at {TEST_REDIS}", allow_module_level=True)

APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CLIENT = TestClient(APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_shim_fail(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.path, case.body, response.text)


@schema.include(path="/webhooks/{adapter}").parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_validly_signed_fuzz_never_fails_the_shim(case: schemathesis.Case) -> None:
    """The same bodies, signed: parsing, filtering and publishing see hostile input."""
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) else {}
    raw = json.dumps(body).encode()
    msg_id = f"msg_{time.monotonic_ns()}"
    ts = int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, raw),
        "content-type": "application/json",
    }
    response = CLIENT.post(
        f"/webhooks/{case.path_parameters['adapter']}", content=raw, headers=headers
    )
    assert response.status_code < 500, (case.path_parameters, raw[:300], response.text)
    if case.path_parameters["adapter"] == "generic" and response.status_code in (200, 202):
        report = CLIENT.get(response.json()["status_url"]).json()
        assert report["counts"]["total"] + report["counts"]["dropped"] >= 0
        for kept in report["results"]:
            assert kept["url"].startswith("http://www.example.com/")


@pytest.fixture(scope="module", autouse=True)
def _clean_up() -> Iterator[None]:
    yield
    import redis

    r = redis.Redis.from_url(BROKER)
    for pattern in ("warming:*", "celery*", "_kombu*", "unacked*"):
        for key in r.scan_iter(pattern):
            r.delete(key)
