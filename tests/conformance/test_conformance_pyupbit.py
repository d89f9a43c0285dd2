"""pyupbit 0.2.34, unchanged, works against the simulator with only its host rewritten.

pyupbit hard-codes https://api.upbit.com and wss://api.upbit.com; the shim below replaces the
`requests` and `websockets` modules it imported with objects that rewrite that host and
delegate. WebSocketManager is a multiprocessing.Process: the fork start method keeps the patch.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
import pyupbit
import pyupbit.request_api
import pyupbit.websocket_api
import requests
import websockets

UPBIT = "https://api.upbit.com"
UPBIT_WS = "wss://api.upbit.com"


class _RequestsShim:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _url(self, url: str) -> str:
        return url.replace(UPBIT, self.base_url)

    def get(self, url: str, **kw: Any) -> requests.Response:
        return requests.get(self._url(url), **kw)

    def post(self, url: str, **kw: Any) -> requests.Response:
        return requests.post(self._url(url), **kw)

    def delete(self, url: str, **kw: Any) -> requests.Response:
        return requests.delete(self._url(url), **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)


class _WebsocketsShim:
    def __init__(self, ws_base: str) -> None:
        self.ws_base = ws_base

    def connect(self, uri: str, **kw: Any) -> Any:
        return websockets.connect(uri.replace(UPBIT_WS, self.ws_base), **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(websockets, name)


@pytest.fixture
def sim(make_sim, monkeypatch):
    s = make_sim(rate_limit=False)
    monkeypatch.setattr(pyupbit.request_api, "requests", _RequestsShim(s.base_url))
    monkeypatch.setattr(pyupbit.websocket_api, "websockets", _WebsocketsShim(s.ws_base_url))
    return s


def test_pyupbit_trading_calls(sim) -> None:
    up = pyupbit.Upbit(sim.access_key, sim.secret_key)
    balances = up.get_balances()
    assert balances[0]["currency"] == "KRW" and balances[0]["balance"] == "10000000.0"
    assert up.get_balance("KRW") == 10_000_000.0

    placed = up.buy_limit_order(sim.market, 2_000_000, 0.01)
    assert placed["state"] == "wait" and placed["locked"] == "20010.0"
    order = up.get_order(placed["uuid"])
    assert order["uuid"] == placed["uuid"] and order["trades"] == []
    waiting = up.get_order(sim.market)  # legacy list of waiting orders
    assert [o["uuid"] for o in waiting] == [placed["uuid"]]
    cancelled = up.cancel_order(placed["uuid"])
    assert cancelled["state"] == "wait"
    assert up.get_order(placed["uuid"])["state"] == "cancel"

    bought = up.buy_market_order(sim.market, 10_000)
    assert bought["ord_type"] == "price"
    filled = up.get_order(bought["uuid"])
    assert filled["state"] == "cancel" and Decimal(filled["executed_volume"]) > 0
    eth = up.get_balance(sim.market)
    assert eth == float(filled["executed_volume"])
    assert up.get_avg_buy_price("ETH") == float(sim.exchange.last_price(sim.market))

    sold = up.sell_market_order(sim.market, eth)
    assert up.get_order(sold["uuid"])["state"] == "done"
    assert up.get_balance(sim.market) == 0


def test_pyupbit_quotations(sim) -> None:
    sim.control.push_prices([3_080_000 + 1000 * i for i in range(5)], interval_ms=60_000)
    assert pyupbit.get_current_price(sim.market) == 3_084_000
    df = pyupbit.get_ohlcv(sim.market, interval="minute1", count=4)
    assert df is not None and len(df) == 4
    assert df["close"].iloc[-1] == 3_084_000
    assert list(df.index) == sorted(df.index)


@pytest.mark.skipif(sys.platform != "linux", reason="needs the fork start method")
def test_pyupbit_websocket_manager(sim) -> None:
    ctx_method = mp.get_start_method(allow_none=True)
    mp.set_start_method("fork", force=True)
    try:
        wm = pyupbit.WebSocketManager("ticker", [sim.market])
        try:
            # what wm.get() does on first use, without blocking forever on the queue
            wm.alive = True
            wm.start()
            deadline = time.monotonic() + 20
            # isOnlyRealtime: nothing arrives until a trade prints; keep printing until one is read
            got = None
            while got is None and time.monotonic() < deadline:
                sim.control.push_prices([3_090_000])
                try:
                    got = wm._WebSocketManager__q.get(timeout=0.5)
                except Exception:
                    got = None
            assert got is not None and got["type"] == "ticker" and got["code"] == sim.market
            assert got["trade_price"] == 3_090_000 and got["stream_type"] == "REALTIME"
        finally:
            wm.terminate()
            wm.join(5)
    finally:
        mp.set_start_method(ctx_method, force=True)
