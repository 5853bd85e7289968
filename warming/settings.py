"""Settings: one TOML file plus `WARMING_*` environment overrides (pydantic-settings).

Built once at a front door (CLI, worker start, shim) and passed in. Secrets are
`SecretStr`, so they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from warming import defaults
from warming.cdnsettings import CdnSettings as CdnSettings
from warming.deploysettings import DeploySettings
from warming.discoversettings import DiscoverSettings as DiscoverSettings
from warming.discoversettings import check_pop_code, check_resolver, check_subnet
from warming.errors import ConfigError
from warming.opssettings import LogSettings, MetricsSettings, NotifySettings, ReportSettings
from warming.schedulesettings import ScheduleSettings as ScheduleSettings
from warming.schedulesettings import parse_duration_s as parse_duration_s
from warming.warmsettings import WarmSettings as WarmSettings

# How urgent a batch is: "high" (webhooks, interactive CLI), "normal", or "bulk"
# (sitemaps, files, schedules), whose prefetches use their own queue.
Priority = Literal["high", "normal", "bulk"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True)
class Rate:
    """`count` events per `period_s` seconds, parsed from strings like "100/s" or "600/m"."""

    count: float
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        m = _RATE.match(text)
        mult = int(m.group(2)) if m and m.group(2) else 1
        if not m or float(m.group(1)) <= 0 or mult <= 0:
            # The value is not echoed: a secret pasted into the wrong key must not be shown.
            raise ValueError("is not a rate like '100/s', '600/m' or '5/10s'")
        return cls(float(m.group(1)), mult * _UNIT_S[m.group(3)])

    @property
    def per_second(self) -> float:
        return self.count / self.period_s

    def celery(self) -> str:
        """The same rate as Celery's `rate_limit` string (it knows only /s, /m, /h)."""
        return f"{self.per_second:g}/s"


def _check_rate(v: str | None) -> str | None:
    if v is not None:
        Rate.parse(v)
    return v


def _optional(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """`check` for an optional key: None passes."""

    def run(v: str | None) -> str | None:
        return v if v is None else check(v)

    return run


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variant(_Strict):
    """One cache object per URL: the request headers the origin varies on."""

    name: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    headers: dict[str, str] = Field(default_factory=dict)


class SiteSettings(_Strict):
    base_url: str
    allow_hosts: list[str] = Field(default_factory=list)
    deny_paths: list[str] = Field(default_factory=lambda: list(defaults.DENY_PATHS))
    deny_params: list[str] = Field(default_factory=lambda: list(defaults.DENY_PARAMS))
    strip_params: list[str] = Field(default_factory=lambda: list(defaults.STRIP_PARAMS))
    variants: list[Variant] = Field(default_factory=lambda: [Variant()])

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL such as https://www.example.com")
        return v.rstrip("/")

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[Variant]) -> list[Variant]:
        names = [x.name for x in v]
        if not v or len(set(names)) != len(names):
            raise ValueError("needs at least one variant, each with a distinct name")
        return v

    @property
    def host(self) -> str:
        """The public host name: the `Host` header, TLS SNI and certificate name."""
        return (urlsplit(self.base_url).hostname or "").lower()

    @property
    def hosts(self) -> list[str]:
        return [h.lower() for h in self.allow_hosts] or [self.host]


class PopSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Where requests go. Left out, the PoP is found each batch (warming.pop.discover): by
    # asking `resolver` (with `client_subnet`: as for users there, EDNS Client Subnet) for
    # discover.hostname, or by CloudFront's per-PoP host name for `cloudfront_pop`.
    url: str = ""
    tier: Literal["edge", "shield"] = "edge"
    cache_header: str | None = None
    rate: str | None = None
    resolver: str | None = None
    client_subnet: str | None = None
    cloudfront_pop: str | None = None

    _rate = field_validator("rate")(_check_rate)
    _resolver = field_validator("resolver")(_optional(check_resolver))
    _subnet = field_validator("client_subnet")(_optional(check_subnet))
    _pop_code = field_validator("cloudfront_pop")(_optional(check_pop_code))

    @property
    def discovered(self) -> bool:
        """Whether the address is found by DNS rather than given as `url`."""
        return bool(self.resolver or self.client_subnet or self.cloudfront_pop)

    @model_validator(mode="after")
    def _addressed(self) -> PopSettings:
        if not self.url and not self.discovered:
            raise ValueError(
                "needs url (an address such as http://203.0.113.10:8080), or resolver, "
                "client_subnet or cloudfront_pop to find one"
            )
        if self.url and self.discovered:
            raise ValueError("has url and also resolver/client_subnet/cloudfront_pop: set one")
        return self

    @cached_property
    def rate_limit(self) -> Rate | None:
        """`rate`, parsed once: this PoP's own limit on top of the cluster's."""
        return Rate.parse(self.rate) if self.rate else None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) address such as http://203.0.113.10:8080")
        return v.rstrip("/")


class LimitsSettings(_Strict):
    prefetch: str = defaults.PREFETCH_RATE
    purge: str = defaults.PURGE_RATE
    origin_concurrency: int | None = Field(default=None, ge=1)
    # Slow a PoP down on its 429s, 5xx and slow origin misses, each PoP on its own so one
    # in trouble never slows the others (warming.pop.adaptive).
    adaptive: bool = True
    origin_latency_target_ms: float | None = Field(default=None, gt=0)
    # Celery's own per-worker `rate_limit` on prefetch. Off by default: once a 429
    # retry puts an ETA task in a worker, Celery's rate-limited path runs one task
    # per event-loop tick (~1/s, celery #3166); measured 49.5 s instead of 7.9 s for
    # 80 pairs. The cluster-wide limit above already bounds every worker.
    per_worker_prefetch: str | None = None

    _rates = field_validator("prefetch", "purge", "per_worker_prefetch")(_check_rate)

    # Parsed once (the values were checked above): read on every request.
    @cached_property
    def prefetch_rate(self) -> Rate:
        return Rate.parse(self.prefetch)

    @cached_property
    def purge_rate(self) -> Rate:
        return Rate.parse(self.purge)

    @cached_property
    def per_worker_prefetch_rate(self) -> Rate | None:
        return Rate.parse(self.per_worker_prefetch) if self.per_worker_prefetch else None


class FetchSettings(_Strict):
    connect_timeout_s: float = Field(default=defaults.CONNECT_TIMEOUT_S, gt=0)
    read_timeout_s: float = Field(default=defaults.READ_TIMEOUT_S, gt=0)
    total_timeout_s: float = Field(default=defaults.TOTAL_TIMEOUT_S, gt=0)
    max_attempts: int = Field(default=defaults.MAX_ATTEMPTS, ge=1, le=20)
    retry_after_cap_s: float = Field(default=defaults.RETRY_AFTER_CAP_S, gt=0)
    backoff_base_s: float = Field(default=defaults.BACKOFF_BASE_S, gt=0)
    user_agent: str = defaults.USER_AGENT
    verify_tls: bool = True
    # A CA bundle (PEM path) for PoPs whose certificates chain to a private CA.
    ca_bundle: str | None = None


class BatchSettings(_Strict):
    slice_size: int = Field(default=defaults.SLICE_SIZE, ge=1, le=5000)
    slices_in_flight: int = Field(default=defaults.SLICES_IN_FLIGHT, ge=1)
    chunk_size: int = Field(default=defaults.CHUNK_SIZE, ge=1, le=500)
    deadline_s: float | None = Field(default=None, gt=0)
    report_ttl_s: int = Field(default=defaults.REPORT_TTL_S, ge=60)


# The names of warming.cms.ADAPTERS (settings sit below cms, so they are repeated here;
# tests/test_settings.py keeps the two equal).
WEBHOOK_ADAPTERS = (
    "generic",
    "contentful",
    "sanity",
    "strapi",
    "wordpress",
    "ghost",
    "storyblok",
    "prismic",
)


class AdapterSettings(_Strict):
    """`[webhook.adapters.<name>]`: one adapter's own secrets."""

    # None: the adapter uses `webhook.secrets`; [] refuses every request to it.
    secrets: list[SecretStr] | None = None


class WebhookSettings(_Strict):
    secrets: list[SecretStr] = Field(default_factory=list)
    adapters: dict[str, AdapterSettings] = Field(default_factory=dict)
    tolerance_s: int = Field(default=defaults.WEBHOOK_TOLERANCE_S, ge=1)
    max_body_bytes: int = Field(default=defaults.WEBHOOK_MAX_BODY, ge=1)
    coalesce_window_s: float = Field(default=defaults.COALESCE_WINDOW_S, ge=0)

    @field_validator("adapters")
    @classmethod
    def _known_adapters(cls, v: dict[str, AdapterSettings]) -> dict[str, AdapterSettings]:
        unknown = sorted(set(v) - set(WEBHOOK_ADAPTERS))
        if unknown:
            # A misspelt name would otherwise leave that adapter on the shared secrets.
            raise ValueError(
                f"unknown adapter {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(WEBHOOK_ADAPTERS)}"
            )
        return v

    def secrets_for(self, adapter: str) -> list[SecretStr]:
        """The secrets that authenticate `adapter`: its own, else `webhook.secrets`."""
        own = self.adapters.get(adapter)
        return self.secrets if own is None or own.secrets is None else own.secrets


class TrafficSettings(_Strict):
    """`[traffic]`: the rank bands of `warm --analytics` (1..high: high, ..normal: normal)."""

    high: int = Field(default=defaults.TRAFFIC_HIGH, ge=0)
    normal: int = Field(default=defaults.TRAFFIC_NORMAL, ge=0)


class RouteSettings(_Strict):
    """A content type's URLs: a changed blog post warms /blog/{slug}, /blog and /."""

    content_type: str
    urls: list[str] = Field(min_length=1)  # path templates, fields in braces: /blog/{slug}
    keys: list[str] = Field(default_factory=list)  # surrogate-key templates to purge
    priority: Priority = "high"


class VerifySettings(_Strict):
    """How verification proves that a PoP serves the fresh object (README: freshness proof)."""

    # auto: "both" when origin_url is set, else "age" (the strongest proof without setup).
    freshness: Literal["auto", "age", "origin", "both", "off"] = "auto"
    # The origin, bypassing every cache (e.g. http://origin.internal:8080): one request per
    # URL and variant, with the site's Host, gives the version every PoP must serve.
    origin_url: str | None = None
    # Statuses that count as a hit; a cached 404, 500 or maintenance page never does.
    statuses: list[int] = Field(default_factory=lambda: list(defaults.HIT_STATUSES), min_length=1)

    @field_validator("origin_url")
    @classmethod
    def _origin(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ValueError("must be an http(s) address such as http://origin.internal:8080")
        return v.rstrip("/")

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        if any(not 200 <= s <= 299 for s in v):
            raise ValueError("only 2xx statuses can count as a hit")
        return v

    def proof(self, purged: bool) -> str:
        """The proof a batch gets: `freshness`, with "age" dropped when nothing was purged."""
        mode: str = self.freshness
        if mode == "auto":
            mode = "both" if self.origin_url else "age"
        if not purged:  # no purge time to measure Age against
            mode = {"age": "off", "both": "origin"}.get(mode, mode)
        return mode


class Settings(BaseSettings):
    """Everything warming needs to run; see SPEC.md for the file format."""

    model_config = SettingsConfigDict(
        env_prefix="WARMING_", env_nested_delimiter="__", extra="forbid"
    )

    broker_url: str | None = None
    result_backend: str | None = None
    # The master Redis Sentinel names, when broker_url (and result_backend) is sentinel://.
    master_name: str | None = None
    site: SiteSettings
    pops: list[PopSettings] = Field(min_length=1)
    cdn: CdnSettings = Field(default_factory=CdnSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    routes: list[RouteSettings] = Field(default_factory=list)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    schedules: list[ScheduleSettings] = Field(default_factory=list)
    traffic: TrafficSettings = Field(default_factory=TrafficSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    warm: WarmSettings = Field(default_factory=WarmSettings)
    discover: DiscoverSettings = Field(default_factory=DiscoverSettings)

    @field_validator("schedules")
    @classmethod
    def _unique_schedules(cls, v: list[ScheduleSettings]) -> list[ScheduleSettings]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(dup)}")
        return v

    def schedule(self, name: str) -> ScheduleSettings | None:
        return next((s for s in self.schedules if s.name == name), None)

    @field_validator("pops")
    @classmethod
    def _unique_pops(cls, v: list[PopSettings]) -> list[PopSettings]:
        names = [p.name for p in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"PoP names must be unique; repeated: {', '.join(sorted(dup))}")
        return v

    @model_validator(mode="after")
    def _discoverable(self) -> Settings:
        named = [p.name for p in self.pops if p.cloudfront_pop]
        if named and not self.discover.cloudfront_domain:
            raise ValueError(
                f"discover.cloudfront_domain (the distribution's dXXXX.cloudfront.net) is "
                f"needed to find pops {', '.join(named)} by cloudfront_pop"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_path())
        return (init_settings, env_settings, toml)

    def require_broker_url(self) -> str:
        """`broker_url`, or ConfigError: workers and the shim cannot run embedded."""
        if not self.broker_url:
            raise ConfigError(
                "broker_url",
                "is not set: workers and the shim need the shared Redis "
                "(embedded mode is only for `warming warm` and `warming demo`)",
            )
        return self.broker_url

    def redacted(self) -> dict[str, Any]:
        """A JSON-able view for printing: secrets show as '**********'."""
        return self.model_dump(mode="json")


def _config_path() -> Path:
    return Path(os.environ.get("WARMING_CONFIG", defaults.CONFIG_PATH))


def load_settings(**overrides: Any) -> Settings:
    """Read the TOML file and the environment; raise ConfigError naming the bad key."""
    path = _config_path()
    if "WARMING_CONFIG" in os.environ and not path.is_file():
        raise ConfigError("WARMING_CONFIG", f"no such file: {path}")
    if path.is_file():
        try:
            tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(str(path), f"not valid TOML: {e}") from None
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(*_first_error(e)) from None


def _first_error(e: ValidationError) -> tuple[str, str]:
    lines = []
    key = ""
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        key = key or loc
        # pydantic puts the offending input in the message for some errors; never echo
        # values, since a misplaced secret would end up on a terminal or in a log.
        lines.append(f"{loc}: {err['msg']}")
    extra = f" (and {len(lines) - 1} more: {'; '.join(lines[1:])})" if len(lines) > 1 else ""
    return key, lines[0].split(": ", 1)[1] + extra
