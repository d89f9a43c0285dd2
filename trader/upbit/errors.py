"""Typed Upbit errors: the caller decides from the type whether to retry, wait, or stop.

- `RetryableError`: nothing happened on the exchange or it is safe to ask again (429, 418,
  5xx on reads, network failures before the request was sent).
- `AmbiguousOrderError`: an order request whose outcome is unknown (timeout or 5xx after the
  request may have reached the exchange). It must never be blindly re-sent: look the order up by
  its `identifier` first (NautilusTrader's rule: it stays in flight until resolved).
- `FinalError`: the exchange refused with a reason (400/401/403/404); retrying will not help.
Messages never contain keys or tokens: `redact()` scrubs anything that looks like one.
"""

from __future__ import annotations

import re
from typing import Any

_SECRETISH = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+|([A-Za-z0-9]{32,})")


def redact(text: str, *secrets: str) -> str:
    """Remove bearer tokens, long key-like strings and the given secrets from a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRETISH.sub(lambda m: (m.group(1) or "") + "***", text)


class UpbitError(Exception):
    """An error answered by Upbit (or the simulator): HTTP status plus Upbit's error name."""

    retryable = False

    def __init__(self, status: int, name: str, message: str = "") -> None:
        self.status = status
        self.name = str(name)
        self.message = message
        super().__init__(f"{status} {self.name}: {message}" if message else f"{status} {self.name}")


class FinalError(UpbitError):
    """The request was refused for a reason that a retry cannot change."""


class RetryableError(UpbitError):
    """Safe to retry after `retry_after` seconds (rate limits, transient server or network errors)."""

    retryable = True

    def __init__(self, status: int, name: str, message: str = "", retry_after: float = 0.0) -> None:
        super().__init__(status, name, message)
        self.retry_after = retry_after


class RateLimitError(RetryableError):
    """429 (too many requests) or 418 (blocked for a while after repeated 429s)."""


class AmbiguousOrderError(UpbitError):
    """An order request may or may not have reached the exchange; resolve it by identifier."""

    retryable = False

    def __init__(self, identifier: str, cause: str) -> None:
        super().__init__(0, "ambiguous_order", f"outcome unknown for identifier {identifier}: {cause}")
        self.identifier = identifier


class InsufficientFundsError(FinalError):
    """insufficient_funds_bid / insufficient_funds_ask."""


class OrderNotFoundError(FinalError):
    """order_not_found (404)."""


class DuplicateIdentifierError(FinalError):
    """duplicated_identifier: an order with this identifier already exists (so it was sent)."""


class AuthError(FinalError):
    """401/403: bad keys, bad signature, missing permission."""


_BY_NAME: dict[str, type[FinalError]] = {
    "insufficient_funds_bid": InsufficientFundsError,
    "insufficient_funds_ask": InsufficientFundsError,
    "order_not_found": OrderNotFoundError,
    "duplicated_identifier": DuplicateIdentifierError,
}


def from_response(status: int, name: str | int, message: str = "", retry_after: float = 0.0) -> UpbitError:
    """Map an HTTP status and Upbit error name to the right typed error."""
    name = str(name)
    if status in (418, 429):
        return RateLimitError(status, name, message, retry_after)
    if status >= 500:
        return RetryableError(status, name, message, retry_after)
    if status in (401, 403):
        return AuthError(status, name, message)
    return _BY_NAME.get(name, FinalError)(status, name, message)


def error_parts(body: Any, fallback_name: str | int) -> tuple[str | int, str]:
    """Upbit's error body `{"error": {"name", "message"}}` (or a bare text) → (name, message)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return err.get("name", fallback_name), str(err.get("message") or "")
    if isinstance(body, str):
        return fallback_name, body[:200]
    return fallback_name, ""


def from_error_body(status: int, body: Any, *secrets: str, retry_after: float = 0.0) -> UpbitError:
    """An HTTP status and Upbit's error body → the typed error, message redacted. The REST client
    and the in-process client both map errors through this (and `from_response`)."""
    name, message = error_parts(body, status)
    return from_response(status, name, redact(message, *secrets), retry_after)
