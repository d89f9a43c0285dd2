"""Wiring for trading-loop tests: a TradingLoop on a real loopback simulator, SQLite storage.

`LoopRig` builds the same objects `python -m trader run --paper` builds (REST client, public and
private WebSockets, repository, ledger) and runs the loop as a task; `wait_for` polls a condition
with a generous bound (a correctness test, never a timing assertion).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.engine import TradingLoop
from trader.portfolio import Portfolio
from trader.storage.db import Database
from trader.storage.repository import Repository
from trader.strategy.config import StrategyConfig, parse_strategy
from trader.upbit.rest import UpbitRestClient
from trader.upbit.ws import UpbitWebSocket, subscription


def strategy(market: str, **over: Any) -> StrategyConfig:
    data: dict[str, Any] = {
        "market": market,
        "order_krw": 100000,
        "entry": {"immediate": True},
        "exits": {"stop_loss": 0.03},
    }
    data.update(over)
    return parse_strategy(data)


async def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class LoopRig:
    def __init__(
        self, sim: Any, config: StrategyConfig, db_path: Path, *, rest_timeout_s: float = 5.0, **loop_kw: Any
    ) -> None:
        self.sim = sim
        self.config = config
        self.db = Database.open(f"sqlite:///{db_path}")
        self.repo = Repository(self.db)
        self.rest = UpbitRestClient(sim.access_key, sim.secret_key, sim.base_url, timeout_s=rest_timeout_s)
        self.public = UpbitWebSocket(
            sim.ws_url, subscriptions=[subscription("trade", [config.market])], rest=self.rest,
            backoff_initial_s=0.05,
        )  # fmt: skip
        self.private = UpbitWebSocket(
            sim.private_ws_url, subscriptions=[subscription("myOrder", [config.market])],
            private_auth=(sim.access_key, sim.secret_key), backoff_initial_s=0.05,
        )  # fmt: skip
        loop_kw.setdefault("om_options", {"poll_interval_s": 0.05, "ambiguous_grace_s": 0.3})
        loop_kw.setdefault("reconcile_grace_s", 0.2)
        self.loop = TradingLoop(
            config, self.rest, self.public, self.repo, Portfolio(), order_events=self.private, **loop_kw
        )
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> LoopRig:
        self.task = asyncio.create_task(self.loop.run())
        await wait_for(
            lambda: (self.public.connected and self.private.connected) or self.task.done(), what="ws"
        )
        if self.task.done():
            self.task.result()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.loop.stop()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 30)
        await self.public.close()
        await self.private.close()
        await self.rest.close()
        self.db.close()

    async def push(self, *prices: float) -> None:
        await asyncio.to_thread(self.sim.control.push_prices, list(prices), mode="now")

    def price(self) -> float:
        return float(self.sim.exchange.last_price(self.config.market))

    async def exchange_totals(self) -> tuple[Decimal, Decimal]:
        acc = await self.rest.accounts()
        cur = self.config.market.split("-")[1]
        krw = acc["KRW"].total if "KRW" in acc else Decimal(0)
        coin = acc[cur].total if cur in acc else Decimal(0)
        return krw, coin
