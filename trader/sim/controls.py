"""The /_sim/ control endpoints (outside Upbit's namespace; JSON in and out; no auth).

pause, resume, step N trades, push a price path, drop every WebSocket, fail the next N requests
with a status, add latency, ack a trade (lockstep), reset balances/orders, fund an account, query
state and clock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trader.sim.ackgate import AckError, parse_ack_body

if TYPE_CHECKING:
    from trader.sim.app import Simulator


def _ok(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict:
    raw = await request.body()
    data: dict = {}
    if raw.strip():
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            data.update(loaded)
    data.update({k: v for k, v in request.query_params.items() if k not in data})
    return data


def control_routes(sim: Simulator) -> list[Route]:
    feed = sim.feed

    async def state(request: Request) -> Response:
        return _ok(sim.state())

    async def pause(request: Request) -> Response:
        feed.pause()
        return _ok(sim.state())

    async def resume(request: Request) -> Response:
        body = await _body(request)
        if "speed" in body:
            sp = body["speed"]
            feed.speed = None if str(sp) == "max" else float(sp)
        feed.resume()
        return _ok(sim.state())

    async def step(request: Request) -> Response:
        body = await _body(request)
        n = feed.step(int(body.get("n", 1)))
        return _ok({"stepped": n, **sim.state()})

    async def path(request: Request) -> Response:
        body = await _body(request)
        prices = body.get("prices")
        if not isinstance(prices, list) or not prices:
            return _ok({"error": "prices (non-empty list) required"}, 400)
        mode = body.get("mode") or ("now" if feed.paused else "queue")
        n = feed.push_path([float(p) for p in prices], body.get("volumes"), body.get("timestamps"),
                           market=body.get("market"), apply_now=mode == "now",
                           interval_ms=int(body.get("interval_ms", 1000)))
        return _ok({"pushed": n, "mode": mode, **sim.state()})

    async def drop(request: Request) -> Response:
        n = await sim.hub.drop_all()
        return _ok({"dropped": n})

    async def fail(request: Request) -> Response:
        body = await _body(request)
        sim.faults.fail_next(int(body.get("n", 1)), int(body.get("status", 500)))
        return _ok({"pending_failures": sim.faults.pending()})

    async def latency(request: Request) -> Response:
        body = await _body(request)
        sim.faults.latency_ms = float(body.get("ms", 0))
        return _ok({"latency_ms": sim.faults.latency_ms})

    async def reset(request: Request) -> Response:
        body = await _body(request)
        krw = body.get("krw")
        sim.exchange.reset(Decimal(str(krw)) if krw is not None else None)
        sim.faults.clear()
        sim.limiter.reset()
        return _ok(sim.state())

    async def fund(request: Request) -> Response:
        body = await _body(request)
        cur = str(body.get("currency", "KRW")).upper()
        avg = body.get("avg_buy_price")
        sim.exchange.fund(cur, Decimal(str(body.get("amount", "0"))),
                          Decimal(str(avg)) if avg is not None else None)
        return _ok({"accounts": sim.exchange.accounts()})

    async def rate_limit(request: Request) -> Response:
        body = await _body(request)
        sim.limiter.enabled = bool(body.get("enabled", True))
        sim.limiter.reset()
        return _ok({"rate_limit": sim.limiter.enabled})

    async def ack(request: Request) -> Response:
        # lockstep: the client is done with the trade `seq` (its sequential_id), and the trades in
        # its quiet band (lo, hi, until_ms) may follow without an ack (trader/sim/ackgate.py)
        if not feed.lockstep:
            return _ok({"error": "the simulator is not in lockstep mode"}, 409)
        raw = await request.body()
        try:
            loaded = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            loaded = None
        if not isinstance(loaded, dict):
            return _ok({"error": "body: expected a JSON object", "field": "body"}, 400)
        body = {**{k: v for k, v in request.query_params.items()}, **loaded}
        try:
            seq, band = parse_ack_body(body)
        except AckError as err:
            return _ok({"error": str(err), "field": err.field}, 400)
        released = feed.ack(seq, band)
        return _ok({"released": released, "acks": feed.acks})

    return [
        Route("/_sim/state", state, methods=["GET"]),
        Route("/_sim/pause", pause, methods=["POST"]),
        Route("/_sim/resume", resume, methods=["POST"]),
        Route("/_sim/step", step, methods=["POST"]),
        Route("/_sim/path", path, methods=["POST"]),
        Route("/_sim/drop_websockets", drop, methods=["POST"]),
        Route("/_sim/fail", fail, methods=["POST"]),
        Route("/_sim/latency", latency, methods=["POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/fund", fund, methods=["POST"]),
        Route("/_sim/rate_limit", rate_limit, methods=["POST"]),
        Route("/_sim/ack", ack, methods=["POST"]),
    ]
