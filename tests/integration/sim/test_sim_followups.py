"""Simulator follow-ups over loopback: /v1/trades/ticks paging (cursor, days_ago, to), second/week/
month/year candles, candle.* WebSocket types, WebSocket rate limits, strict GET-with-body."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import websockets

from trader.sim import ratelimit
from trader.sim.server import SimulatorThread

START = "2024-01-27T00:00+00:00"  # a Saturday: a few days of replay cross a week and a month


def get(sim: SimulatorThread, path: str, **params: object) -> httpx.Response:
    return httpx.get(sim.base_url + path, params={"market": sim.market, **params}, timeout=10)


def ok(sim: SimulatorThread, path: str, **params: object) -> list[dict]:
    r = get(sim, path, **params)
    assert r.status_code == 200, r.text
    assert r.headers["Remaining-Req"].startswith("group=")
    return r.json()


def applied(sim: SimulatorThread) -> int:
    return int(sim.control.state()["applied"])


def page_back(sim: SimulatorThread, until_sid: int, **params: object) -> list[dict]:
    """What a reconnecting client does: newest first, cursor = last sid, until `until_sid`."""
    rows: list[dict] = []
    cursor: int | None = None
    for _ in range(100):
        page = ok(sim, "/v1/trades/ticks", count=500, **params,
                  **({"cursor": cursor} if cursor is not None else {}))
        if cursor is not None and page:
            assert page[0]["sequential_id"] < cursor  # strictly older than the cursor
        for row in page:
            if row["sequential_id"] == until_sid:
                return rows
            rows.append(row)
        if len(page) < 500:
            return rows
        cursor = page[-1]["sequential_id"]
    raise AssertionError("paging did not end")


def assert_newest_first(rows: list[dict]) -> None:
    sids = [r["sequential_id"] for r in rows]
    assert len(set(sids)) == len(sids), "duplicate sequential_id"
    assert all(a > b for a, b in itertools.pairwise(sids)), "not strictly newest first"
    ts = [r["timestamp"] for r in rows]
    assert all(a >= b for a, b in itertools.pairwise(ts))


async def recv_json(ws: websockets.ClientConnection, timeout: float = 10.0) -> object:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, bytes), "Upbit sends BINARY frames"
    return orjson.loads(raw)


# ---------------------------------------------------------------- /v1/trades/ticks


async def test_cursor_backfill_matches_the_ws_stream_without_gaps(make_sim) -> None:
    sim = make_sim(rate_limit=False, start=START)
    await asyncio.to_thread(sim.control.step, 300)
    known = (await asyncio.to_thread(ok, sim, "/v1/trades/ticks"))[0]["sequential_id"]
    before = applied(sim)
    n = 1_700  # > 3 pages, and crosses 00:00 UTC (8 trades per 15 minutes)
    sub = [{"ticket": "t"}, {"type": "trade", "codes": [sim.market], "is_only_realtime": True}]
    async with websockets.connect(sim.ws_url, max_queue=None) as plain, \
            websockets.connect(sim.ws_url, max_queue=None) as simple:
        await plain.send(orjson.dumps(sub))
        await simple.send(orjson.dumps([*sub, {"format": "SIMPLE"}]))
        await asyncio.sleep(0.3)  # let both subscriptions land before the trades
        await asyncio.to_thread(sim.control.step, n)
        ws_default = [(await recv_json(plain))["sequential_id"] for _ in range(n)]
        ws_simple = [(await recv_json(simple))["sid"] for _ in range(n)]
    assert applied(sim) - before == n
    rows = await asyncio.to_thread(page_back, sim, known)
    assert len(rows) == n
    assert_newest_first(rows)
    assert len({r["trade_date_utc"] for r in rows}) >= 2
    rest_sids = [r["sequential_id"] for r in reversed(rows)]
    assert rest_sids == ws_default == ws_simple  # the same ids in REST and both WS formats


def test_sequential_ids_stay_unique_when_trades_share_a_millisecond(make_sim) -> None:
    sim = make_sim(rate_limit=False)
    known = ok(sim, "/v1/trades/ticks")[0]["sequential_id"]
    ts = sim.control.state()["clock_ms"] + 1_000
    n = 1_234  # the id's last three digits wrap within one millisecond
    sim.control.push_prices([3_000_000.0 + 1_000 * (i % 7) for i in range(n)], [0.1] * n, [ts] * n,
                            mode="now")
    rows = page_back(sim, known)
    assert len(rows) == n
    assert_newest_first(rows)
    assert {r["timestamp"] for r in rows} == {ts}


def test_days_ago_and_to_select_a_utc_day_and_time(make_sim) -> None:
    sim = make_sim(rate_limit=False, start=START)
    sim.control.step(2_600)  # about three and a half days
    newest = ok(sim, "/v1/trades/ticks")[0]
    today = datetime.fromisoformat(newest["trade_date_utc"]).replace(tzinfo=UTC)
    yesterday = (today - timedelta(days=1)).strftime("%Y-%m-%d")
    everything = page_back(sim, -1)  # no day limit by default: every kept trade, newest first
    expected = [r for r in everything if r["trade_date_utc"] == yesterday]
    assert len(expected) > 500
    got = ok(sim, "/v1/trades/ticks", count=500, days_ago=1)
    assert got == expected[:500]
    day_candles = ok(sim, "/v1/candles/days", count=3)  # today, yesterday, the day before
    assert {r["prev_closing_price"] for r in got} == {day_candles[2]["trade_price"]}
    rest = ok(sim, "/v1/trades/ticks", count=500, days_ago=1, cursor=got[-1]["sequential_id"])
    assert got + rest == expected[:len(got) + len(rest)]
    noon = [r for r in expected if r["trade_time_utc"] < "12:00:00"]
    assert ok(sim, "/v1/trades/ticks", count=50, days_ago=1, to="120000") == noon[:50]
    assert ok(sim, "/v1/trades/ticks", count=50, days_ago=1, to="12:00:00") == noon[:50]
    one_am = int((today + timedelta(hours=1)).timestamp() * 1000)
    early = [r for r in everything if r["timestamp"] < one_am]  # `to` alone: a time of today
    assert ok(sim, "/v1/trades/ticks", count=5, to="010000") == early[:5]
    for bad in ({"days_ago": 0}, {"days_ago": 8}, {"days_ago": "x"}, {"to": "250000"}, {"to": "12:00"},
                {"cursor": "abc"}, {"count": 501}):
        r = get(sim, "/v1/trades/ticks", **bad)
        assert r.status_code == 400 and r.json()["error"]["name"] == 400, bad


def test_trades_are_kept_for_today_and_seven_days_back(make_sim) -> None:
    sim = make_sim(rate_limit=False, start=START)
    sim.control.step(768 * 10)  # ten days of replay
    today = datetime.fromisoformat(ok(sim, "/v1/trades/ticks")[0]["trade_date_utc"])
    everything = page_back(sim, -1)
    oldest = everything[-1]
    assert oldest["trade_date_utc"] == (today - timedelta(days=7)).strftime("%Y-%m-%d")
    assert oldest["trade_time_utc"] < "00:05:00"  # the whole of that day is still there
    week_ago = page_back(sim, -1, days_ago=7)  # that whole day, paged with days_ago and cursor
    assert week_ago == [r for r in everything if r["trade_date_utc"] == oldest["trade_date_utc"]]
    assert len(week_ago) > 500


@pytest.mark.parametrize("opts", [{"trades_day_scope": True}, {"strict": True}])
def test_day_scope_stops_at_midnight_and_days_ago_continues(make_sim, opts: dict) -> None:
    sim = make_sim(rate_limit=False, start=START, **opts)
    sim.control.step(700)  # the replay starts at 00:00 UTC with 768 trades a day: still day one
    known = ok(sim, "/v1/trades/ticks")[0]["sequential_id"]
    before = applied(sim)
    sim.control.step(300)  # crosses 00:00 UTC
    n = applied(sim) - before
    today_rows = page_back(sim, known)  # as Upbit documents: without days_ago, only today
    assert 0 < len(today_rows) < n
    assert {r["trade_date_utc"] for r in today_rows} == {"2024-01-28"}
    # a backfill across midnight continues below the oldest row of today with days_ago=1
    older = ok(sim, "/v1/trades/ticks", count=500, days_ago=1, cursor=today_rows[-1]["sequential_id"])
    sids = [r["sequential_id"] for r in older]
    assert known in sids and {r["trade_date_utc"] for r in older} == {"2024-01-27"}
    rows = today_rows + older[:sids.index(known)]
    assert len(rows) == n
    assert_newest_first(rows)


# ---------------------------------------------------------------- candles


def test_week_month_year_candles_aggregate_the_days(make_sim) -> None:
    sim = make_sim(rate_limit=False, start=START)
    sim.control.step(7_000)  # to 2024-02-06
    days = list(reversed(ok(sim, "/v1/candles/days", count=200)))  # oldest first

    def day_start(row: dict) -> datetime:
        return datetime.fromisoformat(row["candle_date_time_utc"]).replace(tzinfo=UTC)

    for kind, expect_n in (("weeks", 3), ("months", 2), ("years", 1)):
        candles = ok(sim, f"/v1/candles/{kind}", count=10)
        assert len(candles) == expect_n, kind
        for c in candles:
            start = day_start(c)
            assert c["first_day_of_period"] == start.strftime("%Y-%m-%d")
            assert c["candle_date_time_kst"] == (start + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S")
            assert start.hour == 0
            if kind == "weeks":
                assert start.weekday() == 0 and "unit" not in c
                end = start + timedelta(days=7)
            elif kind == "months":
                assert start.day == 1
                end = (start + timedelta(days=32)).replace(day=1)
            else:
                assert (start.month, start.day) == (1, 1)
                end = start.replace(year=start.year + 1)
            inside = [d for d in days if start <= day_start(d) < end]
            assert inside, (kind, c)
            assert c["opening_price"] == inside[0]["opening_price"]
            assert c["trade_price"] == inside[-1]["trade_price"]
            assert c["high_price"] == max(d["high_price"] for d in inside)
            assert c["low_price"] == min(d["low_price"] for d in inside)
            assert c["timestamp"] == inside[-1]["timestamp"]
            assert c["candle_acc_trade_volume"] == pytest.approx(
                sum(d["candle_acc_trade_volume"] for d in inside), rel=1e-9)
    weeks = ok(sim, "/v1/candles/weeks", count=1, to="2024-02-05T00:00:00Z")  # `to` is exclusive
    assert weeks[0]["candle_date_time_utc"] == "2024-01-29T00:00:00"
    months = ok(sim, "/v1/candles/months", count=5, to="2024-02-01T09:00:00+09:00")
    assert [m["first_day_of_period"] for m in months] == ["2024-01-01"]
    assert get(sim, "/v1/candles/weeks", count=201).status_code == 400


def test_second_candles_from_trades(make_sim) -> None:
    sim = make_sim(rate_limit=False)
    t0 = (sim.control.state()["clock_ms"] // 1000 + 2) * 1000
    sim.control.push_prices([3_100_000, 3_120_000, 3_090_000, 3_105_000, 3_200_000],
                            [1.0, 2.0, 3.0, 4.0, 5.0], [t0, t0 + 100, t0 + 300, t0 + 999, t0 + 1_500],
                            mode="now")
    newest, second = ok(sim, "/v1/candles/seconds", count=2)
    assert newest["candle_date_time_utc"] == datetime.fromtimestamp(t0 / 1000 + 1, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S")
    assert newest["trade_price"] == newest["opening_price"] == 3_200_000 and newest["timestamp"] == t0 + 1_500
    assert (second["opening_price"], second["high_price"], second["low_price"], second["trade_price"]) == (
        3_100_000, 3_120_000, 3_090_000, 3_105_000)
    assert second["candle_acc_trade_volume"] == 10.0 and second["timestamp"] == t0 + 999
    assert "unit" not in second and "first_day_of_period" not in second
    before = ok(sim, "/v1/candles/seconds", count=1,
                to=datetime.fromtimestamp(t0 / 1000 + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert before == [second]
    assert get(sim, "/v1/candles/seconds", count=201).status_code == 400


def test_second_candles_are_served_for_three_months(make_sim) -> None:
    sim = make_sim(rate_limit=False, start="2024-01-01T00:00+00:00")
    sim.control.step(768 * 100)  # 100 days of replay
    now = datetime.fromtimestamp(sim.control.state()["clock_ms"] / 1000, UTC)

    def before(days: int) -> list[dict]:
        to = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return ok(sim, "/v1/candles/seconds", count=3, to=to)

    assert len(before(80)) == 3
    assert before(95) == []  # older than three months: an empty list, as Upbit answers
    assert len(ok(sim, "/v1/candles/minutes/1", count=3, to=(now - timedelta(days=95)).isoformat())) == 3


async def test_candle_websocket_types(sim_server: SimulatorThread) -> None:
    sim = sim_server
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps([{"ticket": "c"}, {"type": "candle.1s", "codes": [sim.market]},
                                    {"type": "candle.1m", "codes": [sim.market]}]))
        snaps = {m["type"]: m for m in [await recv_json(ws), await recv_json(ws)]}
        assert set(snaps) == {"candle.1s", "candle.1m"}
        assert all(m["stream_type"] == "SNAPSHOT" and m["code"] == sim.market for m in snaps.values())
        await asyncio.to_thread(sim.control.push_prices, [3_333_000])
        live = {m["type"]: m for m in [await recv_json(ws), await recv_json(ws)]}
        assert {m["stream_type"] for m in live.values()} == {"REALTIME"}
        assert {m["trade_price"] for m in live.values()} == {3_333_000}
        rest = (await asyncio.to_thread(ok, sim, "/v1/candles/minutes/1"))[0]
        one_m = live["candle.1m"]
        for key in ("candle_date_time_utc", "candle_date_time_kst", "opening_price", "high_price",
                    "low_price", "trade_price", "candle_acc_trade_volume", "timestamp"):
            assert one_m[key] == rest[key], key
        sec = (await asyncio.to_thread(ok, sim, "/v1/candles/seconds"))[0]
        assert live["candle.1s"]["candle_date_time_utc"] == sec["candle_date_time_utc"]

        await ws.send(orjson.dumps([{"ticket": "c"}, {"type": "candle.5m", "codes": [sim.market],
                                     "is_only_realtime": True}, {"format": "SIMPLE"}]))
        await asyncio.to_thread(sim.control.push_prices, [3_334_000])
        msg = await recv_json(ws)
        assert msg["ty"] == "candle.5m" and msg["tp"] == 3_334_000 and msg["st"] == "REALTIME"
        assert {"cd", "cdttmu", "cdttmk", "op", "hp", "lp", "catv", "catp", "tms"} <= set(msg)
        await ws.send(orjson.dumps([{"ticket": "c"}, {"type": "candle.2m", "codes": [sim.market]}]))
        assert (await recv_json(ws))["error"]["name"] == "WRONG_FORMAT"


# ---------------------------------------------------------------- WebSocket rate limits


def test_ws_limits_match_upbit_table() -> None:
    assert ratelimit.GROUP_LIMITS["websocket-connect"] == (5, 1.0)
    assert ratelimit.GROUP_LIMITS["websocket-message"] == (5, 1.0)
    assert ratelimit.GROUP_LIMITS["websocket-message-min"] == (100, 60.0)


async def test_ws_connect_limit_refuses_the_handshake_with_429(make_sim, monkeypatch) -> None:
    # the real limit is 5 per second; a one-hour window keeps this test independent of speed
    monkeypatch.setitem(ratelimit.GROUP_LIMITS, "websocket-connect", (2, 3600.0))
    sim = make_sim(ws_rate_limit=True)
    async with websockets.connect(sim.ws_url), websockets.connect(sim.ws_url):
        with pytest.raises(websockets.InvalidStatus) as exc:
            async with websockets.connect(sim.ws_url):
                pass
    assert exc.value.response.status_code == 429
    assert orjson.loads(exc.value.response.body)["error"]["name"] == "too_many_requests"
    await asyncio.to_thread(sim.control.set_rate_limit, False)  # the existing switch turns it off
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(b"PING")
        assert await recv_json(ws) == {"status": "UP"}


async def test_ws_limits_are_off_unless_asked(make_sim) -> None:
    sim = make_sim()
    for _ in range(8):  # more than 5 in a second: the shared test fixtures reconnect freely
        async with websockets.connect(sim.ws_url) as ws:
            await ws.send(b"PING")
            assert await recv_json(ws) == {"status": "UP"}


@pytest.mark.parametrize("group", ["websocket-message", "websocket-message-min"])
async def test_ws_message_limit_sends_error_then_closes(make_sim, monkeypatch, group: str) -> None:
    monkeypatch.setitem(ratelimit.GROUP_LIMITS, group, (2, 3600.0))
    sim = make_sim(ws_rate_limit=True)
    sub = orjson.dumps([{"ticket": "m"}, {"type": "ticker", "codes": [sim.market]}])
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(sub)
        assert (await recv_json(ws))["stream_type"] == "SNAPSHOT"
        for _ in range(3):  # keepalive PINGs are not data requests
            await ws.send(b"PING")
            assert await recv_json(ws) == {"status": "UP"}
        await ws.send(sub)
        assert (await recv_json(ws))["stream_type"] == "SNAPSHOT"
        await ws.send(sub)
        err = await recv_json(ws)
        assert err == {"error": {"name": "TOO_MANY_REQUESTS", "message": err["error"]["message"]}}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with websockets.connect(sim.ws_url) as ws:  # the limit is per connection
        await ws.send(sub)
        assert (await recv_json(ws))["type"] == "ticker"


# ---------------------------------------------------------------- strict GET with a body


def test_strict_rejects_a_body_on_get(make_sim) -> None:
    sim = make_sim(strict=True, rate_limit=False)
    form = {"content": f"market={sim.market}",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    for path in ("/v1/accounts", "/v1/orders/chance", "/v1/ticker", "/v1/trades/ticks"):
        r = httpx.request("GET", sim.base_url + path, timeout=10, **form)
        assert r.status_code == 400, path
        assert r.json()["error"]["name"] == "QUERY_PARAMETER_NOT_SUPPORTED", path
    r = httpx.request("GET", sim.base_url + "/v1/orders/open", json={"market": sim.market}, timeout=10)
    assert r.json()["error"]["name"] == "QUERY_PARAMETER_NOT_SUPPORTED"
    assert ok(sim, "/v1/trades/ticks")  # the query string still works


def test_lenient_mode_still_takes_get_bodies(sim_server: SimulatorThread) -> None:
    r = httpx.request("GET", sim_server.base_url + "/v1/ticker", content=f"markets={sim_server.market}",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert r.status_code == 200 and r.json()[0]["market"] == sim_server.market
