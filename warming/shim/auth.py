"""The shim's read routes: an optional bearer token, and JSON or a page for a browser."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr


def authorized(request: Request, token: SecretStr | None) -> bool:
    """True when no token is configured, or the request carries it as a bearer token."""
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Constant time: a byte-by-byte comparison would tell an attacker how much was right.
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "a bearer token is required (Authorization: Bearer ...)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def wants_html(request: Request) -> bool:
    """A browser asks for text/html first; JSON clients send application/json or */*."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]
