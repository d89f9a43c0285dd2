"""Server-side verification of Upbit's JWT authentication (HS256/HS512, nonce, query_hash).

The hash input differs between clients: the docs and the official SDK hash the *unquoted*
`k=v&…` string (arrays as `k[]=v`), pyupbit hashes the percent-encoded `urlencode` output with
only `[]` left raw. Rather than guess which client is calling, the server computes the few
plausible renderings of the parameters it received and accepts the request when one matches.
The hash is SHA512, as Upbit's (`query_hash_alg` absent or "SHA512"); anything else is a 401.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus, urlencode

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from trader.sim.matching import SimError

# Upbit's real secrets are short too (and the simulator's dev keys are fixed): the key-length
# advice PyJWT gives does not apply to verifying what clients sign
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

_MSG_JWT = "Failed to verify Jwt token."
_MSG_PAYLOAD = "Jwt payload의 query_hash가 올바르지 않습니다."


def _err(name: str, message: str) -> SimError:
    return SimError(401, name, message)


def _json_pairs(body: object) -> list[tuple[str, str]]:
    """The SDK's stringify of a JSON body: None dropped, bools lower-case, lists as `k[]=v`."""
    pairs: list[tuple[str, str]] = []
    if not isinstance(body, dict):
        return pairs

    def prim(v: object) -> str:
        if v is True:
            return "true"
        if v is False:
            return "false"
        return "" if v is None else str(v)

    for k, v in body.items():
        if isinstance(v, list | tuple):
            key = k if k.endswith("[]") else k + "[]"
            pairs.extend((key, prim(x)) for x in v if prim(x))
        elif prim(v):
            pairs.append((k, prim(v)))
    return pairs


def hash_candidates(raw_query: str, raw_body: bytes, json_body: object | None) -> set[str]:
    """Every string a legitimate client may have hashed for these parameters."""
    texts: set[str] = set()
    parts: list[str] = []
    if raw_query:
        parts.append(raw_query)
    body_text = ""
    if json_body is None and raw_body:
        body_text = raw_body.decode("utf-8", "replace")
        parts.append(body_text)
    for text in [*parts, "&".join(parts)] if len(parts) > 1 else parts:
        texts.update({text, unquote(text), unquote_plus(text), text.replace("%5B%5D=", "[]=")})
    if json_body is not None:
        pairs = _json_pairs(json_body)
        joined = "&".join(f"{k}={v}" for k, v in pairs)
        texts.add(joined)
        encoded = urlencode(pairs)
        texts.update({encoded, encoded.replace("%5B%5D=", "[]="), unquote(encoded)})
        # pyupbit: urlencode(dict, doseq=True) with list keys kept as given
        if isinstance(json_body, dict):
            plain = urlencode({k: v for k, v in json_body.items() if v is not None}, doseq=True)
            texts.update({plain, plain.replace("%5B%5D=", "[]="), unquote(plain)})
            quoted = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in pairs)
            texts.add(quoted)
    return texts


class Authenticator:
    """Verifies `Authorization: Bearer <JWT>` for one access/secret key pair."""

    def __init__(self, access_key: str, secret_key: str, *, max_nonces: int = 200_000) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self._nonces: set[str] = set()
        self._max_nonces = max_nonces

    def reset(self) -> None:
        self._nonces.clear()

    def decode(self, authorization: str | None) -> dict:
        """Check the token's signature, key and nonce; returns the payload."""
        if not authorization:
            raise _err("no_authorization_token", "Authorization 토큰이 없습니다.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _err("jwt_verification", _MSG_JWT)
        try:
            payload = jwt.decode(token.strip(), self.secret_key, algorithms=["HS256", "HS512"],
                                 options={"verify_exp": False, "verify_aud": False, "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise _err("jwt_verification", _MSG_JWT) from exc
        if not isinstance(payload, dict):
            raise _err("invalid_query_payload", _MSG_PAYLOAD)
        if payload.get("access_key") != self.access_key:
            raise _err("invalid_access_key", "잘못된 엑세스 키입니다.")
        nonce = payload.get("nonce")
        if not nonce or not isinstance(nonce, str):
            raise _err("invalid_query_payload", _MSG_PAYLOAD)
        if nonce in self._nonces:
            raise _err("nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")
        if len(self._nonces) >= self._max_nonces:
            self._nonces.clear()
        self._nonces.add(nonce)
        return payload

    def verify(self, authorization: str | None, *, has_params: bool, raw_query: str = "",
               raw_body: bytes = b"", json_body: object | None = None) -> dict:
        """Full check of a REST request (token + query_hash over the parameters received)."""
        payload = self.decode(authorization)
        qh = payload.get("query_hash")
        if not has_params:
            if qh and qh != hashlib.sha512(b"").hexdigest():
                raise _err("invalid_query_payload", _MSG_PAYLOAD)
            return payload
        if not qh:
            raise _err("invalid_query_payload", _MSG_PAYLOAD)
        # Upbit hashes with SHA512 only (the default when the field is absent); any other name —
        # including other hashlib attributes such as `new` or `md5` — is a bad payload, never a call
        alg = payload.get("query_hash_alg", "SHA512")
        if not isinstance(alg, str) or alg.upper() != "SHA512" or not isinstance(qh, str):
            raise _err("invalid_query_payload", _MSG_PAYLOAD)
        if not any(_matches(c, qh) for c in hash_candidates(raw_query, raw_body, json_body)):
            raise _err("invalid_query_payload", _MSG_PAYLOAD)
        return payload


def _matches(text: str, expected: str) -> bool:
    return hashlib.sha512(text.encode()).hexdigest() == expected


def make_token(access_key: str, secret_key: str, params: Iterable[tuple[str, str]] | None = None,
               *, algorithm: str = "HS256") -> str:
    """A client-side token as the docs build it (used by tests and the control client)."""
    import uuid

    payload: dict[str, str] = {"access_key": access_key, "nonce": str(uuid.uuid4())}
    pairs = list(params or ())
    if pairs:
        payload["query_hash"] = hashlib.sha512("&".join(f"{k}={v}" for k, v in pairs).encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    return jwt.encode(payload, secret_key, algorithm=algorithm)
