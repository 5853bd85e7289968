"""CMS webhook adapters: each vendor's signature scheme, payload shape and refusals.

Signatures in these tests are computed from each vendor's documented formula,
written out here independently of the adapters, and pinned by fixed vectors: the
official Standard Webhooks and @sanity/webhook test vectors, and vectors computed
with Node's crypto by a transcription of each vendor's JavaScript (Contentful's
node-apps-toolkit signRequest, Ghost's webhook-trigger.js, ...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from warming import defaults
from warming.cms import ADAPTERS, Adapter, Change, Inbound, adapter_for, standard
from warming.errors import ConfigError, WebhookError

NOW = 1_700_000_000.123  # seconds
NOW_MS = 1_700_000_000_123
TOLERANCE = 300
SECRET = "s3cr3t-value-that-must-never-leak-0123456789abcdefABCDEF+/=_-xyz"
OTHER = "another-secret-for-rotation-0123456789abcdefABCDEF0123456789abcd"
WHSEC = "whsec_" + base64.b64encode(SECRET.encode()).decode()
WHSEC_OTHER = "whsec_" + base64.b64encode(OTHER.encode()).decode()


def req(headers: dict[str, str], body: bytes, path: str = "/webhooks/x") -> Inbound:
    return Inbound("POST", path, {k.lower(): v for k, v in headers.items()}, body)


def refused(
    adapter: Adapter,
    inbound: Inbound,
    secrets: list[str],
    *,
    now: float = NOW,
    status: int = 401,
) -> str:
    """The message of the WebhookError `verify` raises; it must reveal no secret or signature."""
    with pytest.raises(WebhookError) as info:
        adapter.verify(inbound, secrets, TOLERANCE, now)
    err = info.value
    assert err.status == status
    text = str(err)
    for secret in [*secrets, SECRET, OTHER, WHSEC, WHSEC_OTHER]:
        assert not secret or secret not in text
    for value in inbound.headers.values():
        if len(value) >= 16:  # signatures and tokens; short values like "POST" may recur
            assert value not in text
    return text


def bad_payload(adapter: Adapter, body: bytes | str, status: int = 422) -> str:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(WebhookError) as info:
        adapter.parse(req({}, raw))
    assert info.value.status == status
    return str(info.value)


# --- independent signers, one per documented scheme -------------------------------------


def contentful_headers(
    secret: str,
    body: bytes,
    ts_ms: int,
    *,
    method: str = "POST",
    path: str = "/webhooks/contentful",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Contentful's signRequest: method, path, sorted `name:value;...`, body, joined by \\n."""
    signed = {k.lower(): v for k, v in (extra or {}).items()}
    names = sorted([*signed, "x-contentful-signed-headers", "x-contentful-timestamp"])
    signed["x-contentful-signed-headers"] = ",".join(names)
    signed["x-contentful-timestamp"] = str(ts_ms)
    canonical = "\n".join(
        [method, path, ";".join(f"{k}:{signed[k]}" for k in names), body.decode()]
    )
    sig = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return {**signed, "x-contentful-signature": sig}


def sanity_header(secret: str, body: bytes, ts_ms: int) -> str:
    mac = hmac.new(secret.encode(), f"{ts_ms}.".encode() + body, hashlib.sha256).digest()
    return f"t={ts_ms},v1=" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def ghost_header(secret: str, body: bytes, ts_ms: int) -> str:
    mac = hmac.new(secret.encode(), body + str(ts_ms).encode(), hashlib.sha256).hexdigest()
    return f"sha256={mac}, t={ts_ms}"


def wordpress_header(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def storyblok_header(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


# --- one table drives the common verification tests -------------------------------------


@dataclass(frozen=True)
class Scheme:
    name: str
    secret: str  # what the CMS is configured with
    other: str  # a second secret, for rotation
    header: str  # the header that carries the proof
    # (secret, body, sent_ms) -> (headers, body as sent)
    make: Callable[[str, bytes, int], tuple[dict[str, str], bytes]]
    timestamped: bool
    body_signed: bool


BODY = b'{"urls": ["https://www.example.com/a"], "secret": "placeholder"}'


def _generic(secret: str, body: bytes, ms: int) -> tuple[dict[str, str], bytes]:
    ts = ms // 1000
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": standard.sign(secret, "msg_1", ts, body),
    }, body


def _prismic(secret: str, body: bytes, ms: int) -> tuple[dict[str, str], bytes]:
    doc = json.loads(body)
    doc["secret"] = secret
    return {}, json.dumps(doc).encode()


SCHEMES = [
    Scheme("generic", WHSEC, WHSEC_OTHER, "webhook-signature", _generic, True, True),
    Scheme(
        "contentful",
        SECRET,
        OTHER,
        "x-contentful-signature",
        lambda s, b, ms: (contentful_headers(s, b, ms), b),
        True,
        True,
    ),
    Scheme(
        "sanity",
        SECRET,
        OTHER,
        "sanity-webhook-signature",
        lambda s, b, ms: ({"sanity-webhook-signature": sanity_header(s, b, ms)}, b),
        True,
        True,
    ),
    Scheme(
        "ghost",
        SECRET,
        OTHER,
        "x-ghost-signature",
        lambda s, b, ms: ({"x-ghost-signature": ghost_header(s, b, ms)}, b),
        True,
        True,
    ),
    Scheme(
        "wordpress",
        SECRET,
        OTHER,
        "x-wp-webhook-signature",
        lambda s, b, ms: ({"x-wp-webhook-signature": wordpress_header(s, b)}, b),
        False,
        True,
    ),
    Scheme(
        "storyblok",
        SECRET,
        OTHER,
        "webhook-signature",
        lambda s, b, ms: ({"webhook-signature": storyblok_header(s, b)}, b),
        False,
        True,
    ),
    Scheme(
        "strapi",
        SECRET,
        OTHER,
        "authorization",
        lambda s, b, ms: ({"authorization": f"Bearer {s}"}, b),
        False,
        False,
    ),
    Scheme("prismic", SECRET, OTHER, "secret", _prismic, False, False),
]
IDS = [s.name for s in SCHEMES]
TIMESTAMPED = [s for s in SCHEMES if s.timestamped]
BODY_SIGNED = [s for s in SCHEMES if s.body_signed]


def signed(scheme: Scheme, secret: str | None = None, ms: int = NOW_MS) -> Inbound:
    headers, body = scheme.make(secret or scheme.secret, BODY, ms)
    return req(headers, body, path="/webhooks/contentful")


# --- replays ---------------------------------------------------------------------------

# Vendors that send no delivery id and sign no timestamp.
REPLAYED_BY_BODY = ("prismic", "storyblok", "strapi", "wordpress")
IDS_SENT = {
    "webhook-id": "msg_1",
    "x-contentful-idempotency-key": "cf_1",
    "idempotency-key": "sanity_1",
}


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_a_repeat_is_recognised_by_its_delivery_id_or_else_its_body(scheme: Scheme) -> None:
    adapter = adapter_for(scheme.name)
    inbound = signed(scheme)
    inbound = req({**inbound.headers, **IDS_SENT}, inbound.body)
    changed = req(inbound.headers, inbound.body + b" ")
    if scheme.name in REPLAYED_BY_BODY:
        assert adapter.replay_by_body and adapter.delivery_id(inbound) is None
        assert adapter.replay_key(inbound) == "body:" + hashlib.sha256(inbound.body).hexdigest()
        assert adapter.replay_key(changed) != adapter.replay_key(inbound)
        assert adapter.replay_ttl_s(TOLERANCE) == TOLERANCE
    else:
        assert adapter.replay_key(inbound) == adapter.delivery_id(inbound)
        assert adapter.replay_ttl_s(TOLERANCE) == defaults.WEBHOOK_ID_TTL_S


def test_every_adapter_is_registered_under_its_name() -> None:
    assert set(ADAPTERS) == {s.name for s in SCHEMES}
    for name, adapter in ADAPTERS.items():
        assert adapter.name == name
        assert adapter_for(name) is adapter


def test_unknown_adapter_is_404_listing_the_known_ones() -> None:
    with pytest.raises(WebhookError) as info:
        adapter_for("drupal")
    assert info.value.status == 404
    assert "contentful" in str(info.value)


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_correctly_signed_request_passes(scheme: Scheme) -> None:
    adapter_for(scheme.name).verify(signed(scheme), [scheme.secret], TOLERANCE, NOW)


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_wrong_secret_is_refused(scheme: Scheme) -> None:
    text = refused(adapter_for(scheme.name), signed(scheme, secret=scheme.other), [scheme.secret])
    assert "match" in text


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_rotation_any_configured_secret_passes(scheme: Scheme) -> None:
    adapter = adapter_for(scheme.name)
    adapter.verify(signed(scheme, secret=scheme.other), [scheme.secret, scheme.other], 300, NOW)
    adapter.verify(signed(scheme), [scheme.secret, scheme.other], TOLERANCE, NOW)


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_no_secrets_configured_fails_closed(scheme: Scheme) -> None:
    text = refused(adapter_for(scheme.name), signed(scheme), [])
    assert text == "no webhook secrets configured"
    assert refused(adapter_for(scheme.name), signed(scheme), [""]) == text


@pytest.mark.parametrize(
    "scheme", [s for s in SCHEMES if s.name != "prismic"], ids=lambda s: s.name
)
def test_missing_header_is_refused_naming_it(scheme: Scheme) -> None:
    good = signed(scheme)
    headers = {k: v for k, v in good.headers.items() if k != scheme.header}
    text = refused(adapter_for(scheme.name), req(headers, good.body), [scheme.secret])
    assert text == f"missing {scheme.header} header"


@pytest.mark.parametrize("scheme", BODY_SIGNED, ids=[s.name for s in BODY_SIGNED])
def test_tampered_body_is_refused(scheme: Scheme) -> None:
    good = signed(scheme)
    tampered = good.body.replace(b"/a", b"/b")
    assert tampered != good.body
    refused(adapter_for(scheme.name), req(dict(good.headers), tampered), [scheme.secret])


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=[s.name for s in TIMESTAMPED])
def test_stale_timestamp_is_refused(scheme: Scheme) -> None:
    old = signed(scheme, ms=NOW_MS - (TOLERANCE + 5) * 1000)
    assert "old" in refused(adapter_for(scheme.name), old, [scheme.secret])


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=[s.name for s in TIMESTAMPED])
def test_future_timestamp_is_refused(scheme: Scheme) -> None:
    ahead = signed(scheme, ms=NOW_MS + (TOLERANCE + 5) * 1000)
    assert "future" in refused(adapter_for(scheme.name), ahead, [scheme.secret])


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=[s.name for s in TIMESTAMPED])
def test_timestamp_inside_the_tolerance_passes(scheme: Scheme) -> None:
    adapter = adapter_for(scheme.name)
    adapter.verify(signed(scheme, ms=NOW_MS - (TOLERANCE - 5) * 1000), [scheme.secret], 300, NOW)
    adapter.verify(signed(scheme, ms=NOW_MS + (TOLERANCE - 5) * 1000), [scheme.secret], 300, NOW)


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_garbage_proof_is_refused_without_crashing(scheme: Scheme) -> None:
    good = signed(scheme)
    if scheme.name == "prismic":
        bad = req({}, b'{"secret": "\xc3\xa9\\u0000 nope", "documents": []}')
    else:
        bad = req({**good.headers, scheme.header: "é\u0000 v1,%%% sha256=zz, t=x"}, good.body)
    refused(adapter_for(scheme.name), bad, [scheme.secret])


# --- Standard Webhooks (generic) --------------------------------------------------------

# The published Standard Webhooks test vector (spec and reference libraries).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def vector_req(signature: str = VECTOR_SIG, body: bytes = VECTOR_BODY) -> Inbound:
    return req(
        {
            "webhook-id": VECTOR_ID,
            "webhook-timestamp": str(VECTOR_TS),
            "webhook-signature": signature,
        },
        body,
    )


def test_sign_reproduces_the_official_vector() -> None:
    assert standard.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    assert standard.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY.decode()) == VECTOR_SIG
    # The reference libraries accept the secret without its prefix too.
    assert standard.sign(
        VECTOR_SECRET.removeprefix("whsec_"), VECTOR_ID, VECTOR_TS, VECTOR_BODY
    ) == (VECTOR_SIG)


def test_official_vector_verifies_and_any_listed_signature_may_match() -> None:
    generic = adapter_for("generic")
    generic.verify(vector_req(), [VECTOR_SECRET], TOLERANCE, VECTOR_TS)
    several = f"v1a,abcd v1,bm9wZQ== v1,not-base64! {VECTOR_SIG}"
    generic.verify(vector_req(several), [VECTOR_SECRET], TOLERANCE, VECTOR_TS + 299)
    refused(generic, vector_req("v1,bm9wZQ== v1a,abcd"), [VECTOR_SECRET], now=VECTOR_TS)
    text = refused(generic, vector_req("v1a,abcd"), [VECTOR_SECRET], now=VECTOR_TS)
    assert text == "webhook-signature header has no v1 signature"


def test_official_vector_timestamp_bounds() -> None:
    generic = adapter_for("generic")
    generic.verify(vector_req(), [VECTOR_SECRET], 300, VECTOR_TS - 300)
    generic.verify(vector_req(), [VECTOR_SECRET], 300, VECTOR_TS + 300)
    assert "future" in refused(generic, vector_req(), [VECTOR_SECRET], now=VECTOR_TS - 301)
    assert "old" in refused(generic, vector_req(), [VECTOR_SECRET], now=VECTOR_TS + 301)


@pytest.mark.parametrize("stamp", ["", "abc", "1614265330.5", "-1614265330", "1" * 30])
def test_malformed_timestamp_is_refused(stamp: str) -> None:
    inbound = req(
        {"webhook-id": VECTOR_ID, "webhook-timestamp": stamp, "webhook-signature": VECTOR_SIG},
        VECTOR_BODY,
    )
    assert "webhook-timestamp" in refused(adapter_for("generic"), inbound, [VECTOR_SECRET])


def test_bad_base64_secret_never_crashes() -> None:
    generic = adapter_for("generic")
    text = refused(generic, vector_req(), ["whsec_not base64!!"], now=VECTOR_TS)
    assert "whsec_" in text
    # A plain secret for another adapter next to a valid one is skipped, not fatal.
    generic.verify(vector_req(), ["plain-secret_with-dashes", VECTOR_SECRET], 300, VECTOR_TS)
    with pytest.raises(ConfigError) as info:
        standard.decode_secret("whsec_not base64!!")
    assert info.value.key == "webhook.secrets"
    assert "not base64!!" not in str(info.value)
    with pytest.raises(ConfigError):
        standard.decode_secret("whsec_")


def test_generic_delivery_id_is_the_webhook_id() -> None:
    assert adapter_for("generic").delivery_id(vector_req()) == VECTOR_ID
    assert adapter_for("generic").delivery_id(req({}, b"{}")) is None


def test_generic_payload() -> None:
    body = {
        "urls": ["https://www.example.com/a", "https://www.example.com/b"],
        "paths": ["/blog/x"],
        "tags": ["post-1"],
        "type": "content.changed",
    }
    change = adapter_for("generic").parse(req({}, json.dumps(body).encode()))
    assert change == Change(
        urls=("https://www.example.com/a", "https://www.example.com/b"),
        paths=("/blog/x",),
        tags=("post-1",),
        event="content.changed",
    )
    only_tags = adapter_for("generic").parse(req({}, b'{"tags": ["t"], "urls": []}'))
    assert only_tags.tags == ("t",)
    assert only_tags.urls == ()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "body is not valid JSON"),
        (b"", 400, "body is not valid JSON"),
        (b"\xff\xfe\x00", 400, "body is not valid JSON"),
        (b'{"urls": [NaN]}', 400, "body is not valid JSON"),
        (b"[" * 100_000, 400, "body is not valid JSON"),
        (b'["https://www.example.com/a"]', 422, "expected a JSON object"),
        (b'"x"', 422, "expected a JSON object"),
        (b"{}", 422, "expected at least one non-empty list: urls, paths or tags"),
        (b'{"urls": [], "tags": null}', 422, "expected at least one non-empty list"),
        (b'{"urls": "https://www.example.com/a"}', 422, "urls must be a list of strings"),
        (b'{"urls": ["a", "b", 3]}', 422, "urls[2] must be a string"),
        (b'{"paths": [null]}', 422, "paths[0] must be a string"),
        (b'{"tags": [["t"]]}', 422, "tags[0] must be a string"),
        (b'{"tags": ["t"], "type": 5}', 422, "type must be a string"),
    ],
)
def test_generic_malformed_bodies(body: bytes, status: int, message: str) -> None:
    assert bad_payload(adapter_for("generic"), body, status).startswith(message)


# --- Contentful -------------------------------------------------------------------------

# Computed with Node's crypto by a transcription of node-apps-toolkit's signRequest,
# including its encodeURI path normalization (query and non-ASCII characters).
CF_BODY = (
    '{"sys":{"id":"5KsDBWseXY6QegucYAoacS","type":"Entry"},"fields":{"slug":{"en-US":"héllo"}}}'
).encode()
CF_VECTOR = {
    "x-contentful-topic": "ContentManagement.Entry.publish",
    "content-type": "application/vnd.contentful.management.v1+json",
    "x-contentful-signed-headers": (
        "content-type,x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic"
    ),
    "x-contentful-timestamp": "1700000000123",
    "x-contentful-signature": "ae38c585eab6505cd21f553150f35c62afa28e1a064b4970517cd30ed4e76f0a",
}
CF_SECRET = "a" * 64


def test_contentful_reproduces_the_toolkit_vector() -> None:
    cf = adapter_for("contentful")
    inbound = Inbound("POST", "/webhooks/contentful?x=a b&y=ü", CF_VECTOR, CF_BODY)
    cf.verify(inbound, [CF_SECRET], 30, NOW)
    moved = Inbound("POST", "/webhooks/contentful?y=ü&x=a b", CF_VECTOR, CF_BODY)
    refused(cf, moved, [CF_SECRET])


def test_contentful_checks_method_path_and_signed_headers() -> None:
    cf = adapter_for("contentful")
    extra = {"X-Contentful-Topic": "ContentManagement.Entry.publish"}
    headers = contentful_headers(SECRET, BODY, NOW_MS, extra=extra)
    ok = Inbound("POST", "/webhooks/contentful", headers, BODY)
    cf.verify(ok, [SECRET], TOLERANCE, NOW)
    # Unsigned headers may change; signed ones, the method and the path may not.
    cf.verify(Inbound("POST", ok.path, {**headers, "user-agent": "x"}, BODY), [SECRET], 300, NOW)
    topic = {**headers, "x-contentful-topic": "ContentManagement.Entry.delete"}
    refused(cf, Inbound("POST", ok.path, topic, BODY), [SECRET])
    refused(cf, Inbound("PUT", ok.path, headers, BODY), [SECRET])
    refused(cf, Inbound("POST", "/webhooks/other", headers, BODY), [SECRET])


def test_contentful_requires_the_timestamp_to_be_signed() -> None:
    headers = contentful_headers(SECRET, BODY, NOW_MS)
    headers["x-contentful-signed-headers"] = "x-contentful-signed-headers"
    text = refused(adapter_for("contentful"), req(headers, BODY, "/webhooks/contentful"), [SECRET])
    assert text == "x-contentful-timestamp is not among the signed headers"


# Shape of a ContentManagement.Entry.publish payload as Contentful documents it.
CONTENTFUL_ENTRY = {
    "metadata": {"tags": [{"sys": {"type": "Link", "linkType": "Tag", "id": "nyCampaign"}}]},
    "sys": {
        "id": "5KsDBWseXY6QegucYAoacS",
        "type": "Entry",
        "contentType": {"sys": {"type": "Link", "linkType": "ContentType", "id": "blogPost"}},
        "version": 1,
        "space": {"sys": {"type": "Link", "linkType": "Space", "id": "yadj1kx9rmg0"}},
        "environment": {"sys": {"type": "Link", "linkType": "Environment", "id": "master"}},
        "createdAt": "2015-05-18T11:29:46.809Z",
        "updatedAt": "2015-05-18T11:29:46.809Z",
    },
    "fields": {
        "title": {"en-US": "Hello, World!", "de-DE": "Hallo, Welt!"},
        "slug": {"en-US": "hello-world", "de-DE": "hallo-welt"},
        "body": {"en-US": "Bacon is healthy!"},
        "rating": {"en-US": 5},
        "hero": {"en-US": {"sys": {"type": "Link", "linkType": "Asset", "id": "x"}}},
    },
}


def test_contentful_entry_payload() -> None:
    headers = {
        "x-contentful-topic": "ContentManagement.Entry.publish",
        "x-contentful-idempotency-key": "94516f9a3fe42e3065ad9ef4f2a9f865",
    }
    inbound = req(headers, json.dumps(CONTENTFUL_ENTRY).encode())
    cf = adapter_for("contentful")
    change = cf.parse(inbound)
    assert change.content_type == "blogPost"
    assert change.event == "Entry.publish"
    assert change.fields == {
        "title": "Hello, World!",
        "slug": "hello-world",
        "body": "Bacon is healthy!",
        "rating": "5",
        "locale": "en-US",
        "id": "5KsDBWseXY6QegucYAoacS",
    }
    assert (change.urls, change.paths, change.tags) == ((), (), ())
    assert cf.delivery_id(inbound) == "94516f9a3fe42e3065ad9ef4f2a9f865"
    assert cf.delivery_id(req({"x-contentful-webhook-request-id": "r-1"}, b"")) == "r-1"
    assert cf.delivery_id(req({}, b"")) is None


def test_contentful_unlocalized_and_asset_payloads() -> None:
    flat = {"sys": {"id": "e1", "contentType": {"sys": {"id": "page"}}}, "fields": {"slug": "x"}}
    change = adapter_for("contentful").parse(req({}, json.dumps(flat).encode()))
    assert change.fields == {"slug": "x", "id": "e1"}
    asset = {"sys": {"id": "a1", "type": "Asset"}, "fields": {"title": {"en-US": "Logo"}}}
    change = adapter_for("contentful").parse(req({}, json.dumps(asset).encode()))
    assert change.content_type is None
    assert change.event is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"fields": {}}, "sys must be an object"),
        ({"sys": []}, "sys must be an object"),
        ({"sys": {"id": 5}}, "sys.id must be a string"),
        ({"sys": {"contentType": "blogPost"}}, "sys.contentType must be an object"),
        ({"sys": {"contentType": {"sys": {"id": 1}}}}, "sys.contentType.sys.id must be a string"),
        ({"sys": {}, "fields": []}, "fields must be an object"),
    ],
)
def test_contentful_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("contentful"), json.dumps(body)) == message


# --- Sanity -----------------------------------------------------------------------------


def test_sanity_reproduces_the_toolkit_vectors() -> None:
    sanity = adapter_for("sanity")
    # From @sanity/webhook's own tests (test/signature.test.ts).
    sig = "t=1633519811129,v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0"
    body = b'{"_id":"resume"}'
    sanity.verify(req({"sanity-webhook-signature": sig}, body), ["test"], 300, 1633519811.129)
    padded = sig + "="  # base64url padding is optional; the toolkit sends none
    sanity.verify(req({"sanity-webhook-signature": padded}, body), ["test"], 300, 1633519811.129)
    spaced = sig.replace(",", ", ")
    sanity.verify(req({"sanity-webhook-signature": spaced}, body), ["test"], 300, 1633519811.129)
    wrong_t = sig.replace("129,", "128,")
    refused(sanity, req({"sanity-webhook-signature": wrong_t}, body), ["test"], now=1633519811.1)
    v5 = sig.replace("v1=", "v5=")
    text = refused(sanity, req({"sanity-webhook-signature": v5}, body), ["test"], now=1633519811.1)
    assert "t=<ms>,v1=<signature>" in text
    assert sanity_header("try-me", b'{"title":"GROQ-Hooks are neat"}', 1633518820676) == (
        "t=1633518820676,v1=e7C9h2sfbFfc4V7TEz7PSOp4IoNzl0UdVsBV-1wgdeA"
    )


def test_sanity_projection_payload() -> None:
    body = {
        "_id": "post-123",
        "_type": "post",
        "_rev": "abc",
        "title": "Hello",
        "slug": {"_type": "slug", "current": "hello"},
        "locale": "en",
        "tags": ["a"],
    }
    headers = {"sanity-operation": "update", "idempotency-key": "msg-7"}
    inbound = req(headers, json.dumps(body).encode())
    sanity = adapter_for("sanity")
    change = sanity.parse(inbound)
    assert change.content_type == "post"
    assert change.event == "update"
    assert change.fields == {
        "_id": "post-123",
        "_rev": "abc",
        "title": "Hello",
        "slug": "hello",
        "locale": "en",
        "id": "post-123",
    }
    assert sanity.delivery_id(inbound) == "msg-7"
    plain = sanity.parse(req({}, b'{"_type": "page", "slug": "about"}'))
    assert (plain.content_type, plain.fields["slug"], plain.event) == ("page", "about", None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"_type": 3}, "_type must be a string"),
        ({"slug": 5}, "slug must be a string or an object with a string current"),
        ({"slug": {"current": 5}}, "slug.current must be a string"),
        ({"_id": ["x"]}, "_id must be a string"),
    ],
)
def test_sanity_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("sanity"), json.dumps(body)) == message


# --- Ghost ------------------------------------------------------------------------------

# Computed with Node's crypto as Ghost's webhook-trigger.js signs: hmac(body + ts).
GHOST_VECTOR = (
    "sha256=7f4ead17d9d42eff10b4bd19e215945e78ac69b1bebbaf9b933d695bf6a60c45, t=1700000000123"
)


def test_ghost_reproduces_the_sender_vector() -> None:
    inbound = req({"x-ghost-signature": GHOST_VECTOR}, CF_BODY)
    adapter_for("ghost").verify(inbound, ["ghost-secret"], TOLERANCE, NOW)


def test_ghost_refuses_body_only_signatures() -> None:
    legacy = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    inbound = req({"x-ghost-signature": f"sha256={legacy}, t={NOW_MS}"}, BODY)
    refused(adapter_for("ghost"), inbound, [SECRET])
    no_t = req({"x-ghost-signature": f"sha256={legacy}"}, BODY)
    assert "sha256=<hex>, t=<ms>" in refused(adapter_for("ghost"), no_t, [SECRET])


GHOST_POST = {
    "post": {
        "current": {
            "id": "5f2a2b5c8e3c6a0039b0e4a1",
            "uuid": "7d1c4b7e-1f0a-4d8e-9c5a-2b6f3e8a1d90",
            "title": "Welcome",
            "slug": "welcome",
            "status": "published",
            "url": "https://www.example.com/welcome/",
            "tags": [],
        },
        "previous": {"status": "draft", "published_at": None},
    }
}


def test_ghost_post_payload() -> None:
    change = adapter_for("ghost").parse(req({}, json.dumps(GHOST_POST).encode()))
    assert change == Change(
        urls=("https://www.example.com/welcome/",),
        content_type="post",
        fields={
            "slug": "welcome",
            "id": "5f2a2b5c8e3c6a0039b0e4a1",
            "uuid": "7d1c4b7e-1f0a-4d8e-9c5a-2b6f3e8a1d90",
        },
    )
    assert adapter_for("ghost").delivery_id(req({}, b"")) is None


def test_ghost_page_and_deleted_payloads() -> None:
    page = {"page": {"current": {"id": "p1", "slug": "about", "url": "https://x.test/about/"}}}
    change = adapter_for("ghost").parse(req({}, json.dumps(page).encode()))
    assert (change.content_type, change.fields["slug"]) == ("page", "about")
    deleted = {"post": {"current": {}, "previous": {"id": "p2", "slug": "gone", "url": "u"}}}
    change = adapter_for("ghost").parse(req({}, json.dumps(deleted).encode()))
    assert (change.fields["slug"], change.urls) == ("gone", ("u",))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"member": {"current": {}}}, "expected a post, page or tag object"),
        ({"post": []}, "post must be an object"),
        ({"post": {"current": "x"}}, "post.current must be an object"),
        ({"post": {"current": {"url": 5}}}, "post.current.url must be a string"),
    ],
)
def test_ghost_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("ghost"), json.dumps(body)) == message


# --- WordPress (WP Webhooks) ------------------------------------------------------------

# Computed with Node's crypto as the plugin signs: base64(hmac_sha256(body, secret)).
WP_VECTOR = "jZo7zNDdbB9TkNJG50qL3jnJ7skwAddE38RQ8z0YtZs="


def test_wordpress_reproduces_the_plugin_vector() -> None:
    inbound = req({"x-wp-webhook-signature": WP_VECTOR}, CF_BODY)
    adapter_for("wordpress").verify(inbound, ["wp-secret"], TOLERANCE, NOW)


# The WP Webhooks post_update trigger's payload (post_id, post, post_meta, post_permalink).
WP_POST_UPDATE = {
    "post_id": 7920,
    "post": {
        "ID": 7920,
        "post_author": "1",
        "post_date": "2020-03-14 11:31:09",
        "post_title": "Hello world",
        "post_status": "publish",
        "post_name": "hello-world",
        "guid": "https://yourdomain.test/?p=7920",
        "post_type": "post",
        "comment_count": "0",
    },
    "post_meta": {"first_custom_key": ["Some custom value"]},
    "post_thumbnail": False,
    "post_permalink": "https://yourdomain.test/2020/03/hello-world/",
    "taxonomies": {},
}


def test_wordpress_post_update_payload() -> None:
    change = adapter_for("wordpress").parse(req({}, json.dumps(WP_POST_UPDATE).encode()))
    assert change == Change(
        urls=("https://yourdomain.test/2020/03/hello-world/",),
        content_type="post",
        fields={"slug": "hello-world", "id": "7920", "post_status": "publish", "post_type": "post"},
    )
    assert adapter_for("wordpress").delivery_id(req({}, b"")) is None


def test_wordpress_bare_post_object() -> None:
    bare = {"ID": 12, "post_type": "page", "post_name": "about", "permalink": "https://x.test/a/"}
    change = adapter_for("wordpress").parse(req({}, json.dumps(bare).encode()))
    assert (change.content_type, change.fields["slug"], change.fields["id"]) == (
        "page",
        "about",
        "12",
    )
    assert change.urls == ("https://x.test/a/",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"user_id": 3}, "expected a post: a post object, or a WP_Post with ID"),
        ({"post": "x"}, "post must be an object"),
        ({"post": {"post_type": 1}}, "post.post_type must be a string"),
        ({"post": {}, "post_permalink": 1}, "post_permalink must be a string"),
    ],
)
def test_wordpress_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("wordpress"), json.dumps(body)) == message


# --- Storyblok --------------------------------------------------------------------------

# Computed with Node's crypto as Storyblok documents: hex(hmac_sha1(body, secret)).
STORYBLOK_VECTOR = "246ad68e27b41bf266993a529a1f6aa5d1dc1dc5"


def test_storyblok_reproduces_the_documented_vector() -> None:
    inbound = req({"webhook-signature": STORYBLOK_VECTOR}, CF_BODY)
    adapter_for("storyblok").verify(inbound, ["sb-secret"], TOLERANCE, NOW)
    upper = req({"webhook-signature": STORYBLOK_VECTOR.upper()}, CF_BODY)
    adapter_for("storyblok").verify(upper, ["sb-secret"], TOLERANCE, NOW)


def test_storyblok_published_payload() -> None:
    body = {
        "text": "The user test@domain.com published the Story XYZ (blog/xyz)",
        "action": "published",
        "space_id": 65703,
        "story_id": 2270165,
        "full_slug": "blog/xyz",
    }
    change = adapter_for("storyblok").parse(req({}, json.dumps(body).encode()))
    assert change == Change(
        paths=("/blog/xyz",),
        content_type="story",
        fields={"story_id": "2270165", "space_id": "65703", "full_slug": "blog/xyz", "slug": "xyz"},
        event="published",
    )


def test_storyblok_unpublished_and_odd_slugs() -> None:
    sb = adapter_for("storyblok")
    gone = sb.parse(
        req({}, b'{"text": "t", "action": "unpublished", "space_id": 1, "story_id": 2}')
    )
    assert (gone.paths, gone.event, gone.fields) == (
        (),
        "unpublished",
        {"story_id": "2", "space_id": "1"},
    )
    folder = sb.parse(req({}, b'{"action": "published", "story_id": 2, "full_slug": "blog/"}'))
    assert (folder.paths, folder.fields["slug"]) == (("/blog/",), "blog")
    odd = sb.parse(req({}, b'{"action": "published", "full_slug": "a b/x?token=1#f"}'))
    assert odd.paths == ("/a%20b/x%3Ftoken%3D1%23f",)
    assert odd.content_type is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"full_slug": "../admin"}, "full_slug has a '.' or '..' path segment"),
        ({"full_slug": "blog/./x"}, "full_slug has a '.' or '..' path segment"),
        ({"full_slug": 5}, "full_slug must be a string"),
        ({"action": ["published"]}, "action must be a string"),
    ],
)
def test_storyblok_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("storyblok"), json.dumps(body)) == message


# --- Strapi -----------------------------------------------------------------------------


def test_strapi_bearer_scheme() -> None:
    strapi = adapter_for("strapi")
    strapi.verify(req({"authorization": f"bearer {SECRET}"}, BODY), [SECRET], TOLERANCE, NOW)
    text = refused(strapi, req({"authorization": f"Basic {SECRET}"}, BODY), [SECRET])
    assert text == "authorization header must be 'Bearer <secret>'"
    refused(strapi, req({"authorization": SECRET}, BODY), [SECRET])
    refused(strapi, req({"authorization": f"Bearer {SECRET}x"}, BODY), [SECRET])


# Strapi's documented webhook payload (entry.create example) plus a slug.
STRAPI_ENTRY = {
    "event": "entry.publish",
    "createdAt": "2020-01-10T08:58:26.563Z",
    "model": "article",
    "uid": "api::article.article",
    "entry": {
        "id": 1,
        "documentId": "a1b2c3",
        "slug": "hello",
        "title": "Hello",
        "postal_code": None,
        "published": True,
        "cover": None,
        "images": [],
        "geolocation": {},
    },
}


def test_strapi_entry_payload() -> None:
    change = adapter_for("strapi").parse(req({}, json.dumps(STRAPI_ENTRY).encode()))
    assert change == Change(
        content_type="article",
        fields={"id": "1", "documentId": "a1b2c3", "slug": "hello", "title": "Hello"},
        event="entry.publish",
    )
    media = adapter_for("strapi").parse(req({}, b'{"event": "media.create", "media": {"id": 1}}'))
    assert (media.content_type, media.fields, media.event) == (None, {}, "media.create")
    assert adapter_for("strapi").delivery_id(req({}, b"")) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": 5}, "model must be a string"),
        ({"model": "a", "entry": [1]}, "entry must be an object"),
        ({"event": {"x": 1}}, "event must be a string"),
    ],
)
def test_strapi_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("strapi"), json.dumps(body)) == message


# --- Prismic ----------------------------------------------------------------------------

# The api-update body as @prismicio/client types it (WebhookBodyAPIUpdate).
PRISMIC_UPDATE = {
    "type": "api-update",
    "masterRef": "ZAbC1hEAACMAyoY2",
    "releases": {},
    "masks": {},
    "tags": {},
    "experiments": {},
    "documents": ["YLz7sBEAACMAb1Kp", "YLz7sBEAACMAb1Kq"],
    "domain": "my-repo",
    "apiUrl": "https://my-repo.prismic.io/api",
    "secret": SECRET,
}


def test_prismic_api_update_payload() -> None:
    inbound = req({}, json.dumps(PRISMIC_UPDATE).encode())
    prismic = adapter_for("prismic")
    prismic.verify(inbound, [OTHER, SECRET], TOLERANCE, NOW)
    change = prismic.parse(inbound)
    assert change == Change(tags=("YLz7sBEAACMAb1Kp", "YLz7sBEAACMAb1Kq"), event="api-update")
    assert change.content_type is None
    test_trigger = {"type": "test-trigger", "domain": "my-repo", "apiUrl": "u", "secret": SECRET}
    assert prismic.parse(req({}, json.dumps(test_trigger).encode())) == Change(event="test-trigger")


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b"{}", b'{"secret": null}', b'{"secret": 5}', b'{"secret": ""}']
)
def test_prismic_missing_secret(body: bytes) -> None:
    text = refused(adapter_for("prismic"), req({}, body), [SECRET])
    assert text == "missing secret field in the JSON body"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"documents": "YLz7"}, "documents must be a list of strings"),
        ({"documents": [1]}, "documents[0] must be a string"),
        ({"type": 1}, "type must be a string"),
    ],
)
def test_prismic_malformed_payloads(body: object, message: str) -> None:
    assert bad_payload(adapter_for("prismic"), json.dumps(body)) == message


# --- rules every adapter shares ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"\xc3\x28", 400, "body is not valid JSON"),
        (b"[]", 422, "expected a JSON object"),
        (b"null", 422, "expected a JSON object"),
    ],
)
def test_every_adapter_wants_a_json_object(
    name: str, body: bytes, status: int, message: str
) -> None:
    assert bad_payload(adapter_for(name), body, status) == message


@pytest.mark.parametrize("scheme", SCHEMES, ids=IDS)
def test_refusals_never_echo_the_secret(scheme: Scheme) -> None:
    # The wrong secret is configured; the right one travels in the request.
    inbound = signed(scheme)
    text = refused(adapter_for(scheme.name), inbound, [scheme.other])
    assert scheme.secret not in text
    assert scheme.other not in text
