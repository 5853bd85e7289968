"""What every CMS webhook adapter implements, and the checks they share.

An adapter answers three questions about an inbound request: is it authentic
(`verify`), what changed (`parse`), and which delivery is it (`replay_key`, for
idempotency: the sender's delivery id, or for senders that have none, a digest of
the body). Every refusal is a `WebhookError` carrying the HTTP status to
answer. Messages name headers and JSON paths, never a value: a header or body
may hold a secret or a signature, and error messages end up in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from warming import defaults
from warming.errors import WebhookError

# A timestamp header longer than this is junk, not a clock reading.
_TIMESTAMP = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Inbound:
    """The parts of an HTTP request an adapter may look at."""

    method: str
    path: str  # request path as the sender addressed it, e.g. "/webhooks/contentful"
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class Change:
    """What a payload says changed; `warming.cms.routes.expand` turns it into paths and keys."""

    urls: tuple[str, ...] = ()  # absolute URLs named by the payload
    paths: tuple[str, ...] = ()  # site-relative paths named by the payload
    tags: tuple[str, ...] = ()  # surrogate keys named by the payload
    content_type: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)  # values for route templates
    event: str | None = None  # e.g. "Entry.publish", "post.published"


class Adapter(ABC):
    """One CMS's webhook: its signature scheme and its payload shape."""

    name: ClassVar[str]
    # The sender has no delivery id and signs no timestamp (Strapi, WordPress, Storyblok,
    # Prismic): a repeat is recognised by its body's digest, for `webhook.tolerance_s`.
    replay_by_body: ClassVar[bool] = False

    @abstractmethod
    def verify(self, req: Inbound, secrets: Sequence[str], tolerance_s: int, now: float) -> None:
        """Return if `req` is authentic under one of `secrets`, else raise WebhookError(401)."""

    @abstractmethod
    def parse(self, req: Inbound) -> Change:
        """The change `req` announces; WebhookError 400 (not JSON) or 422 (wrong shape)."""

    def delivery_id(self, req: Inbound) -> str | None:
        """The sender's unique id for this delivery (same across its retries), if it has one."""
        return None

    def replay_key(self, req: Inbound) -> str | None:
        """What a repeat of this delivery is recognised by: its id, else its body's digest."""
        if self.replay_by_body:
            return "body:" + hashlib.sha256(req.body).hexdigest()
        return self.delivery_id(req)

    def replay_ttl_s(self, tolerance_s: int) -> int:
        """How long `replay_key` is remembered.

        A delivery id outlives every retry schedule. A body digest lasts the tolerance
        window only: two honest deliveries of the same body may be that far apart.
        """
        return tolerance_s if self.replay_by_body else defaults.WEBHOOK_ID_TTL_S


# --- authentication helpers ------------------------------------------------------


def header(req: Inbound, name: str) -> str | None:
    """The value of header `name` (lower-case), tolerating a caller that kept the case."""
    value = req.headers.get(name)
    if value is None:
        for key, v in req.headers.items():
            if key.lower() == name:
                return v
    return value


def require_header(req: Inbound, name: str) -> str:
    value = header(req, name)
    if value is None or not value.strip():
        raise WebhookError(401, f"missing {name} header")
    return value.strip()


def require_secrets(secrets: Sequence[str]) -> list[str]:
    """The configured secrets; none at all fails closed."""
    usable = [s for s in secrets if s]
    if not usable:
        raise WebhookError(401, "no webhook secrets configured")
    return usable


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality that never raises (compare_digest refuses non-ASCII str)."""
    a_bytes = a.encode("utf-8", "replace") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8", "replace") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def parse_timestamp(value: str, name: str) -> int:
    """A timestamp header's integer value; anything else is a 401 naming the header."""
    value = value.strip()
    if not _TIMESTAMP.fullmatch(value):
        raise WebhookError(401, f"invalid {name} header: expected an integer timestamp")
    return int(value)


def check_fresh(sent_s: float, now: float, tolerance_s: int, name: str) -> None:
    """Refuse a signing time more than `tolerance_s` from `now`, in either direction."""
    if sent_s < now - tolerance_s:
        raise WebhookError(401, f"{name} is more than {tolerance_s} s old")
    if sent_s > now + tolerance_s:
        raise WebhookError(401, f"{name} is more than {tolerance_s} s in the future")


# --- payload helpers ---------------------------------------------------------------


def load_object(body: bytes) -> dict[str, object]:
    """The body as a JSON object: 400 if it is not JSON, 422 if it is not an object."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WebhookError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise WebhookError(422, "expected a JSON object")
    return data


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def at(path: str, key: str) -> str:
    """The JSON path of `key` inside `path` ("" is the document)."""
    return f"{path}.{key}" if path else key


def opt_str(obj: Mapping[str, object], key: str, path: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WebhookError(422, f"{at(path, key)} must be a string")
    return value


def opt_object(obj: Mapping[str, object], key: str, path: str = "") -> dict[str, object] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise WebhookError(422, f"{at(path, key)} must be an object")
    return value


def str_list(obj: Mapping[str, object], key: str, path: str = "") -> tuple[str, ...]:
    """A list of strings at `key` (missing or null: empty)."""
    value = obj.get(key)
    if value is None:
        return ()
    where = at(path, key)
    if not isinstance(value, list):
        raise WebhookError(422, f"{where} must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise WebhookError(422, f"{where}[{i}] must be a string")
    return tuple(value)


def scalar(value: object) -> str | None:
    """A JSON value usable in a route template: a non-empty string or an integer."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def scalars(obj: Mapping[str, object]) -> dict[str, str]:
    """Every top-level field of `obj` that `scalar` accepts."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        text = scalar(value)
        if text is not None:
            out[key] = text
    return out
