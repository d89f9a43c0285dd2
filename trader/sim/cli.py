"""`python -m trader sim`: run the local Upbit simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from decimal import Decimal

from trader.config import SIM_ACCESS_KEY, SIM_SECRET_KEY


def _speed(text: str) -> float | None:
    if text.lower() == "max":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0 or 'max'")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim", help="run the Upbit exchange simulator (REST + WebSocket) on replayed candles",
        description="A local Upbit: same REST paths, JSON, errors, JWT auth, Remaining-Req headers and "
                    "WebSocket messages, matching orders against replayed recorded candles.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed)")
    p.add_argument("--data", default=None,
                   help="candles (or ticks) file; default data/KRW-ETH_15m_2024.parquet of the package")
    p.add_argument("--speed", type=_speed, default=1.0, help="market-clock speed × real time, or 'max'")
    p.add_argument("--krw", type=Decimal, default=Decimal("10000000"), help="starting KRW balance")
    p.add_argument("--access-key", default=SIM_ACCESS_KEY, help="the only access key accepted")
    p.add_argument("--secret-key", default=SIM_SECRET_KEY, help="its secret (JWT HS256/HS512 key)")
    p.add_argument("--seed", type=int, default=0, help="seed of the trade synthesizer, book and uuids")
    p.add_argument("--strict", action="store_true",
                   help="accept parameters only where Upbit does (e.g. no body on DELETE /v1/order)")
    p.add_argument("--market", default=None, help="market name (default: from the data file name)")
    p.add_argument("--ticks-per-candle", type=int, default=8, help="synthesized trades per candle")
    p.add_argument("--start", default=None, help="replay from this time (ISO; KST unless an offset is given)")
    p.add_argument("--paused", action="store_true", help="start with the feed paused (see /_sim/resume)")
    p.add_argument("--lockstep", action="store_true",
                   help="apply one trade, then wait for the client's POST /_sim/ack before the next "
                        "(paper runs then fill exactly as the backtest does); market time then runs far "
                        "faster than wall time, so Upbit's per-second request limits are off")
    p.add_argument("--ack-timeout-s", type=float, default=10.0,
                   help="lockstep: release the feed when no ack came within this time")
    p.add_argument("--no-rate-limit", action="store_true",
                   help="disable Upbit's request limits, REST and WebSocket (load tests)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal
    from pathlib import Path

    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn re-raises a caught SIGTERM after shutting down (exit status -15); we handle
        SIGINT/SIGTERM ourselves so a requested stop exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def request_exit(self) -> None:
            self.should_exit = True

    from trader.marketdata.candles import MarketDataError
    from trader.sim.app import DEFAULT_DATA, SimConfig, Simulator

    # lockstep compresses days of market time into seconds: a wall-clock request limit would pace
    # the replay (a month of limit orders waited 25 s for it) and means nothing there
    no_limit = (args.no_rate_limit or args.lockstep
                or os.environ.get("TRADER_SIM_NO_RATE_LIMIT", "") in ("1", "true"))
    cfg = SimConfig(host=args.host, port=args.port, data=Path(args.data) if args.data else DEFAULT_DATA,
                    speed=args.speed, krw=args.krw, access_key=args.access_key, secret_key=args.secret_key,
                    seed=args.seed, strict=args.strict, market=args.market,
                    ticks_per_candle=args.ticks_per_candle, start=args.start, paused=args.paused,
                    rate_limit=not no_limit, ws_rate_limit=not no_limit, lockstep=args.lockstep,
                    ack_timeout_s=args.ack_timeout_s)
    try:
        sim = Simulator(cfg)
    except (MarketDataError, ValueError) as exc:
        print(f"error: {exc}", flush=True)
        return 2
    config = uvicorn.Config(sim.asgi(), host=cfg.host, port=cfg.port, log_level="warning", lifespan="on",
                            access_log=False, ws_ping_interval=None, ws="websockets-sansio")
    server = _Server(config)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_exit)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        host = cfg.host
        print(f"Upbit simulator listening on http://{host}:{port}", flush=True)
        total = len(sim.feed.trades) if sim.feed.trades is not None else 0
        speed = "max" if cfg.speed is None else f"{cfg.speed:g}x"
        if cfg.lockstep:
            speed += " (lockstep)"
        print(f"market {sim.market}, {total} replay trades, speed {speed}, "
              f"ws ws://{host}:{port}/websocket/v1, controls http://{host}:{port}/_sim/state", flush=True)
        await task

    asyncio.run(serve())
    return 0
