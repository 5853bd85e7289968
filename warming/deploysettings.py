"""`[deploy]`: how `warming warm --after-deploy` tells that the origin serves the new build.

Beside `warming.settings` (which re-exports it), like `warming.cdnsettings`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from warming import defaults

__all__ = ["DeploySettings"]


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A path on the site (or a URL on an allowed host) whose body, or `version_header`,
    # names the build: "/version.txt", "/api/health". It must not be cached.
    version_url: str | None = None
    # Read this response header instead of the body ("x-build-id", "etag").
    version_header: str | None = None
    # Where to ask, bypassing the caches (default verify.origin_url, else the first edge).
    origin_url: str | None = None
    timeout_s: float = Field(default=defaults.DEPLOY_TIMEOUT_S, gt=0)
    poll_s: float = Field(default=defaults.DEPLOY_POLL_S, gt=0)

    @field_validator("origin_url")
    @classmethod
    def _origin(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s) address such as http://origin.internal:8080")
            return v.rstrip("/")
        return v
