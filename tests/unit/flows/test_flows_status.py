"""The trading status board and its rate-limited artifact publisher."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tasks.status import StatusBoard, StatusPublisher, artifact_key, describe_intent
from trader.domain import Intent, IntentKind


def test_board_markdown_shows_position_pnl_and_latest_decisions_first() -> None:
    board = StatusBoard(market="KRW-ETH", mode="paper")
    board.on_tick(1_704_067_200_000, 3_100_000.0)
    board.on_ledger(
        volume=Decimal("0.5"),
        avg_buy_price=Decimal("3000000"),
        krw=Decimal("8500000"),
        realized=Decimal("1234"),
        fees=Decimal("750"),
    )
    for i in range(12):
        board.on_decision(1_704_067_200_000 + i, "buy", f"reason-{i}")
    md = board.to_markdown()
    assert "| 0.5 | 3,000,000 | 3,100,000 | 50,000 | 1,234 | 750 | 8,500,000 | 10,050,000 |" in md
    assert md.index("reason-11") < md.index("reason-10")  # newest first
    assert "reason-1 " not in md and "reason-2 " in md  # only the last 10 kept
    assert board.unrealized_pnl == Decimal("50000")
    # times are KST with their zone: 2024-01-01 00:00 UTC is 09:00 KST
    assert "2024-01-01 09:00:00 KST" in md and "UTC" not in md


def test_artifact_keys_are_valid_prefect_keys() -> None:
    assert artifact_key("KRW-ETH", "paper") == "trading-paper-krw-eth"


def test_describe_intent_shows_krw_volume_and_limit() -> None:
    buy = Intent(
        "KRW-ETH", IntentKind.BUY, "entry", 0, "i1", krw=Decimal(1_000_000), limit_price=Decimal(3_158_000)
    )
    sell = Intent("KRW-ETH", IntentKind.SELL, "stop_loss", 0, "i2", volume=Decimal("0.31665611"))
    assert describe_intent(buy) == "1,000,000 KRW @ 3,158,000"
    assert describe_intent(sell) == "0.31665611"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_publisher_writes_at_most_once_per_period_unless_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    pub = StatusPublisher("trading-paper-krw-eth", every_s=30.0, clock=clock)
    written: list[str] = []

    async def fake_write(markdown: str) -> None:
        written.append(markdown)

    monkeypatch.setattr(pub, "_write", fake_write)
    board = StatusBoard(market="KRW-ETH", mode="paper")
    assert await pub.publish(board)  # first one always
    clock.now = 10.0
    assert not await pub.publish(board)
    assert await pub.publish(board, force=True)
    clock.now = 39.0
    assert not await pub.publish(board)
    clock.now = 40.0
    assert await pub.publish(board)
    assert len(written) == pub.writes == 3
