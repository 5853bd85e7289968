"""`[cdn]`: the purge providers' settings, beside `warming.settings` (which re-exports them).

A module of its own so that settings.py stays one screenful per section; secrets are
`SecretStr` here too, so they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from warming import defaults

__all__ = ["CdnSettings", "ProviderName"]

ProviderName = Literal[
    "varnish", "fastly", "cloudflare", "akamai", "cloudfront", "vercel", "nextjs", "nginx", "none"
]


class CdnSettings(BaseModel):
    """`[cdn]`: who purges, with which account (README "CDN providers": a section each)."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName = "varnish"
    # Layers purged in order, inner first; each takes effect before the next is sent.
    providers: list[ProviderName] | None = Field(default=None, min_length=1)
    api_url: str | None = None  # replaces the vendor's API base; Akamai: the client's host
    api_token: SecretStr | None = None  # Fastly, Cloudflare, Vercel
    service_id: str | None = None  # Fastly (also names the purge limit's account)
    zone_id: str | None = None  # Cloudflare
    distribution_id: str | None = None  # CloudFront
    project: str | None = None  # Vercel projectIdOrName
    team_id: str | None = None  # Vercel
    client_token: SecretStr | None = None  # Akamai EdgeGrid, with client_secret and
    client_secret: SecretStr | None = None  # access_token
    access_token: SecretStr | None = None
    network: Literal["production", "staging"] = "production"  # Akamai
    cp_codes: list[int] = Field(default_factory=list)  # Akamai: instead of the URLs
    # CloudFront; unset, boto3's own chain (instance role, AWS_* environment) applies.
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    hosts: list[str] = Field(default_factory=list)  # Cloudflare: purged with every batch
    prefixes: list[str] = Field(default_factory=list)  # Cloudflare: likewise
    soft: bool = False  # mark stale, where the vendor can (README: when each takes effect)
    revalidate_url: str | None = None  # Next.js: the app's revalidate route
    revalidate_secret: SecretStr | None = None
    revalidate_secret_in: Literal["header", "query"] = "header"
    revalidate_secret_name: str | None = None  # default x-revalidate-secret / secret
    # nginx: "" sends PURGE to the URL; "/purge" sends GET /purge<path> (separate location).
    purge_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~/-]*)?$")
    max_per_call: int | None = Field(default=None, ge=1)  # below the vendor's own limit
    poll_interval_s: float = Field(default=defaults.PURGE_POLL_S, gt=0)  # CloudFront
    purge_timeout_s: float = defaults.PURGE_TIMEOUT_S
    # Varnish: the request header that carries the surrogate keys of a tag purge; it must
    # be the one the PoPs' VCL reads (a tag purge it ignores is caught by the freshness proof).
    tag_header: str = Field(default=defaults.TAG_HEADER, pattern=r"^[A-Za-z0-9-]{1,64}$")

    @field_validator("provider")
    @classmethod
    def _implemented(cls, v: str) -> str:
        # Refused here, every command stops at start (exit 2), not a batch much later.
        if v not in defaults.CDN_PROVIDERS:
            done = ", ".join(defaults.CDN_PROVIDERS)
            raise ValueError(f"{v!r} is not implemented yet (implemented: {done})")
        return v

    @field_validator("providers")
    @classmethod
    def _layers(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (len(set(v)) != len(v) or ("none" in v and len(v) > 1)):
            raise ValueError("must name each layer once ('none' only alone)")
        return v

    @field_validator("api_url", "revalidate_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not (urlsplit(v).scheme in ("http", "https") and urlsplit(v).netloc):
            raise ValueError("must be an http(s) URL such as https://api.example.com")
        return v.rstrip("/") if v else v

    @property
    def layers(self) -> list[str]:
        """The providers purged, in order: `providers`, else `provider` alone."""
        return list(self.providers) if self.providers else [self.provider]
