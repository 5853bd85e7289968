"""Push provider `generic`: any preload API that takes a JSON list of URLs with a token.

`warm.endpoint` is called with `warm.method` (POST) and the token in `warm.token_header`
(`Authorization: Bearer <token>` by default; `token_scheme = ""` sends the bare token,
as in `X-Api-Key: <token>`). The body is `warm.body` with the one string "$items"
replaced by the call's list: full URLs (`items = "urls"`) or paths with their query
(`"paths"`), at most `warm.max_per_call` (100) per call, at `warm.rate` calls ("1/s").
Any 2xx means accepted; 429 and 5xx are retried (Retry-After honoured), any other answer
falls the call's URLs back to GET warming, with the vendor's answer as the reason.
"""

from __future__ import annotations

from typing import Any

from warming import defaults
from warming.cdn.api import ApiClient
from warming.cdn.pushbase import PushCall, Pusher, url_path
from warming.errors import ConfigError
from warming.settings import WarmSettings
from warming.warmsettings import PLACEHOLDER


def render(template: Any, items: list[str]) -> Any:
    """`template` (JSON data) with the string PLACEHOLDER replaced by `items`."""
    if template == PLACEHOLDER:
        return items
    if isinstance(template, dict):
        return {k: render(v, items) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, items) for v in template]
    return template


class GenericPusher(Pusher):
    provider = "generic"
    vendor_max = 10_000  # the API's own limit is unknown: `warm.max_per_call` sets it

    def __init__(self, warm: WarmSettings) -> None:
        super().__init__(warm)
        if not warm.endpoint:
            raise ConfigError("warm.endpoint", "is needed: the push API's URL")
        self._url = warm.endpoint
        self._api = ApiClient(self.provider, warm.timeout_s)

    @property
    def per_call(self) -> int:
        return min(self.warm.max_per_call or defaults.PUSH_MAX_PER_CALL, self.vendor_max)

    @property
    def account(self) -> str:
        return f"generic:{self._url.split('?', 1)[0]}"

    def item(self, url: str) -> str:
        return url_path(url) if self.warm.items == "paths" else url

    def send(self, call: PushCall) -> None:
        headers: dict[str, str] = {}
        if self.warm.api_token is not None:
            scheme = self.warm.token_scheme
            headers[self.warm.token_header] = f"{scheme} {self.token()}" if scheme else self.token()
        self._api.call(
            self.warm.method,
            self._url,
            call.describe(),
            headers=headers,
            json_body=render(self.warm.body, list(call.items)),
        )
