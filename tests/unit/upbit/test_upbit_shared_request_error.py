"""The request and error pieces every exchange client shares (REST over HTTP and in-process)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trader.domain import OrdType, Side
from trader.upbit.convert import order_params, order_ref
from trader.upbit.errors import (
    DuplicateIdentifierError,
    FinalError,
    RateLimitError,
    error_parts,
    from_error_body,
)


def test_error_parts_reads_upbit_bodies_and_bare_text() -> None:
    body = {"error": {"name": "under_min_total_bid", "message": "최소주문금액 이상으로 주문해주세요"}}
    assert error_parts(body, 400) == ("under_min_total_bid", "최소주문금액 이상으로 주문해주세요")
    assert error_parts({"error": {"message": None}}, 404) == (404, "")
    assert error_parts("x" * 300, 502) == (502, "x" * 200)
    assert error_parts(None, "fallback") == ("fallback", "")


def test_from_error_body_types_and_redacts() -> None:
    secret = "my-secret-key"
    err = from_error_body(400, {"error": {"name": "duplicated_identifier", "message": f"bad {secret}"}},
                          secret)
    assert isinstance(err, DuplicateIdentifierError) and err.message == "bad ***"
    limited = from_error_body(429, {"error": {"name": "too_many_requests"}}, retry_after=1.5)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 1.5
    assert type(from_error_body(400, {"error": {"name": "invalid_price_bid"}})) is FinalError


def test_order_params_are_upbit_fixed_point_text() -> None:
    p = order_params("KRW-ETH", Side.BID, OrdType.LIMIT, identifier="i-1", price=Decimal("3000000.00"),
                     volume=Decimal("1E-5"))
    assert p == {"market": "KRW-ETH", "side": "bid", "ord_type": "limit", "identifier": "i-1",
                 "price": "3000000.0", "volume": "0.00001"}
    assert order_params("KRW-ETH", "ask", "market", identifier="i-2", volume=Decimal(1),
                        time_in_force=None) == {"market": "KRW-ETH", "side": "ask", "ord_type": "market",
                                                "identifier": "i-2", "volume": "1.0"}
    with pytest.raises(ValueError, match="identifier is required"):
        order_params("KRW-ETH", Side.BID, OrdType.PRICE, identifier="", price=Decimal(5000))
    with pytest.raises(ValueError):
        order_params("KRW-ETH", "buy", OrdType.PRICE, identifier="i-3", price=Decimal(5000))


def test_order_ref_prefers_uuid() -> None:
    assert order_ref("u", "i") == {"uuid": "u"}
    assert order_ref(None, "i") == {"identifier": "i"}
    with pytest.raises(ValueError, match="uuid or identifier"):
        order_ref(None, None)
