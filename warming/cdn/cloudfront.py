"""Provider `cloudfront`: one invalidation per call (boto3), polled until `Completed`.

The contract, from the CloudFront API Reference and Developer Guide:

- `CreateInvalidation` (https://docs.aws.amazon.com/cloudfront/latest/APIReference/
  API_CreateInvalidation.html, `InvalidationBatch`): `DistributionId`, `Paths`
  (`Quantity`, `Items`) and a `CallerReference`. "If you make a second invalidation
  request with the same value for CallerReference, and if the rest of the request is
  the same, CloudFront doesn't create a new invalidation request": each call's reference
  is its batch and call number, so a retried or redelivered call never makes a second
  invalidation (nor counts twice against the limits below).
- `GetInvalidation`: `Status` is `InProgress` until `Completed`; warming waits for it.
- Limits ("Concurrent invalidation request maximum", https://docs.aws.amazon.com/
  AmazonCloudFront/latest/DeveloperGuide/InvalidationLimits.html): up to 3,000 file
  paths and 15 wildcard paths in progress per distribution. A call carries at most that
  many; past them CloudFront answers `TooManyInvalidationsInProgress`, retried later.
- Paths ("What you need to know when invalidating paths"): the URL's path, with its
  query string (each query string is its own object), case-sensitive.
- Auth: AWS credentials allowed `cloudfront:CreateInvalidation` and
  `cloudfront:GetInvalidation` (`cdn.aws_access_key_id`/`aws_secret_access_key`, else
  boto3's own chain). Tags: CloudFront has none; the batch's URLs are invalidated.
- Effect: after polling.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from warming import defaults
from warming.cdn.base import Effect, Pending, PurgeCall, Purger, limit
from warming.errors import ConfigError, PurgeError, RetryLater
from warming.settings import CdnSettings, PopSettings

# Errors that end once CloudFront catches up: retried like a 429.
_RETRY = {"TooManyInvalidationsInProgress", "Throttling", "ServiceUnavailable"}


class CloudFrontPurger(Purger):
    provider = "cloudfront"

    def __init__(self, cdn: CdnSettings) -> None:
        super().__init__(cdn)
        if not cdn.distribution_id:
            raise ConfigError("cdn.distribution_id", "is needed to purge with CloudFront")
        keys: dict[str, Any] = {}
        if cdn.aws_access_key_id and cdn.aws_secret_access_key:
            keys = {
                "aws_access_key_id": cdn.aws_access_key_id.get_secret_value(),
                "aws_secret_access_key": cdn.aws_secret_access_key.get_secret_value(),
            }
        timeout = cdn.purge_timeout_s
        self._client = boto3.client(
            "cloudfront",
            region_name=defaults.CLOUDFRONT_REGION,
            endpoint_url=cdn.api_url,
            # Retries are the purge stage's (spaced, resumable); boto3's own would sleep.
            config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}
            ),
            **keys,
        )

    @property
    def effect(self) -> Effect:
        return "after polling"

    def plan(
        self, urls: Sequence[str], tags: Sequence[str], pops: Sequence[PopSettings]
    ) -> list[PurgeCall]:
        paths = list(dict.fromkeys(_path(u) for u in urls))
        n = limit(self.cdn, defaults.CLOUDFRONT_MAX_PATHS)
        calls: list[PurgeCall] = []
        batch: list[str] = []
        wild = 0
        for p in paths:
            w = p.endswith("*")
            if len(batch) == n or (w and wild == defaults.CLOUDFRONT_MAX_WILDCARDS):
                calls.append(PurgeCall(None, urls=tuple(batch)))
                batch, wild = [], 0
            batch.append(p)
            wild += w
        if batch:
            calls.append(PurgeCall(None, urls=tuple(batch)))
        return calls

    def send(self, call: PurgeCall) -> Pending | None:
        ref = f"warming-{call.ref}" if call.ref else f"warming-{uuid.uuid4().hex}"
        batch = {
            "Paths": {"Quantity": len(call.urls), "Items": list(call.urls)},
            "CallerReference": ref,
        }
        out = self._aws(call.describe(), "create_invalidation", InvalidationBatch=batch)
        inv = out["Invalidation"]
        return self._next(call.layer, inv["Id"], inv["Status"])

    def poll(self, pending: Pending) -> Pending | None:
        out = self._aws(f"invalidation {pending.token}", "get_invalidation", Id=pending.token)
        return self._next(pending.layer, pending.token, out["Invalidation"]["Status"])

    def _next(self, layer: int, inv_id: str, status: str) -> Pending | None:
        # The API says "Completed"; compared without case, as some doubles say "COMPLETED".
        if status.lower() == "completed":
            return None
        return Pending(layer, after_s=self.cdn.poll_interval_s, token=inv_id)

    def _aws(self, what: str, op: str, **kwargs: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = getattr(self._client, op)(
                DistributionId=self.cdn.distribution_id, **kwargs
            )
            return out
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _RETRY or (isinstance(status, int) and status >= 500):
                wait = self.cdn.poll_interval_s
                raise RetryLater(
                    f"{what}: CloudFront said {code}", delay=wait, status=status
                ) from None
            msg = str(e.response.get("Error", {}).get("Message", ""))[:200]
            raise PurgeError(
                f"{what}: CloudFront said {code}: {msg}",
                provider=self.provider,
                target=self.cdn.distribution_id or "",
                status=status,
            ) from None
        except BotoCoreError as e:
            raise RetryLater(f"{what}: {type(e).__name__} reaching CloudFront") from None


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
