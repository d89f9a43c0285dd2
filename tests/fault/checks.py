"""Invariants every fault test ends with: exchange orders ↔ DB orders ↔ DB fills ↔ ledger."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from typing import Any

from trader.execution.reconcile import compare, load_meta, rebuild_ledger
from trader.upbit.client import Balance


def exchange_balances(exchange: Any) -> dict[str, Balance]:
    rows = exchange.accounts()
    return {
        r["currency"]: Balance(
            r["currency"], Decimal(r["balance"]), Decimal(r["locked"]), Decimal(r["avg_buy_price"])
        )
        for r in rows
    }


def assert_books_match(exchange: Any, repo: Any, market: str) -> dict[str, int]:
    """No order doubled, every fill recorded exactly once, ledger == exchange. Returns counts."""
    db_orders = {o.identifier: o for o in repo.orders()}
    db_fills = repo.fills()
    ex_orders = [o for o in exchange.orders(market=market) if (o.identifier or "").startswith("at-")]
    # every order on the exchange was recorded before it was sent; one order per identifier
    assert len({o.identifier for o in ex_orders}) == len(ex_orders)
    assert {o.identifier for o in ex_orders} <= set(db_orders)
    # one decision never trades twice: at most one executed order per intent for market orders
    executed: dict[str, list[str]] = defaultdict(list)
    for o in ex_orders:
        if o.executed_volume > 0 and o.ord_type != "limit":
            executed[db_orders[o.identifier].intent_id].append(o.identifier)
    doubled = {k: v for k, v in executed.items() if len(v) > 1}
    assert not doubled, f"intents executed twice: {doubled}"
    # every exchange trade recorded exactly once, nothing else recorded
    ex_trades = {t.uuid: (o.identifier, t.volume) for o in ex_orders for t in o.trades}
    assert len({f.trade_uuid for f in db_fills}) == len(db_fills)
    assert {f.trade_uuid: (f.identifier, f.volume) for f in db_fills} == ex_trades
    # the orders' final states agree with the exchange
    for o in ex_orders:
        row = db_orders[o.identifier]
        if not o.is_open:
            assert row.state in ("done", "cancel"), (o.identifier, row.state, o.state)
    # the ledger rebuilt from stored fills equals the exchange
    meta = asyncio.run(load_meta(repo)) if not _in_loop() else None
    if meta is not None:
        pf = asyncio.run(rebuild_ledger(repo, meta))
        _rows, bad = compare(exchange_balances(exchange), pf, [market], krw_tolerance=Decimal(0),
                             volume_tolerance=Decimal(0))  # fmt: skip
        assert not bad, f"ledger differs from the exchange: {bad}"
    return {"orders": len(ex_orders), "fills": len(db_fills)}


async def assert_books_match_async(exchange: Any, repo: Any, market: str) -> dict[str, int]:
    counts = await asyncio.to_thread(assert_books_match, exchange, repo, market)
    meta = await load_meta(repo)
    assert meta is not None
    pf = await rebuild_ledger(repo, meta)
    _rows, bad = compare(exchange_balances(exchange), pf, [market], krw_tolerance=Decimal(0),
                         volume_tolerance=Decimal(0))  # fmt: skip
    assert not bad, f"ledger differs from the exchange: {bad}"
    return counts


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
