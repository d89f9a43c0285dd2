"""Client-side Upbit JWT: `Authorization: Bearer <token>` with a fresh nonce and the query hash.

REST calls are signed by the official SDK (`upbit.lib.jwt_auth`); this module signs what the SDK
does not reach — the private WebSocket handshake — and lets tests build tokens the same way.
The hash input is the *unencoded* query string (`unquote(urlencode(...))`, arrays as `k[]=v`),
which is what the docs specify and what the SDK sends. Keys are held in `Credentials`, whose
repr never shows them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import jwt


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access/secret key pair that never prints (repr and str show only a masked access key)."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(access_key={mask(self.access_key)}, secret_key=***)"

    __str__ = __repr__


def mask(key: str) -> str:
    """`abcd…` — enough to tell two keys apart in a log, never enough to use one."""
    return f"{key[:4]}…" if key else "<unset>"


def query_string(params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    """Upbit's hash input: `k=v&…` unencoded, list values as repeated `k[]=v`, in given order."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, list | tuple):
            name = key if key.endswith("[]") else f"{key}[]"
            pairs.extend((name, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return unquote(urlencode(pairs))


def make_token(
    access_key: str,
    secret_key: str,
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    *,
    algorithm: str = "HS256",
) -> str:
    """A signed JWT: `{access_key, nonce}` plus `query_hash`/`query_hash_alg` when params are given."""
    payload: dict[str, str] = {"access_key": access_key, "nonce": str(uuid.uuid4())}
    if params:
        payload["query_hash"] = hashlib.sha512(query_string(params).encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    return jwt.encode(payload, secret_key, algorithm=algorithm)


def auth_headers(
    creds: Credentials, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
) -> dict[str, str]:
    """`{"Authorization": "Bearer …"}` for one request (a new nonce every call)."""
    return {"Authorization": f"Bearer {make_token(creds.access_key, creds.secret_key, params)}"}
