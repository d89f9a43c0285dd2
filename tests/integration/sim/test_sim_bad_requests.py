"""The simulator's answers to bad input over loopback HTTP (issue 15, item 9): a JWT whose
`query_hash_alg` is not Upbit's SHA512 is a 401 `invalid_query_payload` (it was a 500 for names
like `new`, and other hashlib algorithms were accepted), a malformed JSON body is a 400 (was a 401
from the failed signature), a body over 1 MiB is a 413 before it is parsed (a 20 MB body was read).

Name chosen for a malformed body: Upbit documents none, so the simulator answers its generic 400
`invalid_parameter` (Exchange API) or the integer-named 400 (Quotation API).
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from trader.sim.params import MAX_BODY

QUERY = "market=KRW-ETH"


@pytest.fixture
def sim(make_sim: Any) -> Any:
    return make_sim(rate_limit=False)


def _token(sim: Any, alg: Any, *, digest: str | None = None, query_hash: Any = None) -> str:
    payload: dict[str, Any] = {"access_key": sim.access_key, "nonce": str(uuid.uuid4())}
    name = alg if isinstance(alg, str) else "sha512"
    hasher = getattr(hashlib, digest or name.lower().replace("-", ""), hashlib.sha512)
    payload["query_hash"] = query_hash if query_hash is not None else hasher(QUERY.encode()).hexdigest()
    if alg is not ...:
        payload["query_hash_alg"] = alg
    return jwt.encode(payload, sim.secret_key, algorithm="HS256")


@pytest.mark.parametrize(("alg", "digest", "query_hash", "status"), [
    (..., None, None, 200),  # absent: SHA512, Upbit's default
    ("SHA512", None, None, 200),
    ("sha512", None, None, 200),
    ("new", "sha512", None, 401),  # hashlib.new(bytes) raised TypeError: a 500
    ("md5", None, None, 401),  # a real hashlib algorithm Upbit does not accept
    ("sha256", None, None, 401),
    ("SHA384", None, None, 401),
    ("sha3_512", None, None, 401),
    ("blake2b", None, None, 401),
    ("file_digest", "sha512", None, 401),
    ("__init__", "sha512", None, 401),
    ("", "sha512", None, 401),
    (5, None, None, 401),
    (None, None, None, 401),
    (["SHA512"], None, None, 401),
    ("SHA512", None, {"x": 1}, 401),  # a query_hash that is not a string
    ("SHA512", None, 12345, 401),
])
def test_query_hash_alg_other_than_sha512_is_a_401_invalid_query_payload(
    sim: Any, alg: Any, digest: str | None, query_hash: Any, status: int
) -> None:
    token = _token(sim, alg, digest=digest, query_hash=query_hash)
    r = httpx.get(f"{sim.base_url}/v1/orders/chance?{QUERY}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == status, r.text
    if status == 401:
        assert r.json()["error"]["name"] == "invalid_query_payload"
    else:
        assert r.json()["market"]["id"] == "KRW-ETH"


JSON_CT = {"Content-Type": "application/json; charset=utf-8"}
BAD_JSON = "요청 본문의 JSON 형식이 올바르지 않습니다."


@pytest.mark.parametrize(("method", "path", "body", "headers"), [
    ("POST", "/v1/orders", b'{"market": "KRW-ETH", "side": "bid"', JSON_CT),  # cut short
    ("POST", "/v1/orders", b"{market: KRW-ETH}", {}),  # looks like JSON, is not
    ("POST", "/v1/orders", b"not json at all", JSON_CT),  # says JSON, is not
    ("POST", "/v1/orders", b'{"market": "KRW-ETH",}', JSON_CT),  # trailing comma
    ("POST", "/v1/orders", b'{"market": "\xff\xfe"}', JSON_CT),  # not UTF-8
    ("DELETE", "/v1/order", b'{"uuid": ', JSON_CT),
    ("GET", "/v1/orders/chance", b"[1, 2", {}),
])
def test_a_malformed_json_body_is_a_400_naming_the_body(
    sim: Any, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    token = _token(sim, "SHA512")
    r = httpx.request(method, sim.base_url + path, content=body,
                      headers={**headers, "Authorization": f"Bearer {token}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {"name": "invalid_parameter", "message": BAD_JSON}


def test_a_malformed_json_body_on_a_quotation_endpoint_is_a_400_with_an_integer_name(sim: Any) -> None:
    r = httpx.request("GET", f"{sim.base_url}/v1/ticker?markets=KRW-ETH", content=b"{oops", headers=JSON_CT)
    assert r.status_code == 400 and r.json()["error"]["name"] == 400


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


@pytest.mark.parametrize(("path", "size", "chunked", "status"), [
    ("/v1/orders", MAX_BODY + 1, False, 413),
    ("/v1/orders", MAX_BODY + 1, True, 413),  # no Content-Length: counted while it streams
    ("/v1/orders", MAX_BODY, False, 401),  # at the limit it is read (and then refused as unsigned)
    ("/v1/ticker?markets=KRW-ETH", MAX_BODY + 1, False, 413),
])
def test_a_body_over_1_mib_is_a_413(sim: Any, path: str, size: int, chunked: bool, status: int) -> None:
    method = "GET" if path.startswith("/v1/ticker") else "POST"
    content: Any = _chunks(size) if chunked else b" " * (size - 2) + b"{}"
    r = httpx.request(method, sim.base_url + path, content=content, headers=JSON_CT, timeout=30)
    assert r.status_code == status, r.text[:300]
    if status == 413:
        name = r.json()["error"]["name"]
        assert name == (413 if method == "GET" else "payload_too_large")


def test_a_20_mb_body_is_refused_from_its_content_length_without_being_read(sim: Any) -> None:
    size = 20 * 1024 * 1024
    with socket.create_connection((sim.host, sim.port), timeout=10) as s:
        s.sendall(
            f"POST /v1/orders HTTP/1.1\r\nHost: {sim.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode() + b"{" + b" " * 1000
        )
        # only 1 kB of the 20 MB was sent: the answer comes from the header alone
        raw = b""
        while b"payload_too_large" not in raw:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        answer = raw.decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert '"payload_too_large"' in answer
