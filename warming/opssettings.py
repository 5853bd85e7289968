"""`[log]`, `[metrics]`, `[report]`, `[notify]`: how operators see warming (README "Operating it").

Beside `warming.settings` (which re-exports them), like `warming.cdnsettings`. Tokens and
webhook URLs are `SecretStr`: a Slack incoming-webhook URL is itself the credential.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from warming import defaults

__all__ = ["LogSettings", "MetricsSettings", "NotifySettings", "ReportSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LogSettings(_Strict):
    """`[log]`: the workers' and the shim's log lines."""

    format: Literal["text", "json"] = "text"
    # None: the process's own (a worker's `-l`; the shim: LOG_LEVEL; embedded runs: WARNING).
    level: Level | None = None


class MetricsSettings(_Strict):
    """`[metrics]`: Prometheus metrics (workers on `port`, the shim on its own port)."""

    port: int | None = Field(default=None, ge=1, le=65535)  # workers' /metrics; None: off
    host: str = defaults.METRICS_HOST
    token: SecretStr | None = None  # bearer token the shim's /metrics asks for


class ReportSettings(_Strict):
    """`[report]`: the shim's batch list and report routes."""

    token: SecretStr | None = None  # bearer token GET /batches and /batches/{id} ask for


Event = Literal["failed", "miss", "done"]


class NotifySettings(_Strict):
    """`[notify]`: who is told when a batch ends, and when."""

    # failed: the batch failed or a pair did; miss: a pair missed; done: every batch.
    on: list[Event] = Field(default_factory=lambda: cast(list[Event], list(defaults.NOTIFY_ON)))
    slack_url: SecretStr | None = None  # a Slack incoming webhook
    callback_url: str | None = None  # a receiver of Standard Webhooks
    callback_secret: SecretStr | None = None  # whsec_...: signs the callback
    report_url: str | None = None  # the shim's public base: notices link to its report page
    max_attempts: int = Field(default=defaults.NOTIFY_MAX_ATTEMPTS, ge=1, le=20)
    timeout_s: float = Field(default=defaults.NOTIFY_TIMEOUT_S, gt=0)
