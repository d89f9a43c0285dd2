"""orders.trigger_price (revision 0002): an existing database is carried forward, and both ways
of recording an order (the repository, the fast journal) store the trigger price for reports."""

from __future__ import annotations

import inspect
from decimal import Decimal as D

from sqlalchemy import text

from trader.domain import Fill, Side
from trader.storage import migrate
from trader.storage.db import Database
from trader.storage.repository import OrderJournal, Repository


def test_migration_carries_an_existing_database_forward(db_url: str) -> None:
    db = Database.open(db_url, migrate_to_head=False)
    try:
        migrate.upgrade(db.engine, "0001")  # the schema as it was before trigger prices
        with db.engine.begin() as c:
            c.execute(text(
                "INSERT INTO orders (identifier, uuid, intent_id, market, side, ord_type, price, volume,"
                " krw_amount, state, reason, executed_volume, paid_fee, avg_price, error, created_ts_ms,"
                " updated_ts_ms) VALUES ('at-old', 'u-old', 'i-old', 'KRW-BTC', 'ask', 'market', NULL,"
                " '0.5', NULL, 'done', 'stop_loss', '0.5', '12.5', '50000', NULL, 1000, 2000)"
            ))  # fmt: skip
        migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == "0002"
        repo = Repository(db)
        old = repo.order("at-old")
        assert old is not None
        assert (old.uuid, old.reason, old.state, old.volume, old.avg_price) == (
            "u-old", "stop_loss", "done", D("0.5"), D("50000"))
        assert old.trigger_price is None
        repo.record_order("at-new", "i-new", "KRW-BTC", "ask", "market", None, D("1"), None, "stop_loss",
                          3000, D("2952000"))
        assert repo.order("at-new").trigger_price == D("2952000")  # type: ignore[union-attr]
    finally:
        db.close()


def test_record_order_stores_the_trigger_price_and_fills_find_it(repo: Repository) -> None:
    repo.record_order("at-1", "i1", "KRW-BTC", "ask", "market", None, D("0.01"), None, "stop_loss", 1000,
                      trigger_price=D("2952000.5"))
    repo.record_order("at-2", "i2", "KRW-BTC", "bid", "price", None, None, D("6000"), "entry", 900)
    assert repo.order("at-1").trigger_price == D("2952000.5")  # type: ignore[union-attr]
    assert repo.order("at-2").trigger_price is None  # type: ignore[union-attr]
    for i, ident in ((1, "at-1"), (2, "at-1"), (3, "at-2")):
        repo.record_fill(Fill(f"t{i}", "o", "KRW-BTC", Side.ASK, D("3050000"), D("0.005"), D("15250"),
                              D("7.625"), 1000 + i, "stop_loss", identifier=ident))
    assert repo.fill_trigger_prices() == {"at-1": D("2952000.5")}
    assert repo.fill_trigger_prices(until_ms=1001) == {}
    assert repo.fill_trigger_prices(market="KRW-ETH") == {}
    assert repo.orders_frame()["trigger_price"].tolist()[0] == 2952000.5


def test_journal_takes_record_orders_parameters_in_the_same_order() -> None:
    ours = list(inspect.signature(OrderJournal.record).parameters)[1:]
    theirs = list(inspect.signature(Repository.record_order).parameters)[1:]
    assert ours == theirs and ours[-1] == "trigger_price"


def test_journal_stores_the_trigger_price(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Database.open(f"sqlite:///{tmp_path / 'j.db'}") as db:
        repo = Repository(db)
        journal = repo.order_journal()
        assert journal is not None
        try:
            assert journal.record("at-j", "ij", "KRW-BTC", "ask", "market", None, D("0.01"), None,
                                  "sharp_drop", 5000, D("3238000")) is True
            assert journal.record("at-k", "ik", "KRW-BTC", "bid", "price", None, None, D("6000"),
                                  "entry", 5001) is True
        finally:
            journal.close()
        assert repo.order("at-j").trigger_price == D("3238000")  # type: ignore[union-attr]
        assert repo.order("at-k").trigger_price is None  # type: ignore[union-attr]
