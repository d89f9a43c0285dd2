"""`python -m trader sim`: run the local Upbit simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Iterator
from decimal import Decimal

from trader import cli_types as t
from trader.config import SIM_ACCESS_KEY, SIM_SECRET_KEY


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: …)` only for options that have one (their help says what None means)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 = a free port), as uvicorn would open it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim", help="run the Upbit exchange simulator (REST + WebSocket) on replayed candles",
        description="A local Upbit: same REST paths, JSON, errors, JWT auth, Remaining-Req headers and "
                    "WebSocket messages, matching orders against replayed recorded candles.",
        formatter_class=_DefaultsFormatter)
    p.add_argument("--host", type=t.host, default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=t.port, default=8765, help="0 picks a free port (printed)")
    p.add_argument("--data", default=None,
                   help="candles (or ticks) file; default data/KRW-ETH_15m_2024.parquet of the package")
    p.add_argument("--speed", type=t.speed, default=1.0, help="market-clock speed × real time, or 'max'")
    p.add_argument("--krw", type=t.krw, default=Decimal("10000000"), help="starting KRW balance")
    p.add_argument("--access-key", default=SIM_ACCESS_KEY, help="the only access key accepted")
    p.add_argument("--secret-key", default=SIM_SECRET_KEY, help="its secret (JWT HS256/HS512 key)")
    p.add_argument("--seed", type=t.seed, default=0, help="seed of the trade synthesizer, book and uuids")
    p.add_argument("--strict", action="store_true",
                   help="accept parameters only where Upbit does (e.g. no body on DELETE /v1/order)")
    p.add_argument("--market", type=t.market, default=None,
                   help="market name (default: from the data file name)")
    p.add_argument("--ticks-per-candle", type=t.ticks_per_candle, default=8,
                   help="synthesized trades per candle")
    p.add_argument("--start", type=t.kst_time, default=None,
                   help="replay from this time (ISO; KST unless an offset is given)")
    p.add_argument("--paused", action="store_true", help="start with the feed paused (see /_sim/resume)")
    p.add_argument("--lockstep", action="store_true",
                   help="apply one trade, then wait for the client's POST /_sim/ack before the next "
                        "(paper runs then fill exactly as the backtest does); market time then runs far "
                        "faster than wall time, so Upbit's per-second request limits are off")
    p.add_argument("--ack-timeout-s", type=t.positive_float(3600), default=10.0,
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
    try:  # bound here, so a port in use (or a host not on this machine) is one line, not uvicorn's log
        sock = _bind(cfg.host, cfg.port)
    except OSError as exc:
        print(f"error: --host/--port: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}",
              flush=True)
        return 2
    config = uvicorn.Config(sim.asgi(), host=cfg.host, port=cfg.port, log_level="warning", lifespan="on",
                            access_log=False, ws_ping_interval=None, ws="websockets-sansio")
    server = _Server(config)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_exit)
        task = asyncio.create_task(server.serve(sockets=[sock]))
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
