"""`[warm]`: how pairs are warmed, beside `warming.settings` (which re-exports it).

`mode = "get"` (the default) warms each (URL, PoP) with a GET through that PoP. `mode =
"push"` first hands the batch's URLs to the CDN's prefetch (push, preload) API, which
fills its PoPs itself, then verifies every PoP with GETs (README "Push mode"). The API
token is a `SecretStr`: it never shows in a repr, a log line, an error or a plan.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from warming import defaults

__all__ = ["PLACEHOLDER", "PushProvider", "WarmSettings", "per_second"]

PushProvider = Literal["gcore", "generic"]
# The string in `warm.body` that the call's list of URLs (or paths) replaces.
PLACEHOLDER = "$items"

# `Rate`'s syntax ("1/m", "5/10s"; warming.settings.Rate parses it where it is used): the
# settings layer sits above this module, so the check is repeated here. Keep both equal.
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def per_second(text: str) -> float:
    """Calls per second of a rate string like "1/m"; ValueError for anything else."""
    m = _RATE.match(text)
    mult = int(m.group(2)) if m and m.group(2) else 1
    if not m or float(m.group(1)) <= 0 or mult <= 0:
        raise ValueError("is not a rate like '1/m', '10/s' or '5/10s'")
    return float(m.group(1)) / (mult * _UNIT_S[m.group(3)])


class WarmSettings(BaseModel):
    """`[warm]`: GETs through every PoP, or a push API then GETs that verify."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["get", "push"] = "get"
    provider: PushProvider = "gcore"
    api_url: str | None = None  # gcore: replaces https://api.gcore.com (staging, a double)
    api_token: SecretStr | None = None
    resource_id: int | None = Field(default=None, ge=1)  # gcore: the CDN resource
    # generic: the whole URL called, its method, where the token goes, the JSON body.
    endpoint: str | None = None
    method: Literal["POST", "PUT"] = "POST"
    token_header: str = Field(default="Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    token_scheme: str = Field(default="Bearer", pattern=r"^[A-Za-z0-9._-]{0,32}$")  # "": bare
    body: dict[str, Any] = Field(default_factory=lambda: {"urls": PLACEHOLDER})
    items: Literal["urls", "paths"] = "urls"
    max_per_call: int | None = Field(default=None, ge=1)  # never above the vendor's maximum
    rate: str | None = None  # calls, cluster-wide; default the vendor's (gcore 1/m)
    daily_quota: int | None = Field(default=None, ge=0)  # URLs per UTC day, cluster-wide
    # Pushes complete asynchronously: verification starts this long after the last call.
    settle_s: float = Field(default=defaults.PUSH_SETTLE_S, ge=0, le=3600)
    timeout_s: float = Field(default=defaults.PURGE_TIMEOUT_S, gt=0)

    @field_validator("api_url", "endpoint")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not (urlsplit(v).scheme in ("http", "https") and urlsplit(v).netloc):
            raise ValueError("must be an http(s) URL such as https://api.example.com")
        return v.rstrip("/") if v else v

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is not None:
            per_second(v)
        return v

    @field_validator("body")
    @classmethod
    def _one_placeholder(cls, v: dict[str, Any]) -> dict[str, Any]:
        n = json.dumps(v).count(json.dumps(PLACEHOLDER))
        if n != 1:
            raise ValueError(
                f"must hold the string {PLACEHOLDER!r} exactly once, as the value the "
                f"call's list replaces (found {n}), e.g. {{ urls = {PLACEHOLDER!r} }}"
            )
        return v

    @model_validator(mode="after")
    def _provider_needs(self) -> WarmSettings:
        # Refused at load: every command stops at start (exit 2), not a batch much later.
        if self.mode != "push":
            return self
        if self.provider == "gcore" and self.resource_id is None:
            raise ValueError("warm.resource_id is needed to push with 'gcore'")
        if self.provider == "generic" and not self.endpoint:
            raise ValueError("warm.endpoint is needed to push with 'generic'")
        return self

    def planned(self) -> dict[str, Any] | None:
        """What a batch's plan keeps: None in get mode, else every key set, no secret."""
        if self.mode != "push":
            return None
        out = self.model_dump(mode="json", exclude={"api_token"}, exclude_defaults=True)
        return {"mode": "push", "provider": self.provider, **out}

    def budget_s(self, n_urls: int) -> float:
        """Seconds a push of `n_urls` adds to a batch's deadline: its calls at the vendor's
        pace and the settling, times the deadline's slack."""
        if self.mode != "push" or n_urls == 0:
            return 0.0
        per = self.max_per_call or defaults.PUSH_MAX_PER_CALL
        calls = -(-n_urls // per)
        rate = per_second(self.rate or defaults.PUSH_RATES[self.provider])
        return defaults.DEADLINE_SLACK * (self.settle_s + (calls - 1) / rate)
