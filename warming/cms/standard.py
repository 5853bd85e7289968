"""Standard Webhooks signatures (https://www.standardwebhooks.com), verify and sign.

Followed: the specification's "Verifying webhook authenticity" section and its
reference Python library (standard-webhooks/standard-webhooks,
libraries/python/standardwebhooks/webhooks.py):

- headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`,
  a space-separated list of `<version>,<base64>`; any `v1` entry that matches passes
  (several entries let a sender rotate keys);
- signed content `"{webhook-id}.{webhook-timestamp}.{body}"`, HMAC-SHA256;
- key: the secret after its `whsec_` prefix, base64-decoded;
- the timestamp must lie within the tolerance in both directions.

Unlike the reference library, a secret that is not valid base64 is skipped rather
than raising: `webhook.secrets`, the fallback of every adapter without secrets of
its own, may hold plain secrets for other CMSs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from warming.cms.base import check_fresh, parse_timestamp, require_secrets
from warming.errors import ConfigError, WebhookError

PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret; ConfigError (never showing it) if it has none."""
    text = secret.strip().removeprefix(PREFIX)
    try:
        # Secrets are often shown without base64 padding; the reference library adds it back.
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("webhook.secrets", "not whsec_ followed by base64") from None
    if not key:
        raise ConfigError("webhook.secrets", "a Standard Webhooks secret may not be empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` entry (`v1,<base64>`) a sender computes; for tests and tools."""
    mac = hmac.new(decode_secret(secret), _content(msg_id, str(timestamp), body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def verify_headers(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    tolerance_s: int,
    now: float,
) -> None:
    """Verify a request's Standard Webhooks headers (names lower-case); WebhookError(401)."""
    verify(
        secrets,
        msg_id=headers.get(ID_HEADER, ""),
        timestamp=headers.get(TIMESTAMP_HEADER, ""),
        signatures=headers.get(SIGNATURE_HEADER, ""),
        body=body,
        tolerance_s=tolerance_s,
        now=now,
    )


def verify(
    secrets: Sequence[str],
    *,
    msg_id: str,
    timestamp: str,
    signatures: str,
    body: bytes,
    tolerance_s: int,
    now: float,
) -> None:
    """Raise WebhookError(401) unless one `v1` signature matches one secret, in time."""
    configured = require_secrets(secrets)
    for name, value in (
        (ID_HEADER, msg_id),
        (TIMESTAMP_HEADER, timestamp),
        (SIGNATURE_HEADER, signatures),
    ):
        if not value.strip():
            raise WebhookError(401, f"missing {name} header")
    sent = parse_timestamp(timestamp, TIMESTAMP_HEADER)
    check_fresh(sent, now, tolerance_s, TIMESTAMP_HEADER)
    keys = _keys(configured)
    if not keys:
        raise WebhookError(
            401, "no webhook secret is a Standard Webhooks secret (whsec_ followed by base64)"
        )
    offered = _offered(signatures)
    if not offered:
        raise WebhookError(401, "webhook-signature header has no v1 signature")
    content = _content(msg_id, timestamp.strip(), body)
    for key in keys:
        expected = hmac.new(key, content, hashlib.sha256).digest()
        # Every comparison runs, so timing says nothing about which entry came close.
        if any([hmac.compare_digest(expected, sig) for sig in offered]):
            return
    raise WebhookError(401, "webhook-signature does not match any configured secret")


def _content(msg_id: str, timestamp: str, body: bytes | str) -> bytes:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return f"{msg_id}.{timestamp}.".encode() + raw


def _keys(secrets: Sequence[str]) -> list[bytes]:
    keys = []
    for secret in secrets:
        try:
            keys.append(decode_secret(secret))
        except ConfigError:
            continue  # a plain secret meant for another adapter
    return keys


def _offered(header_value: str) -> list[bytes]:
    """The decoded `v1` signatures of a `webhook-signature` header; others are ignored."""
    out = []
    for entry in header_value.split():
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue  # e.g. v1a (asymmetric) entries, which we do not verify
        try:
            out.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return out
