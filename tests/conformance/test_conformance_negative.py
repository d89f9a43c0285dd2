"""Negative cases over loopback HTTP: status codes and Upbit error names, auth, limits, faults."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from trader.sim.server import SimulatorThread

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def token(sim: SimulatorThread, query: str | None = None, *, secret: str | None = None,
          alg: str = "HS256", nonce: str | None = None, access_key: str | None = None) -> dict[str, str]:
    payload = {"access_key": access_key or sim.access_key, "nonce": nonce or str(uuid.uuid4())}
    if query is not None:
        payload["query_hash"] = hashlib.sha512(query.encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    return {"Authorization": "Bearer " + jwt.encode(payload, secret or sim.secret_key, algorithm=alg)}


def post_order(c: httpx.Client, sim: SimulatorThread, body: dict) -> httpx.Response:
    q = "&".join(f"{k}={v}" for k, v in body.items())
    return c.post("/v1/orders", json=body, headers=token(sim, q))


def error_name(r: httpx.Response) -> object:
    return r.json()["error"]["name"]


@pytest.fixture
def sim(make_sim) -> SimulatorThread:
    return make_sim(rate_limit=False)


@pytest.fixture
def c(sim: SimulatorThread):
    with httpx.Client(base_url=sim.base_url, timeout=10) as client:
        yield client


def test_auth_errors(sim: SimulatorThread, c: httpx.Client) -> None:
    r = c.get("/v1/accounts")
    assert (r.status_code, error_name(r)) == (401, "no_authorization_token")
    r = c.get("/v1/accounts", headers=token(sim, secret="wrong-secret"))
    assert (r.status_code, error_name(r)) == (401, "jwt_verification")
    r = c.get("/v1/accounts", headers={"Authorization": "Bearer not.a.jwt"})
    assert (r.status_code, error_name(r)) == (401, "jwt_verification")
    r = c.get("/v1/accounts", headers=token(sim, access_key="someone-else"))
    assert (r.status_code, error_name(r)) == (401, "invalid_access_key")
    fixed = str(uuid.uuid4())
    assert c.get("/v1/accounts", headers=token(sim, nonce=fixed)).status_code == 200
    r = c.get("/v1/accounts", headers=token(sim, nonce=fixed))
    assert (r.status_code, error_name(r)) == (401, "nonce_used")
    r = c.get("/v1/orders/chance", params={"market": sim.market}, headers=token(sim, "market=KRW-BTC"))
    assert (r.status_code, error_name(r)) == (401, "invalid_query_payload")
    r = c.get("/v1/orders/chance", params={"market": sim.market}, headers=token(sim))
    assert (r.status_code, error_name(r)) == (401, "invalid_query_payload")
    r = c.get("/v1/orders/chance", params={"market": sim.market},
              headers=token(sim, f"market={sim.market}", alg="HS512"))
    assert r.status_code == 200 and r.json()["market"]["id"] == sim.market


def test_hash_of_arrays_and_encoded_forms(sim: SimulatorThread, c: httpx.Client) -> None:
    # docs form: unencoded `states[]=done&states[]=cancel`; pyupbit form: percent-encoded values
    q = "states[]=done&states[]=cancel"
    r = c.get("/v1/orders?" + q, headers=token(sim, q))
    assert r.status_code == 200 and r.json() == []
    when = "2024-01-01T00:00:00+09:00"
    encoded = urlencode({"start_time": when})
    r = c.get("/v1/orders/closed", params={"start_time": when}, headers=token(sim, encoded))
    assert r.status_code == 200
    r = c.get("/v1/orders/closed", params={"start_time": when}, headers=token(sim, f"start_time={when}"))
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"market": "KRW-BTCs", "side": "bid", "ord_type": "price", "price": "10000"}, "notfoundmarket"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "limit", "price": "3000500", "volume": "0.01"},
         "invalid_price_bid"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "limit", "price": "3000000", "volume": "1e-05"},
         "invalid_volume_bid"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "limit", "price": "3000000",
          "volume": "0.000000001"}, "invalid_volume_bid"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "price", "price": "4999"}, "under_min_total_bid"),
        ({"market": "KRW-ETH", "side": "ask", "ord_type": "limit", "price": "3000000", "volume": "0.001"},
         "under_min_total_ask"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "price", "price": "1000000001"},
         "over_krw_funds_bid"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "price", "price": "20000000"},
         "insufficient_funds_bid"),
        ({"market": "KRW-ETH", "side": "ask", "ord_type": "market", "volume": "1"}, "insufficient_funds_ask"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "best", "price": "10000"}, "invalid_time_in_force"),
        ({"market": "KRW-ETH", "side": "bid", "ord_type": "market", "volume": "1"}, "create_bid_error"),
        ({"market": "KRW-ETH", "side": "bid"}, "validation_error"),
    ],
)
def test_order_errors(sim: SimulatorThread, c: httpx.Client, body: dict, name: str) -> None:
    r = post_order(c, sim, body)
    assert (r.status_code, error_name(r)) == (400, name)
    assert "message" in r.json()["error"]


def test_duplicated_identifier_and_not_found(sim: SimulatorThread, c: httpx.Client) -> None:
    body = {"market": sim.market, "side": "bid", "ord_type": "limit", "price": "2000000", "volume": "0.01",
            "identifier": "dup-1"}
    assert post_order(c, sim, body).status_code == 201
    r = post_order(c, sim, body)
    assert (r.status_code, error_name(r)) == (400, "duplicated_identifier")
    missing = str(uuid.uuid4())
    r = c.get("/v1/order", params={"uuid": missing}, headers=token(sim, f"uuid={missing}"))
    assert (r.status_code, error_name(r)) == (404, "order_not_found")
    r = c.delete("/v1/order", params={"uuid": missing}, headers=token(sim, f"uuid={missing}"))
    assert (r.status_code, error_name(r)) == (404, "order_not_found")


def test_strict_mode_rejects_delete_body(make_sim) -> None:
    sim = make_sim(strict=True, rate_limit=False)
    with httpx.Client(base_url=sim.base_url) as c:
        r = c.request("DELETE", "/v1/order", json={"uuid": "x"}, headers=token(sim, "uuid=x"))
        assert (r.status_code, error_name(r)) == (400, "QUERY_PARAMETER_NOT_SUPPORTED")
        r = c.delete("/v1/order", params={"uuid": "x"}, headers=token(sim, "uuid=x"))
        assert (r.status_code, error_name(r)) == (404, "order_not_found")


def test_lenient_mode_accepts_delete_body(sim: SimulatorThread, c: httpx.Client) -> None:
    body = {"market": sim.market, "side": "bid", "ord_type": "limit", "price": "2000000", "volume": "0.01"}
    u = post_order(c, sim, body).json()["uuid"]
    r = c.request("DELETE", "/v1/order", json={"uuid": u}, headers=token(sim, f"uuid={u}"))
    assert r.status_code == 200 and r.json()["state"] == "wait"


def test_rate_limit_429_then_418(make_sim) -> None:
    sim = make_sim()  # limits on, as Upbit
    with httpx.Client(base_url=sim.base_url) as c:
        statuses = []
        for _ in range(12):
            r = c.get("/v1/market/all")
            statuses.append(r.status_code)
            if r.status_code == 200:
                assert r.headers["Remaining-Req"].startswith("group=market; min=1800; sec=")
        assert statuses[:10] == [200] * 10 and 429 in statuses[10:]
        r429 = next(r for r in [c.get("/v1/market/all")] if r.status_code == 429)
        assert r429.json() == {"error": {"name": "too_many_requests", "message": "Too many API requests."}}
        codes = {c.get("/v1/market/all").status_code for _ in range(40)}
        assert 418 in codes


def test_remaining_req_counts_down(make_sim) -> None:
    sim = make_sim()
    with httpx.Client(base_url=sim.base_url) as c:
        secs = [int(c.get("/v1/accounts", headers=token(sim)).headers["Remaining-Req"].rsplit("=", 1)[1])
                for _ in range(3)]
        assert secs[0] > secs[1] > secs[2] and secs[0] <= 29


def test_injected_faults(sim: SimulatorThread, c: httpx.Client) -> None:
    sim.control.fail_next(2, 500)
    assert c.get("/v1/market/all").status_code == 500
    assert c.get("/v1/market/all").status_code == 500
    assert c.get("/v1/market/all").status_code == 200
    sim.control.fail_next(1, 429)
    r = c.get("/v1/accounts", headers=token(sim))
    assert (r.status_code, error_name(r)) == (429, "too_many_requests")
    assert sim.control.state()["pending_failures"] == 0


def test_quotation_errors_have_integer_names(sim: SimulatorThread, c: httpx.Client) -> None:
    r = c.get("/v1/ticker", params={"markets": "KRW-NOPE"})
    assert (r.status_code, error_name(r)) == (404, 404)
    r = c.get("/v1/ticker")
    assert (r.status_code, error_name(r)) == (400, 400)
    r = c.get("/v1/candles/minutes/7", params={"market": sim.market})
    assert (r.status_code, error_name(r)) == (400, 400)
    r = c.get("/v1/candles/minutes/1", params={"market": sim.market, "count": 201})
    assert (r.status_code, error_name(r)) == (400, 400)
