"""The trading run's status board: a Markdown artifact refreshed on a bounded cadence.

`StatusBoard` is plain state (position, P&L, the last decisions) fed by the engine's observer
hooks; `StatusPublisher` turns it into ONE Prefect artifact per run, created once and then
updated in place at most every `every_s` seconds — never an artifact (or a log line) per tick,
so a day of trading adds one row to Prefect's database, not thousands.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

MAX_DECISIONS = 10
_KST = timezone(timedelta(hours=9), "KST")


def _fmt_dec(value: Decimal | float | None, places: int = 0) -> str:
    if value is None:
        return "–"
    return f"{Decimal(str(value)):,.{places}f}"


def _fmt_ts(ts_ms: int | None) -> str:
    if not ts_ms:
        return "–"
    # a time a user reads is KST (the report's and the demo's zone), with its zone printed
    return datetime.fromtimestamp(ts_ms / 1000, tz=_KST).strftime("%Y-%m-%d %H:%M:%S KST")


@dataclass(frozen=True, slots=True)
class DecisionRow:
    ts_ms: int
    kind: str
    reason: str
    detail: str


@dataclass
class StatusBoard:
    """What the artifact shows; every field is updated by cheap assignments from the hooks."""

    market: str
    mode: str
    ticks: int = 0
    last_price: float | None = None
    last_tick_ms: int | None = None
    volume: Decimal = Decimal(0)
    avg_buy_price: Decimal = Decimal(0)
    krw: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fills: int = 0
    orders: int = 0
    state: str = "starting"
    decisions: deque[DecisionRow] = field(default_factory=lambda: deque(maxlen=MAX_DECISIONS))

    def on_tick(self, ts_ms: int, price: float) -> None:
        self.ticks += 1
        self.last_tick_ms = ts_ms
        self.last_price = price

    def on_decision(self, ts_ms: int, kind: str, reason: str, detail: str = "") -> None:
        self.decisions.appendleft(DecisionRow(ts_ms, kind, reason, detail))

    def on_ledger(
        self, *, volume: Decimal, avg_buy_price: Decimal, krw: Decimal, realized: Decimal, fees: Decimal
    ) -> None:
        self.volume, self.avg_buy_price, self.krw = volume, avg_buy_price, krw
        self.realized_pnl, self.fees = realized, fees

    @property
    def unrealized_pnl(self) -> Decimal:
        if not self.volume or self.last_price is None:
            return Decimal(0)
        return (Decimal(str(self.last_price)) - self.avg_buy_price) * self.volume

    @property
    def equity(self) -> Decimal:
        price = Decimal(str(self.last_price)) if self.last_price is not None else self.avg_buy_price
        return self.krw + self.volume * price

    def to_markdown(self) -> str:
        lines = [
            f"## {self.market} — {self.mode} — {self.state}",
            "",
            "| position | avg buy price | last price | unrealized P&L | realized P&L | fees | KRW | equity |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {self.volume.normalize():f} | {_fmt_dec(self.avg_buy_price)} | {_fmt_dec(self.last_price)} | "
            f"{_fmt_dec(self.unrealized_pnl)} | {_fmt_dec(self.realized_pnl)} | {_fmt_dec(self.fees)} | "
            f"{_fmt_dec(self.krw)} | {_fmt_dec(self.equity)} |",
            "",
            f"ticks {self.ticks:,} · orders {self.orders} · fills {self.fills} · "
            f"last tick {_fmt_ts(self.last_tick_ms)} (market time)",
            "",
            "### Last decisions",
            "",
            "| market time | decision | reason | detail |",
            "|---|---|---|---|",
        ]
        lines += [f"| {_fmt_ts(d.ts_ms)} | {d.kind} | {d.reason} | {d.detail} |" for d in self.decisions]
        if not self.decisions:
            lines.append("| – | – | – | – |")
        return "\n".join(lines)


class StatusPublisher:
    """Publishes a board as one artifact per run, rate-limited to one write per `every_s`."""

    def __init__(self, key: str, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._artifact_id: UUID | None = None
        self.writes = 0

    def due(self) -> bool:
        return self._last is None or self._clock() - self._last >= self.every_s

    async def publish(self, board: StatusBoard, *, force: bool = False) -> bool:
        """Write the board if the cadence allows (or `force`); True when written."""
        if not force and not self.due():
            return False
        self._last = self._clock()
        markdown = board.to_markdown()
        await self._write(markdown)
        self.writes += 1
        return True

    async def _write(self, markdown: str) -> None:
        from prefect.artifacts import acreate_markdown_artifact
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        if self._artifact_id is None:
            self._artifact_id = await acreate_markdown_artifact(
                markdown=markdown, key=self.key, description="Live status of the trading run"
            )
            return
        async with get_client() as client:
            await client.update_artifact(self._artifact_id, ArtifactUpdate(data=markdown))


def artifact_key(market: str, mode: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return f"trading-{mode}-{market}".lower().replace("_", "-")


def describe_intent(intent: Any) -> str:
    """A one-cell summary of an intent (KRW for a buy, volume for a sell, limit price if any)."""
    parts = []
    if getattr(intent, "krw", None) is not None:
        parts.append(f"{_fmt_dec(intent.krw)} KRW")
    if getattr(intent, "volume", None) is not None:
        parts.append(f"{intent.volume.normalize():f}")
    if getattr(intent, "limit_price", None) is not None:
        parts.append(f"@ {_fmt_dec(intent.limit_price)}")
    return " ".join(parts)
