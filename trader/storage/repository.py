"""The repository: every read and write the trading system makes, one short transaction each.

Synchronous and thread-safe (one Engine, a Session per call), so the asyncio live loop calls it
through `asyncio.to_thread`. Writes commit before returning: "a fill is committed to the
database before the ledger acts on it". Results are plain frozen dataclasses or domain types,
never ORM objects, so they are safe to hand to other threads.

DataFrames (`*_frame`) are for reports and charts: times are int64 ms, money columns are
float64. Exact sums must come from the Decimal APIs (`fills`, `fills_with_pnl`, `positions`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trader.domain import Fill, Side
from trader.portfolio import Portfolio, Position
from trader.storage.db import Database
from trader.storage.models import (
    BalanceSnapshotModel,
    Base,
    EquityPointModel,
    EventLogModel,
    FillModel,
    OrderModel,
    PositionModel,
    StrategyStateModel,
)
from trader.upbit.rules import FEE_RATE

if TYPE_CHECKING:  # pandas is imported only when a frame is asked for (the live loop never does)
    import pandas as pd

ZERO = Decimal(0)
LEVELS = ("debug", "info", "warning", "error", "critical")


class LocalOrderState(StrEnum):
    """An order's local lifecycle: recorded (before sending) → submitted → wait/done/cancel,
    or rejected (the exchange refused it) or ambiguous (sent, outcome unknown: must be resolved
    with the exchange, never blindly re-sent)."""

    RECORDED = "recorded"
    SUBMITTED = "submitted"
    WAIT = "wait"
    DONE = "done"
    CANCEL = "cancel"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"


UNRESOLVED_STATES = (
    LocalOrderState.RECORDED,
    LocalOrderState.SUBMITTED,
    LocalOrderState.WAIT,
    LocalOrderState.AMBIGUOUS,
)
FINAL_STATES = (LocalOrderState.DONE, LocalOrderState.CANCEL, LocalOrderState.REJECTED)


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A row of `orders`."""

    id: int
    identifier: str
    uuid: str | None
    intent_id: str
    market: str
    side: str
    ord_type: str
    price: Decimal | None
    volume: Decimal | None
    krw_amount: Decimal | None
    state: str
    reason: str
    executed_volume: Decimal
    paid_fee: Decimal
    avg_price: Decimal | None
    error: str | None
    created_ts_ms: int
    updated_ts_ms: int
    trigger_price: Decimal | None = None  # the deciding trade's price (NULL before revision 0002)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """A row of `balance_snapshots`."""

    ts_ms: int
    currency: str
    balance: Decimal
    locked: Decimal
    avg_buy_price: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class EquityRow:
    """A row of `equity_points`."""

    ts_ms: int
    market: str
    price: Decimal
    krw: Decimal
    coin_volume: Decimal
    equity: Decimal


@dataclass(frozen=True, slots=True)
class EventRow:
    """A row of `event_log` (`data` decoded)."""

    id: int
    ts_ms: int
    level: str
    kind: str
    message: str
    data: dict[str, Any] | None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, StrEnum):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(data: Any) -> str:
    return json.dumps(data, default=_json_default, sort_keys=True, ensure_ascii=False)


def _row(cls: type, obj: Any) -> Any:
    return cls(**{f.name: getattr(obj, f.name) for f in fields(cls)})


def _to_fill(m: Any) -> Fill:
    return Fill(
        trade_uuid=m.trade_uuid,
        order_uuid=m.order_uuid,
        market=m.market,
        side=Side(m.side),
        price=m.price,
        volume=m.volume,
        funds=m.funds,
        fee=m.fee,
        ts_ms=m.ts_ms,
        reason=m.reason,
        identifier=m.identifier,
    )


def _between(stmt: Select[Any], col: Any, since_ms: int | None, until_ms: int | None) -> Select[Any]:
    """[since_ms, until_ms): inclusive start, exclusive end."""
    if since_ms is not None:
        stmt = stmt.where(col >= since_ms)
    if until_ms is not None:
        stmt = stmt.where(col < until_ms)
    return stmt


def _insert_ignore(session: Session, model: type[Base], values: dict[str, Any], keys: Sequence[str]) -> bool:
    """INSERT unless a row with the same unique `keys` exists; True if inserted. Never raises
    on a duplicate, also when two threads/processes race (ON CONFLICT DO NOTHING)."""
    name = session.get_bind().dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(keys))
        return bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
    try:  # other databases: a savepoint absorbs the duplicate
        with session.begin_nested():
            session.add(model(**values))
        return True
    except IntegrityError:
        return False


def _upsert(session: Session, model: type[Base], values: dict[str, Any], keys: Sequence[str]) -> None:
    name = session.get_bind().dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(model).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={k: v for k, v in values.items() if k not in keys}
        )
        session.execute(stmt)
    else:
        session.merge(model(**values))


class Repository:
    """Reads and writes of the trading database (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- orders --------------------------------------------------------------------------
    def record_order(
        self,
        identifier: str,
        intent_id: str,
        market: str,
        side: str,
        ord_type: str,
        price: Decimal | None,
        volume: Decimal | None,
        krw_amount: Decimal | None,
        reason: str,
        ts_ms: int,
        trigger_price: Decimal | None = None,
    ) -> bool:
        """Record an order BEFORE sending it, in state `recorded`. Idempotent on `identifier`:
        True if recorded now, False if it already was (the stored row is left untouched).
        `trigger_price` is the price of the trade that decided it (reports show the slippage)."""
        values = {
            "identifier": identifier,
            "uuid": None,
            "intent_id": intent_id,
            "market": market,
            "side": str(side),
            "ord_type": str(ord_type),
            "price": price,
            "volume": volume,
            "krw_amount": krw_amount,
            "state": LocalOrderState.RECORDED.value,
            "reason": reason or "",
            "executed_volume": ZERO,
            "paid_fee": ZERO,
            "avg_price": None,
            "error": None,
            "created_ts_ms": ts_ms,
            "updated_ts_ms": ts_ms,
            "trigger_price": trigger_price,
        }
        with self.db.write() as s:
            return _insert_ignore(s, OrderModel, values, ["identifier"])

    def order_journal(self, synchronous: str = "NORMAL") -> OrderJournal | None:
        """A dedicated connection that records orders from the event loop's thread (see
        `OrderJournal`), or None when the database is not a SQLite file (PostgreSQL, memory)."""
        url = self.db.engine.url
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
            return None
        return OrderJournal(database, synchronous=synchronous)

    def mark_order(
        self,
        identifier: str,
        *,
        state: str,
        uuid: str | None = None,
        executed_volume: Decimal | None = None,
        paid_fee: Decimal | None = None,
        avg_price: Decimal | None = None,
        error: str | None = None,
        ts_ms: int,
    ) -> bool:
        """Move an order to `state`, updating the fields given (None = keep).

        A final order (done/cancel/rejected) never goes back to an open state: such a stale
        update is refused and False returned (its fields are not touched either). Between final
        states it may move (a market buy reported `done` and then `cancel` with dust).
        Raises KeyError for an unknown identifier, ValueError for an unknown state.
        """
        new_state = LocalOrderState(state)
        with self.db.write() as s:
            row = s.execute(
                select(OrderModel).where(OrderModel.identifier == identifier).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise KeyError(f"unknown order identifier {identifier!r}")
            if row.state in FINAL_STATES and new_state not in FINAL_STATES:
                return False
            row.state = new_state.value
            if uuid is not None:
                row.uuid = uuid
            if executed_volume is not None:
                row.executed_volume = executed_volume
            if paid_fee is not None:
                row.paid_fee = paid_fee
            if avg_price is not None:
                row.avg_price = avg_price
            if error is not None:
                row.error = error
            row.updated_ts_ms = ts_ms
            return True

    def order(self, identifier: str) -> OrderRow | None:
        with self.db.read() as s:
            m = s.execute(select(OrderModel).where(OrderModel.identifier == identifier)).scalar_one_or_none()
            return _row(OrderRow, m) if m else None

    def order_by_uuid(self, uuid: str) -> OrderRow | None:
        with self.db.read() as s:
            m = s.execute(select(OrderModel).where(OrderModel.uuid == uuid)).scalar_one_or_none()
            return _row(OrderRow, m) if m else None

    def unresolved_orders(self, market: str | None = None) -> list[OrderRow]:
        """Orders recorded/submitted/wait/ambiguous, oldest first: what start-up reconciles."""
        stmt = select(OrderModel).where(OrderModel.state.in_([s.value for s in UNRESOLVED_STATES]))
        if market is not None:
            stmt = stmt.where(OrderModel.market == market)
        with self.db.read() as s:
            return [_row(OrderRow, m) for m in s.execute(stmt.order_by(OrderModel.id)).scalars()]

    def orders(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        market: str | None = None,
        states: Iterable[str] | None = None,
    ) -> list[OrderRow]:
        """Orders created in [since_ms, until_ms), oldest first."""
        stmt = _between(select(OrderModel), OrderModel.created_ts_ms, since_ms, until_ms)
        if market is not None:
            stmt = stmt.where(OrderModel.market == market)
        if states is not None:
            stmt = stmt.where(OrderModel.state.in_([str(x) for x in states]))
        with self.db.read() as s:
            return [_row(OrderRow, m) for m in s.execute(stmt.order_by(OrderModel.id)).scalars()]

    # --- fills ---------------------------------------------------------------------------
    def record_fill(self, fill: Fill, realized_pnl: Decimal | None = None) -> bool:
        """Store a fill (committed on return). False if its trade_uuid is already stored; never
        raises on a duplicate, including two threads recording the same fill at once."""
        values = {
            "trade_uuid": fill.trade_uuid,
            "order_uuid": fill.order_uuid,
            "identifier": fill.identifier,
            "market": fill.market,
            "side": str(fill.side),
            "price": fill.price,
            "volume": fill.volume,
            "funds": fill.funds,
            "fee": fill.fee,
            "ts_ms": fill.ts_ms,
            "reason": fill.reason or "",
            "realized_pnl": realized_pnl,
        }
        with self.db.write() as s:
            return _insert_ignore(s, FillModel, values, ["trade_uuid"])

    def set_fill_pnl(self, trade_uuid: str, realized_pnl: Decimal | None) -> None:
        """Attach the realized P&L the ledger computed for a (sell) fill."""
        with self.db.write() as s:
            res = s.execute(
                update(FillModel).where(FillModel.trade_uuid == trade_uuid).values(realized_pnl=realized_pnl)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise KeyError(f"unknown fill {trade_uuid!r}")

    def fill_trigger_prices(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> dict[str, Decimal]:
        """identifier → trigger price of the orders behind the fills with ts in [since_ms, until_ms)
        (fills joined to orders by identifier; orders without a trigger price are left out)."""
        fills, orders = FillModel.__table__, OrderModel.__table__
        stmt = (
            select(orders.c.identifier, orders.c.trigger_price)
            .join(fills, fills.c.identifier == orders.c.identifier)
            .where(orders.c.trigger_price.is_not(None))
            .distinct()
        )
        stmt = _between(stmt, fills.c.ts_ms, since_ms, until_ms)
        if market is not None:
            stmt = stmt.where(fills.c.market == market)
        with self.db.read() as s:
            return {ident: price for ident, price in s.execute(stmt)}

    def has_fill(self, trade_uuid: str) -> bool:
        with self.db.read() as s:
            found = s.execute(select(FillModel.id).where(FillModel.trade_uuid == trade_uuid)).first()
            return found is not None

    def _fill_models(
        self, s: Session, since_ms: int | None, until_ms: int | None, market: str | None
    ) -> list[Any]:
        """Rows of `fills` (Core rows, not ORM objects: several times faster to load)."""
        table = FillModel.__table__
        stmt = _between(select(table), table.c.ts_ms, since_ms, until_ms)
        if market is not None:
            stmt = stmt.where(table.c.market == market)
        return list(s.execute(stmt.order_by(table.c.id)))

    def fills(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> list[Fill]:
        """Fills with ts in [since_ms, until_ms), in the order they were recorded (= applied)."""
        with self.db.read() as s:
            return [_to_fill(m) for m in self._fill_models(s, since_ms, until_ms, market)]

    def fills_with_pnl(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> list[tuple[Fill, Decimal | None]]:
        """Like `fills`, each with its stored realized P&L (sells; None for buys)."""
        with self.db.read() as s:
            return [(_to_fill(m), m.realized_pnl) for m in self._fill_models(s, since_ms, until_ms, market)]

    def fill_records(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> list[dict[str, Any]]:
        """Fills as dicts with the FILL_COLUMNS keys (Decimals kept), for frames and snapshots."""
        return [
            {
                "ts_ms": f.ts_ms, "trade_uuid": f.trade_uuid, "order_uuid": f.order_uuid,
                "identifier": f.identifier, "market": f.market, "side": str(f.side), "price": f.price,
                "volume": f.volume, "funds": f.funds, "fee": f.fee, "realized_pnl": pnl, "reason": f.reason,
            }
            for f, pnl in self.fills_with_pnl(since_ms, until_ms, market)
        ]

    # --- positions, balances, equity -----------------------------------------------------
    def save_position(self, position: Position, ts_ms: int) -> None:
        with self.db.write() as s:
            _upsert(s, PositionModel, self._position_values(position, ts_ms), ["market"])

    def save_positions(self, positions: Iterable[Position], ts_ms: int) -> None:
        """Several positions in one transaction (e.g. every market of a Portfolio)."""
        with self.db.write() as s:
            for p in positions:
                _upsert(s, PositionModel, self._position_values(p, ts_ms), ["market"])

    @staticmethod
    def _position_values(p: Position, ts_ms: int) -> dict[str, Any]:
        return {
            "market": p.market,
            "volume": p.volume,
            "avg_buy_price": p.avg_buy_price,
            "cost_fees_open": p.cost_fees_open,
            "realized_pnl": p.realized_pnl,
            "fees_paid": p.fees_paid,
            "updated_ts_ms": ts_ms,
        }

    def positions(self) -> list[Position]:
        with self.db.read() as s:
            rows = s.execute(select(PositionModel).order_by(PositionModel.market)).scalars()
            return [
                Position(m.market, m.volume, m.avg_buy_price, m.cost_fees_open, m.realized_pnl, m.fees_paid)
                for m in rows
            ]

    def add_balance_snapshot(self, ts_ms: int, rows: Iterable[Any], source: str) -> int:
        """Store balances (`trader.upbit.client.Balance` objects or mappings with currency,
        balance, locked, avg_buy_price). `source` is `exchange` or `ledger`. Returns the count."""
        if source not in ("exchange", "ledger"):
            raise ValueError("source must be 'exchange' or 'ledger'")
        models = []
        for r in rows:
            get = r.get if isinstance(r, Mapping) else lambda k, _r=r: getattr(_r, k)
            models.append(
                BalanceSnapshotModel(
                    ts_ms=ts_ms,
                    currency=str(get("currency")),
                    balance=Decimal(str(get("balance"))),
                    locked=Decimal(str(get("locked") or 0)),
                    avg_buy_price=Decimal(str(get("avg_buy_price") or 0)),
                    source=source,
                )
            )
        with self.db.write() as s:
            s.add_all(models)
        return len(models)

    def balance_snapshots(
        self, since_ms: int | None = None, until_ms: int | None = None, source: str | None = None
    ) -> list[BalanceRow]:
        stmt = _between(select(BalanceSnapshotModel), BalanceSnapshotModel.ts_ms, since_ms, until_ms)
        if source is not None:
            stmt = stmt.where(BalanceSnapshotModel.source == source)
        with self.db.read() as s:
            return [_row(BalanceRow, m) for m in s.execute(stmt.order_by(BalanceSnapshotModel.id)).scalars()]

    def add_equity_point(
        self, ts_ms: int, market: str, price: Decimal, krw: Decimal, coin_volume: Decimal, equity: Decimal
    ) -> None:
        with self.db.write() as s:
            s.add(EquityPointModel(ts_ms=ts_ms, market=market, price=price, krw=krw,
                                   coin_volume=coin_volume, equity=equity))

    def equity_points(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> list[EquityRow]:
        stmt = _between(select(EquityPointModel), EquityPointModel.ts_ms, since_ms, until_ms)
        if market is not None:
            stmt = stmt.where(EquityPointModel.market == market)
        with self.db.read() as s:
            rows = s.execute(stmt.order_by(EquityPointModel.ts_ms, EquityPointModel.id)).scalars()
            return [_row(EquityRow, m) for m in rows]

    # --- strategy state, events ----------------------------------------------------------
    def save_strategy_state(self, name: str, state: Mapping[str, Any], ts_ms: int) -> None:
        """Store a strategy's state as JSON (Decimals are stored as strings)."""
        with self.db.write() as s:
            _upsert(s, StrategyStateModel, {"name": name, "state": _dumps(dict(state)),
                                            "updated_ts_ms": ts_ms}, ["name"])

    def load_strategy_state(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as s:
            text = s.execute(select(StrategyStateModel.state).where(StrategyStateModel.name == name)).scalar()
            return None if text is None else json.loads(text)

    def log_event(
        self, ts_ms: int, kind: str, message: str, data: Mapping[str, Any] | None = None, level: str = "info"
    ) -> None:
        """Append to the audit trail. Callers must not put secrets in `data`."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}")
        with self.db.write() as s:
            s.add(EventLogModel(ts_ms=ts_ms, level=level, kind=kind, message=message,
                                data=None if data is None else _dumps(dict(data))))

    def events(
        self, since_ms: int | None = None, until_ms: int | None = None, kind: str | None = None
    ) -> list[EventRow]:
        stmt = _between(select(EventLogModel), EventLogModel.ts_ms, since_ms, until_ms)
        if kind is not None:
            stmt = stmt.where(EventLogModel.kind == kind)
        with self.db.read() as s:
            return [
                EventRow(m.id, m.ts_ms, m.level, m.kind, m.message,
                         None if m.data is None else json.loads(m.data))
                for m in s.execute(stmt.order_by(EventLogModel.id)).scalars()
            ]

    # --- DataFrames (floats, for reports and charts) -------------------------------------
    def fills_frame(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> pd.DataFrame:
        """Columns: ts_ms, trade_uuid, order_uuid, identifier, market, side, price, volume,
        funds, fee, realized_pnl (NaN for buys), reason. Money as float64."""
        records = self.fill_records(since_ms, until_ms, market)
        return _frame(records, FILL_COLUMNS, FILL_MONEY)

    def orders_frame(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> pd.DataFrame:
        """One row per order created in the window; columns as the `orders` table."""
        records = [{c: getattr(o, c) for c in ORDER_COLUMNS} for o in self.orders(since_ms, until_ms, market)]
        return _frame(records, ORDER_COLUMNS, ORDER_MONEY)

    def equity_frame(
        self, since_ms: int | None = None, until_ms: int | None = None, market: str | None = None
    ) -> pd.DataFrame:
        """Columns: ts_ms, market, price, krw, coin_volume, equity (ordered by ts_ms)."""
        points = self.equity_points(since_ms, until_ms, market)
        records = [{c: getattr(e, c) for c in EQUITY_COLUMNS} for e in points]
        return _frame(records, EQUITY_COLUMNS, EQUITY_MONEY)

    def events_frame(
        self, since_ms: int | None = None, until_ms: int | None = None, kind: str | None = None
    ) -> pd.DataFrame:
        """Columns: id, ts_ms, level, kind, message, data (JSON text)."""
        records = [
            {"id": e.id, "ts_ms": e.ts_ms, "level": e.level, "kind": e.kind, "message": e.message,
             "data": None if e.data is None else _dumps(e.data)}
            for e in self.events(since_ms, until_ms, kind)
        ]
        return _frame(records, EVENT_COLUMNS, ())

    # --- the run's fingerprint (trader/fingerprint.py) -----------------------------------
    def fingerprint_fills(self, market: str | None = None, after_id: int = 0) -> list[FingerprintRow]:
        """Fills with id > `after_id` in fill order (market time, then the order they were
        recorded in), each with its order's intent id (joined on the identifier): what
        `trader.fingerprint.fingerprint` reads, exactly as the backtest's fill records."""
        f, o = FillModel.__table__.c, OrderModel.__table__.c
        stmt = (
            select(f.id, f.ts_ms, f.side, f.price, f.volume, f.fee, f.reason, o.intent_id)
            .select_from(FillModel.__table__.outerjoin(OrderModel.__table__, o.identifier == f.identifier))
            .where(f.id > after_id)
        )
        if market is not None:
            stmt = stmt.where(f.market == market)
        with self.db.read() as s:
            rows = s.execute(stmt.order_by(f.ts_ms, f.id)).all()
        return [FingerprintRow(r.id, r.ts_ms, r.side, r.price, r.volume, r.fee, r.reason or "",
                               r.intent_id or "") for r in rows]


@dataclass(frozen=True, slots=True)
class FingerprintRow:
    """One fill as the fingerprint counts it (`Repository.fingerprint_fills`)."""

    id: int
    ts_ms: int
    side: str
    price: Decimal
    volume: Decimal
    fee: Decimal
    reason: str
    intent_id: str


FILL_COLUMNS = ("ts_ms", "trade_uuid", "order_uuid", "identifier", "market", "side", "price", "volume",
                "funds", "fee", "realized_pnl", "reason")
FILL_MONEY = ("price", "volume", "funds", "fee", "realized_pnl")
ORDER_COLUMNS = tuple(f.name for f in fields(OrderRow))
ORDER_MONEY = ("price", "volume", "krw_amount", "executed_volume", "paid_fee", "avg_price", "trigger_price")
EQUITY_COLUMNS = ("ts_ms", "market", "price", "krw", "coin_volume", "equity")
EQUITY_MONEY = ("price", "krw", "coin_volume", "equity")
EVENT_COLUMNS = ("id", "ts_ms", "level", "kind", "message", "data")


def _frame(records: list[dict[str, Any]], columns: Sequence[str], money: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame.from_records(records, columns=list(columns))
    for c in money:
        df[c] = pd.Series([None if v is None else float(v) for v in df[c]], index=df.index, dtype="float64")
    for c in ("ts_ms", "id", "created_ts_ms", "updated_ts_ms"):
        if c in df.columns:
            df[c] = df[c].astype("int64")
    return df


def rebuild_portfolio(repo: Repository, initial_krw: Decimal, fee_rate: Decimal = FEE_RATE) -> Portfolio:
    """The ledger recomputed from the stored fills, in the order they were recorded.

    Crash-only: start-up and recovery take this same path. (Positions saved with
    `save_position` are snapshots for reports; fills are the truth.)
    """
    pf = Portfolio(krw=initial_krw, fee_rate=fee_rate)
    pf.apply_fills(repo.fills())
    return pf


class OrderJournal:
    """`record_order` for the latency path: one prepared INSERT on a dedicated SQLite connection.

    Same row as `Repository.record_order` (state `recorded`, Decimals as fixed-point text, the
    insert idempotent on `identifier`), but without a worker-thread hop or an ORM session, so the
    event loop's thread can record an order before sending it in ~0.1 ms:
    - it never waits for the write lock (busy timeout 0): `record` returns None when another
      connection holds it, and the caller records through `Repository.record_order` instead;
    - its commits use `synchronous` (NORMAL by default) in WAL mode: a commit is written to the
      WAL file (the OS page cache) without fsync. That survives the death of the process
      (kill -9, OOM, a crash): the data is in the kernel and reaches the file. It does NOT
      survive a power loss or kernel crash until the next fsync, which is the next commit of any
      FULL connection (the repository's own: marking the order sent, a fill) or a checkpoint.
      Pass synchronous="FULL" to fsync every record (then ~1–10 ms on the loop's thread);
    - it never checkpoints (the repository's connections do), so a commit never copies pages.
    Thread-safe: a call that finds the connection in use by another thread returns None too.
    """

    _SQL = (
        "INSERT INTO orders (identifier, uuid, intent_id, market, side, ord_type, price, volume,"
        " krw_amount, state, reason, executed_volume, paid_fee, avg_price, error, created_ts_ms,"
        " updated_ts_ms, trigger_price)"
        " VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, '0', '0', NULL, NULL, ?, ?, ?)"
        " ON CONFLICT (identifier) DO NOTHING"
    )

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        import sqlite3
        import threading

        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self._errors = (sqlite3.Error,)
        # autocommit (each INSERT is its own transaction); timeout 0 = never wait for the lock
        self._conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 0")
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":  # Database.open sets WAL; without it NORMAL is unsafe
            self._conn.close()
            raise RuntimeError(f"order journal needs WAL, database is in {mode} mode")
        self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._lock = threading.Lock()
        self.synchronous = synchronous.upper()

    def record(
        self,
        identifier: str,
        intent_id: str,
        market: str,
        side: str,
        ord_type: str,
        price: Decimal | None,
        volume: Decimal | None,
        krw_amount: Decimal | None,
        reason: str,
        ts_ms: int,
        trigger_price: Decimal | None = None,
    ) -> bool | None:
        """True = recorded now, False = already recorded, None = not done (lock busy, journal
        closed or failing): record through `Repository.record_order` instead. Parameters are
        `Repository.record_order`'s, in the same order."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._conn is None:
                return None
            cur = self._conn.execute(
                self._SQL,
                (
                    identifier, intent_id, market, str(side), str(ord_type), _text(price), _text(volume),
                    _text(krw_amount), LocalOrderState.RECORDED.value, reason or "", ts_ms, ts_ms,
                    _text(trigger_price),
                ),
            )  # fmt: skip
            return cur.rowcount == 1
        except self._errors:
            return None
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]


def _text(value: Decimal | None) -> str | None:
    """A money value as `ExactDecimal` stores it in SQLite (fixed-point text)."""
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("money columns take Decimal, never float")
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if not d.is_finite():
        raise ValueError(f"non-finite decimal {d!r}")
    return format(d, "f")
