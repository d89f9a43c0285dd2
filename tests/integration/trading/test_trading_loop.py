"""TradingLoop over loopback against the simulator: decisions → orders → fills → DB → ledger."""

import asyncio
from decimal import Decimal

import pytest

from tests.integration.trading.harness import LoopRig, strategy, wait_for
from trader.cli import main as cli_main
from trader.domain import Intent, IntentKind, OrdType, Side
from trader.engine import Observers
from trader.execution.reconcile import ReconcileMismatch


async def test_entry_then_stop_loss_books_every_fill_once_and_ledger_equals_exchange(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market)
    decisions, fills = [], []
    observers = Observers(
        on_decision=lambda tick, intent: decisions.append(intent.reason),
        on_fill=lambda fill, effect: fills.append(fill.trade_uuid),
    )
    async with LoopRig(sim, cfg, tmp_path / "t.db", observers=observers) as rig:
        p = rig.price()
        await rig.push(p, p)
        await wait_for(lambda: rig.loop.portfolio.position(cfg.market).volume > 0 and not rig.loop.inflight,
                       what="entry filled")  # fmt: skip
        await rig.push(p * 0.99, p * 0.96, p * 0.96)
        await wait_for(lambda: rig.loop.stats.decisions == 2 and not rig.loop.inflight, what="stop filled")
        krw, coin = await rig.exchange_totals()
        pf = rig.loop.portfolio
        assert (pf.krw, pf.position(cfg.market).volume) == (krw, coin)
        assert coin == 0
        stored = rig.repo.fills()
        assert sorted(f.trade_uuid for f in stored) == sorted(set(fills))
        assert [f.side for f in stored] == [Side.BID, Side.ASK]
        orders = rig.repo.orders()
        assert [(o.reason, o.state) for o in orders] == [("entry", "done"), ("stop_loss", "done")]
        assert {f.identifier for f in stored} == {o.identifier for o in orders}
    assert decisions == ["entry", "stop_loss"]
    assert rig.repo.equity_points()
    assert rig.repo.load_strategy_state(rig.loop.state_name)["entry_no"] == 1


async def test_limit_entry_that_does_not_fill_is_cancelled_and_bought_at_market(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market, limit_orders={"use_for": ["entry"], "offset_ticks": 20, "timeout_s": 0.3,
                                             "on_timeout": "market"})  # fmt: skip
    async with LoopRig(sim, cfg, tmp_path / "t.db") as rig:
        p = rig.price()
        await rig.push(p)
        await wait_for(lambda: rig.loop.stats.decisions == 1 and not rig.loop.inflight, what="entry done")
        orders = rig.repo.orders()
        assert [(o.ord_type, o.state) for o in orders] == [("limit", "cancel"), ("price", "done")]
        assert orders[0].intent_id == orders[1].intent_id and orders[0].identifier != orders[1].identifier
        krw, coin = await rig.exchange_totals()
        assert coin > 0 and rig.loop.portfolio.position(cfg.market).volume == coin
        assert rig.loop.portfolio.krw == krw


async def test_limit_timeout_counts_in_market_time_of_the_ticks_not_wall_time(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market, limit_orders={"use_for": ["entry"], "offset_ticks": 20, "timeout_s": 600,
                                             "on_timeout": "market"})  # fmt: skip
    decided: list[int] = []
    observers = Observers(on_decision=lambda tick, intent: decided.append(tick.ts_ms))
    async with LoopRig(sim, cfg, tmp_path / "t.db", observers=observers) as rig:
        p = rig.price()
        await rig.push(p)
        resting = lambda: [o.state for o in rig.repo.orders()] == ["wait"]  # noqa: E731
        await wait_for(lambda: decided and resting(), what="limit entry resting")
        ticks = rig.loop.stats.ticks
        push = rig.sim.control.push_prices
        await asyncio.to_thread(push, [p], timestamps=[decided[0] + 599_000], mode="now")
        await wait_for(lambda: rig.loop.stats.ticks > ticks, what="tick 599 s later")
        await asyncio.sleep(0.2)  # the wait re-reads the market clock on that tick: not due yet
        assert resting() and rig.loop.inflight
        await asyncio.to_thread(push, [p], timestamps=[decided[0] + 600_000], mode="now")
        # 10 minutes of market time in well under a second of wall time: cancelled, then market
        await wait_for(lambda: not rig.loop.inflight, what="timed out by market time")
        orders = rig.repo.orders()
        assert [(o.ord_type, o.state) for o in orders] == [("limit", "cancel"), ("price", "done")]
        assert rig.loop.portfolio.position(cfg.market).volume > 0


async def test_restart_resolves_an_order_sent_but_never_confirmed(make_sim, tmp_path):
    """A crash after sending: the order is in the DB as submitted, its fill is not. The next start
    looks it up by identifier, books the fill once, and the strategy learns the outcome."""
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market, entry={"dip": {"drop": 0.5, "lookback_s": 60}})  # never enters by itself
    db = tmp_path / "t.db"
    async with LoopRig(sim, cfg, db) as rig:
        await rig.push(rig.price())
        namespace = rig.loop.om.namespace
        intent = Intent(cfg.market, IntentKind.BUY, "entry", 1, "KRW-X:1:entry", krw=Decimal(50000))
        ident = intent.identifier(namespace)
        rig.repo.record_order(ident, intent.intent_id, cfg.market, "bid", "price", None, None,
                              Decimal(50000), "entry", 1)  # fmt: skip
        rig.repo.mark_order(ident, state="submitted", ts_ms=1)
        await rig.rest.create_order(
            cfg.market, Side.BID, OrdType.PRICE, identifier=ident, price=Decimal(50000)
        )
    assert rig.repo.fills() == []
    async with LoopRig(sim, cfg, db) as rig2:
        report = rig2.loop.report
        assert (
            report is not None and report.ok and report.resolved_orders == [ident] and report.new_fills == 1
        )
        assert rig2.repo.order(ident).state == "done"
        _krw, coin = await rig2.exchange_totals()
        assert rig2.loop.portfolio.position(cfg.market).volume == coin > 0
        (outcome,) = report.outcomes  # handed to strategy.on_order_result at start
        assert outcome.intent.intent_id == intent.intent_id and outcome.filled_volume == coin
    async with LoopRig(sim, cfg, db) as rig3:  # a third start finds nothing to do
        assert rig3.loop.report.resolved_orders == [] and len(rig3.repo.fills()) == 1


async def test_unexplained_difference_refuses_to_trade_until_adopted(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(sim.market, entry={"dip": {"drop": 0.5, "lookback_s": 60}})
    db = tmp_path / "t.db"
    async with LoopRig(sim, cfg, db):
        pass
    await asyncio.to_thread(sim.control.fund, "KRW", "12345")  # a deposit the ledger never saw
    rig = LoopRig(sim, cfg, db)
    with pytest.raises(ReconcileMismatch) as err:
        await rig.loop.run()
    assert "12345" in str(err.value) and "--adopt" in str(err.value)
    await rig.rest.close()
    rig.db.close()
    base = [
        "reconcile",
        "--paper",
        "--sim-url",
        sim.base_url,
        "--db",
        f"sqlite:///{db}",
        "--market",
        cfg.market,
    ]
    assert await asyncio.to_thread(cli_main, base) == 3
    assert await asyncio.to_thread(cli_main, [*base, "--adopt", "--yes"]) == 0
    assert await asyncio.to_thread(cli_main, base) == 0
    async with LoopRig(sim, cfg, db) as ok:
        assert ok.loop.report.ok and ok.loop.portfolio.krw == Decimal("1012345")
        assert [e.kind for e in ok.repo.events(kind="reconcile.adopt")] == ["reconcile.adopt"] * 2


async def test_stop_loss_fires_while_a_take_profit_limit_sell_rests_and_cancels_it(make_sim, tmp_path):
    sim = make_sim(krw=1_000_000)
    cfg = strategy(
        sim.market,
        exits={"take_profit": [{"gain": 0.01, "sell": 0.5}], "stop_loss": 0.03},
        limit_orders={"use_for": ["take_profit"], "offset_ticks": 30, "timeout_s": 600},
    )
    async with LoopRig(sim, cfg, tmp_path / "t.db") as rig:
        p = rig.price()
        await rig.push(p)
        await wait_for(lambda: rig.loop.portfolio.position(cfg.market).volume > 0 and not rig.loop.inflight,
                       what="entry")  # fmt: skip
        await rig.push(p * 1.012)  # take-profit 1 goes out as a limit sell 30 ticks above: it rests
        resting = lambda: any(o.state == "wait" and o.side == "ask" for o in rig.repo.orders())  # noqa: E731
        await wait_for(resting, what="take-profit resting")
        await rig.push(p * 0.99, p * 0.96)  # the stop fires although the take-profit is in flight
        stopped = lambda: not rig.loop.inflight and any(o.reason == "stop_loss" for o in rig.repo.orders())  # noqa: E731
        await wait_for(stopped, what="stop")
        by_reason = {o.reason: o for o in rig.repo.orders()}
        assert by_reason["take_profit_1"].state == "cancel" and by_reason["take_profit_1"].ord_type == "limit"
        assert by_reason["stop_loss"].state == "done"
        assert len(rig.repo.orders()) == 3  # entry, take-profit (cancelled, no fallback), stop
        krw, coin = await rig.exchange_totals()
        pf = rig.loop.portfolio
        assert coin == 0 and pf.krw == krw and pf.position(cfg.market).volume == 0


async def test_a_resting_take_profit_is_decided_once_however_many_ticks_pass(make_sim, tmp_path):
    """While a take-profit limit sell rests, the strategy keeps seeing the same gain; the loop
    must not start the same intent again on every tick (orphaned tasks, repeated sends)."""
    sim = make_sim(krw=1_000_000)
    cfg = strategy(
        sim.market,
        exits={"take_profit": [{"gain": 0.01, "sell": 0.5}], "stop_loss": 0.03},
        limit_orders={"use_for": ["take_profit"], "offset_ticks": 30, "timeout_s": 600},
    )
    decided: list[str] = []
    observers = Observers(on_decision=lambda tick, intent: decided.append(intent.intent_id))
    async with LoopRig(sim, cfg, tmp_path / "t.db", observers=observers) as rig:
        p = rig.price()
        await rig.push(p)
        await wait_for(lambda: rig.loop.portfolio.position(cfg.market).volume > 0 and not rig.loop.inflight,
                       what="entry")  # fmt: skip
        await rig.push(p * 1.012)
        resting = lambda: any(o.state == "wait" and o.side == "ask" for o in rig.repo.orders())  # noqa: E731
        await wait_for(resting, what="take-profit resting")
        await rig.push(p * 1.013, p * 1.0125, p * 1.014, p * 1.013)  # still in profit, still resting
        await wait_for(lambda: rig.loop.stats.ticks >= 6, what="ticks")
        take_profits = [i for i in decided if i.endswith(":take_profit_1")]
        assert len(take_profits) == 1, decided
        assert sum(o.reason == "take_profit_1" for o in rig.repo.orders()) == 1
