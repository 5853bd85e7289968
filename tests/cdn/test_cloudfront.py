"""CloudFront: invalidations through boto3 against moto, made to enforce what AWS documents.

moto accepts any invalidation and reports it `COMPLETED` at once; the `aws` fixture adds
the documented contract: a repeated CallerReference returns the first invalidation (or
`InvalidationBatchAlreadyExists` with other paths), at most 3,000 file paths and 15
wildcard paths in progress (`TooManyInvalidationsInProgress`), and `InProgress` until
the invalidation has had time to complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.cloudfront import models
from moto.cloudfront.exceptions import CloudFrontException

from tests.cdn.conftest import purge_batch, runtime
from warming.cdn import PurgeCall, purger_for
from warming.errors import PurgeError
from warming.settings import CdnSettings
from warming.stages.outcome import Done, Failed

pytestmark = pytest.mark.integration

COMPLETE_AFTER_S = 1.5
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class AwsRules:
    """The documented CreateInvalidation/GetInvalidation behaviour, over moto's backend."""

    def __init__(self) -> None:
        self.created: list[Any] = []
        self.polls = 0
        self.born: dict[str, float] = {}

    def install(self, mp: pytest.MonkeyPatch) -> None:
        create, get = (
            models.CloudFrontBackend.create_invalidation,
            models.CloudFrontBackend.get_invalidation,
        )
        rules = self

        def create_invalidation(
            backend: Any, dist_id: str, paths: list[str], caller_ref: str
        ) -> Any:
            for inv in backend.invalidations.get(dist_id, []):
                if inv.caller_ref == caller_ref:
                    if list(inv.paths) == list(paths):
                        return rules._aged(inv)
                    raise CloudFrontException(
                        "InvalidationBatchAlreadyExists",
                        "The CallerReference you are using to create an invalidation batch is "
                        "associated with another invalidation batch with different paths",
                    )
            live = [rules._aged(i) for i in backend.invalidations.get(dist_id, [])]
            live = [i for i in live if i.status == "InProgress"]
            wild = sum(p.endswith("*") for i in live for p in i.paths) + sum(
                p.endswith("*") for p in paths
            )
            files = sum(not p.endswith("*") for i in live for p in i.paths) + sum(
                not p.endswith("*") for p in paths
            )
            if wild > 15 or files > 3000:
                raise CloudFrontException(
                    "TooManyInvalidationsInProgress",
                    "Processing your request will cause you to exceed the maximum number of "
                    "in-progress wildcard invalidations or invalidation objects",
                )
            inv = create(backend, dist_id, paths, caller_ref)
            rules.born[inv.id] = time.monotonic()
            rules.created.append(inv)
            return rules._aged(inv)

        def get_invalidation(backend: Any, dist_id: str, id: str) -> Any:
            rules.polls += 1
            return rules._aged(get(backend, dist_id, id))

        mp.setattr(models.CloudFrontBackend, "create_invalidation", create_invalidation)
        mp.setattr(models.CloudFrontBackend, "get_invalidation", get_invalidation)

    def _aged(self, inv: Any) -> Any:
        born = self.born.get(inv.id, time.monotonic())
        inv.status = "Completed" if time.monotonic() - born >= COMPLETE_AFTER_S else "InProgress"
        return inv


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsRules, str]]:
    with mock_aws():
        rules = AwsRules()
        rules.install(monkeypatch)
        cf = boto3.client("cloudfront", region_name="us-east-1", **KEYS)
        origin = {
            "Id": "o1",
            "DomainName": "origin.example.com",
            "CustomOriginConfig": {
                "HTTPPort": 80,
                "HTTPSPort": 443,
                "OriginProtocolPolicy": "http-only",
            },
        }
        dist = cf.create_distribution(
            DistributionConfig={
                "CallerReference": "dist-1",
                "Origins": {"Quantity": 1, "Items": [origin]},
                "DefaultCacheBehavior": {
                    "TargetOriginId": "o1",
                    "ViewerProtocolPolicy": "allow-all",
                },
                "Comment": "",
                "Enabled": True,
            }
        )
        yield rules, dist["Distribution"]["Id"]


def _cdn(dist_id: str, **extra: object) -> dict[str, object]:
    return {
        "provider": "cloudfront",
        "distribution_id": dist_id,
        "poll_interval_s": 0.5,
        **KEYS,
        **extra,
    }


@pytest.mark.timeout(90)
def test_3001_urls_two_invalidations_the_second_after_the_first_completes_then_warming(
    redis_url: str, aws: tuple[AwsRules, str]
) -> None:
    rules, dist = aws
    rt = runtime(redis_url, _cdn(dist))
    paths = [f"/p/{i}" for i in range(3000)] + ["/last?page=2"]

    got = purge_batch(rt, paths)

    assert isinstance(got.outcome, Done), got.batch.get("error")
    assert [len(i.paths) for i in rules.created] == [3000, 1], "3,000 in progress at most"
    assert rules.created[1].paths == ["/last?page=2"], "the path with its query string"
    assert all(rules._aged(i).status == "Completed" for i in rules.created), "warm after Completed"
    assert rules.polls >= 1, "GetInvalidation was asked"
    assert any(w.why == "purge not in effect yet" for w in got.waits)
    assert got.batch["state"] != "purging"


@pytest.mark.timeout(60)
def test_wildcards_go_15_per_invalidation(redis_url: str, aws: tuple[AwsRules, str]) -> None:
    _, dist = aws
    purger = purger_for(CdnSettings.model_validate(_cdn(dist)), [], "http://www.example.com")
    calls = purger.plan([f"http://www.example.com/w{i}/*" for i in range(20)], [], [])
    assert [len(c.urls) for c in calls] == [15, 5]


@pytest.mark.timeout(60)
# The API reference names InvalidationBatchAlreadyExists; botocore's model lists no shape
# for it, and moto warns when it raises one.
@pytest.mark.filterwarnings("ignore:Exception.CloudFrontException. with code Invalidation")
def test_a_retried_call_makes_no_second_invalidation(aws: tuple[AwsRules, str]) -> None:
    rules, dist = aws
    purger = purger_for(CdnSettings.model_validate(_cdn(dist)), [], "http://www.example.com")
    call = PurgeCall(None, urls=("/a", "/b"), ref="batch1-0")
    first, again = purger.send(call), purger.send(call)  # as after a lost answer
    assert first is not None and again is not None and first.token == again.token
    assert len(rules.created) == 1
    with pytest.raises(PurgeError, match="InvalidationBatchAlreadyExists"):
        purger.send(PurgeCall(None, urls=("/other",), ref="batch1-0"))


@pytest.mark.timeout(60)
def test_a_distribution_that_does_not_exist_fails_the_batch(
    redis_url: str, aws: tuple[AwsRules, str]
) -> None:
    rt = runtime(redis_url, _cdn("EDFDVBD6EXAMPLE"))
    got = purge_batch(rt, ["/x"])
    assert isinstance(got.outcome, Failed)
    assert "NoSuchDistribution" in got.batch["error"]


def test_the_double_refuses_what_cloudfront_refuses(aws: tuple[AwsRules, str]) -> None:
    _, dist = aws
    cf = boto3.client("cloudfront", region_name="us-east-1", **KEYS)
    wild = {
        "Paths": {"Quantity": 16, "Items": [f"/w{i}/*" for i in range(16)]},
        "CallerReference": "w",
    }
    with pytest.raises(ClientError, match="TooManyInvalidationsInProgress"):
        cf.create_invalidation(DistributionId=dist, InvalidationBatch=wild)
    files = {
        "Paths": {"Quantity": 3001, "Items": [f"/f{i}" for i in range(3001)]},
        "CallerReference": "f",
    }
    with pytest.raises(ClientError, match="TooManyInvalidationsInProgress"):
        cf.create_invalidation(DistributionId=dist, InvalidationBatch=files)
    one = {"Paths": {"Quantity": 1, "Items": ["/x"]}, "CallerReference": "one"}
    inv = cf.create_invalidation(DistributionId=dist, InvalidationBatch=one)["Invalidation"]
    assert inv["Status"] == "InProgress"
    assert (
        cf.get_invalidation(DistributionId=dist, Id=inv["Id"])["Invalidation"]["Status"]
        == "InProgress"
    )


@pytest.mark.timeout(60)
def test_layers_in_order_the_next_one_only_after_cloudfront_completes(
    redis_url: str, aws: tuple[AwsRules, str]
) -> None:
    from tests.cdn.nextapp import ROUTE, NextApp

    rules, dist = aws
    app = NextApp("s3cret")
    try:
        cdn = {
            **_cdn(dist),
            "providers": ["cloudfront", "nextjs"],
            "revalidate_url": app.url + ROUTE,
            "revalidate_secret": "s3cret",
        }
        got = purge_batch(runtime(redis_url, cdn), ["/layered"])
    finally:
        app.stop()
    assert isinstance(got.outcome, Done), got.batch.get("error")
    (inv,) = rules.created
    ((when, body),) = app.revalidations
    assert body == {"tags": [], "paths": ["/layered"]}
    assert when >= rules.born[inv.id] + COMPLETE_AFTER_S, (
        "the outer layer went before the inner completed"
    )
