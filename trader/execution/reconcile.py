"""Start-up reconciliation — crash-only: a normal start and crash recovery are one code path.

1. Load the engine's meta record (namespace of identifiers, ledger baseline). On the very first
   start the baseline is the exchange's balances as they are (adopted, and logged).
2. Rebuild the ledger: baseline + every fill stored since it, in recorded order.
3. Resolve every order recorded but not known final (`repo.unresolved_orders`): look it up by
   identifier; a resting order from a previous life is cancelled (the strategy re-decides);
   its fills are recorded once and booked; an order the exchange never saw (not found after a
   grace period) is marked rejected. Their intents' outcomes are returned for the strategy.
4. Compare KRW and the traded coins with `/v1/accounts` (free + locked). A difference that the
   recorded orders cannot explain → `ReconcileMismatch`: trading must not start.
   `adopt_exchange` (the `reconcile --adopt` command) takes the exchange's figures as the new
   baseline and writes an event_log entry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from trader.domain import Intent, IntentKind, OrdType, Side
from trader.execution.order_manager import ManagedOrder, OrderManager, wall_ms
from trader.execution.states import Accepted, Ambiguous, Submitted
from trader.portfolio import Portfolio
from trader.upbit.client import Balance, ExchangeClient
from trader.upbit.errors import OrderNotFoundError, RetryableError
from trader.upbit.rules import FEE_RATE

log = logging.getLogger("trader.reconcile")

META_NAME = "engine"
KRW_TOLERANCE = Decimal("1")  # Upbit rounds KRW fee amounts; a won of drift is not a lost order
VOLUME_TOLERANCE = Decimal("0.00000001")


@dataclass
class EngineMeta:
    """What the engine persists besides the strategy: identifier namespace and ledger baseline."""

    namespace: str
    baseline_krw: Decimal
    baseline_holdings: dict[str, tuple[Decimal, Decimal]]  # market -> (volume, avg_buy_price)
    baseline_fills: int  # fills stored before the baseline (already reflected in it)
    baseline_ts_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "baseline_krw": str(self.baseline_krw),
            "baseline_holdings": {m: [str(v), str(a)] for m, (v, a) in self.baseline_holdings.items()},
            "baseline_fills": self.baseline_fills,
            "baseline_ts_ms": self.baseline_ts_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineMeta:
        return cls(
            namespace=str(d["namespace"]),
            baseline_krw=Decimal(d["baseline_krw"]),
            baseline_holdings={m: (Decimal(v), Decimal(a)) for m, (v, a) in d["baseline_holdings"].items()},
            baseline_fills=int(d["baseline_fills"]),
            baseline_ts_ms=int(d["baseline_ts_ms"]),
        )


@dataclass(frozen=True)
class BalanceDiff:
    currency: str
    exchange: Decimal
    ledger: Decimal

    @property
    def diff(self) -> Decimal:
        return self.exchange - self.ledger


@dataclass(frozen=True)
class IntentOutcome:
    """What an intent of a previous life achieved, to hand to `strategy.on_order_result`."""

    intent: Intent
    filled_volume: Decimal
    avg_price: Decimal | None
    ts_ms: int


@dataclass
class ReconcileReport:
    first_start: bool = False
    resolved_orders: list[str] = field(default_factory=list)
    rejected_orders: list[str] = field(default_factory=list)
    cancelled_orders: list[str] = field(default_factory=list)
    new_fills: int = 0
    outcomes: list[IntentOutcome] = field(default_factory=list)
    compared: list[BalanceDiff] = field(default_factory=list)
    mismatches: list[BalanceDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def describe(self) -> str:
        lines = [
            f"orders resolved: {len(self.resolved_orders)} (cancelled {len(self.cancelled_orders)}, "
            f"never reached the exchange {len(self.rejected_orders)}); fills recorded now: {self.new_fills}",
            f"{'currency':<10}{'exchange':>22}{'ledger':>22}{'difference':>22}",
        ]
        bad = {d.currency for d in self.mismatches}
        for d in self.compared:
            flag = "  <-- MISMATCH" if d.currency in bad else ""
            lines.append(f"{d.currency:<10}{d.exchange:>22}{d.ledger:>22}{d.diff:>22}{flag}")
        return "\n".join(lines)


class ReconcileMismatch(Exception):
    """The exchange's balances differ from the ledger in a way recorded orders cannot explain."""

    def __init__(self, report: ReconcileReport) -> None:
        super().__init__(
            "balances on the exchange differ from the ledger; trading will not start.\n"
            + report.describe()
            + "\nInspect with `python -m trader reconcile`; adopt the exchange's figures with "
            "`python -m trader reconcile --adopt`."
        )
        self.report = report


def _market(currency: str) -> str:
    return currency if "-" in currency else f"KRW-{currency}"


def holdings_of(balances: dict[str, Balance]) -> dict[str, tuple[Decimal, Decimal]]:
    return {_market(c): (b.total, b.avg_buy_price) for c, b in balances.items() if c != "KRW" and b.total > 0}


async def load_meta(repo: Any) -> EngineMeta | None:
    d = await asyncio.to_thread(repo.load_strategy_state, META_NAME)
    return EngineMeta.from_dict(d) if d else None


async def save_meta(repo: Any, meta: EngineMeta, ts_ms: int) -> None:
    await asyncio.to_thread(repo.save_strategy_state, META_NAME, meta.to_dict(), ts_ms)


async def _accounts(exchange: ExchangeClient) -> dict[str, Balance]:
    delay = 0.1
    for _ in range(20):
        try:
            return await exchange.accounts()
        except RetryableError as exc:
            await asyncio.sleep(max(exc.retry_after, delay))
            delay = min(delay * 2, 2.0)
    return await exchange.accounts()


async def rebuild_ledger(repo: Any, meta: EngineMeta, fee_rate: Decimal = FEE_RATE) -> Portfolio:
    """Baseline + the fills stored after it, in the order they were recorded."""
    pf = Portfolio(krw=meta.baseline_krw, fee_rate=fee_rate)
    if meta.baseline_holdings:
        pf.adopt_balances(meta.baseline_krw, meta.baseline_holdings)
    fills = await asyncio.to_thread(repo.fills)
    pf.apply_fills(fills[meta.baseline_fills :])
    return pf


async def adopt_exchange(
    exchange: ExchangeClient,
    repo: Any,
    *,
    namespace: str | None = None,
    clock: Callable[[], int] = wall_ms,
    reason: str = "adopted",
    diffs: Iterable[BalanceDiff] = (),
) -> EngineMeta:
    """Make the exchange's balances the ledger's new baseline (first start, or `--adopt`)."""
    balances = await _accounts(exchange)
    old = await load_meta(repo)
    fills = await asyncio.to_thread(repo.fills)
    krw = balances["KRW"].total if "KRW" in balances else Decimal(0)
    meta = EngineMeta(
        namespace=namespace or (old.namespace if old else secrets.token_hex(6)),
        baseline_krw=krw,
        baseline_holdings=holdings_of(balances),
        baseline_fills=len(fills),
        baseline_ts_ms=clock(),
    )
    await save_meta(repo, meta, clock())
    data = {
        "krw": str(krw),
        "holdings": {m: [str(v), str(a)] for m, (v, a) in meta.baseline_holdings.items()},
        "differences": {d.currency: str(d.diff) for d in diffs},
    }
    await asyncio.to_thread(
        repo.log_event, clock(), "reconcile.adopt", f"ledger baseline {reason}", data, "warning"
    )
    log.warning("ledger baseline %s krw=%s holdings=%s", reason, krw, data["holdings"])
    return meta


def _intent_of(row: Any) -> Intent:
    side = Side(row.side)
    limit = row.price if row.ord_type == OrdType.LIMIT.value else None
    kind = IntentKind.BUY if side is Side.BID else IntentKind.SELL
    return Intent(
        row.market, kind, row.reason, row.created_ts_ms, row.intent_id,
        krw=row.krw_amount, volume=row.volume, limit_price=limit,
    )  # fmt: skip


def _managed(row: Any, om: OrderManager) -> ManagedOrder:
    order = ManagedOrder(
        _intent_of(row), row.identifier, 0, Side(row.side), OrdType(row.ord_type),
        row.price if row.ord_type == OrdType.LIMIT.value else row.krw_amount, row.volume,
    )  # fmt: skip
    order.fsm.apply(Submitted())
    if row.state == "ambiguous":
        order.fsm.apply(Ambiguous())
    elif row.state == "wait":
        order.fsm.apply(Accepted())
    order.uuid = row.uuid
    order.superseded = True  # a previous life's order: no timeout fallback from here
    om.track(order)
    return order


async def _lookup(om: OrderManager, order: ManagedOrder) -> Any:
    try:
        return await om._retrying(lambda: om.exchange.get_order(identifier=order.identifier))
    except OrderNotFoundError:
        return None


async def resolve_unresolved(
    om: OrderManager, repo: Any, report: ReconcileReport, *, grace_s: float = 2.0
) -> None:
    """Step 3: every recorded-but-unconfirmed order ends final, its fills booked once."""
    rows = await asyncio.to_thread(repo.unresolved_orders)
    if not rows:
        return
    fills_before = len(await asyncio.to_thread(repo.fills))
    missing: list[ManagedOrder] = []
    intents: dict[str, Intent] = {}
    for row in rows:
        order = _managed(row, om)
        intents[row.intent_id] = order.intent
        snap = await _lookup(om, order)
        if snap is None:
            missing.append(order)
            continue
        await om.ingest(order, snap)
        if not order.is_final:
            report.cancelled_orders.append(order.identifier)
            await om.cancel(order)
        report.resolved_orders.append(order.identifier)
    if missing:
        # a request in flight when the process died may still land: give it a moment
        await asyncio.sleep(grace_s)
        for order in missing:
            snap = await _lookup(om, order)
            if snap is not None:
                await om.ingest(order, snap)
                if not order.is_final:
                    report.cancelled_orders.append(order.identifier)
                    await om.cancel(order)
                report.resolved_orders.append(order.identifier)
            else:
                await om.reject_unseen(order, "not found on the exchange at start-up: never placed")
                report.rejected_orders.append(order.identifier)
                report.resolved_orders.append(order.identifier)
    report.new_fills = len(await asyncio.to_thread(repo.fills)) - fills_before
    # the intents whose orders are now all final: tell the strategy what they achieved
    all_orders = await asyncio.to_thread(repo.orders)
    all_fills = await asyncio.to_thread(repo.fills)
    for intent_id, intent in intents.items():
        mine = [o for o in all_orders if o.intent_id == intent_id]
        if any(o.state not in ("done", "cancel", "rejected") for o in mine):
            continue
        idents = {o.identifier for o in mine}
        fills = [f for f in all_fills if f.identifier in idents]
        vol = sum((f.volume for f in fills), Decimal(0))
        funds = sum((f.funds for f in fills), Decimal(0))
        ts = max((f.ts_ms for f in fills), default=intent.ts_ms)
        report.outcomes.append(IntentOutcome(intent, vol, funds / vol if vol else None, ts))


def compare(
    balances: dict[str, Balance],
    pf: Portfolio,
    markets: Iterable[str],
    *,
    krw_tolerance: Decimal = KRW_TOLERANCE,
    volume_tolerance: Decimal = VOLUME_TOLERANCE,
) -> tuple[list[BalanceDiff], list[BalanceDiff]]:
    """(all compared rows, the mismatching ones): KRW and every traded market, free + locked."""
    rows = [BalanceDiff("KRW", balances["KRW"].total if "KRW" in balances else Decimal(0), pf.krw)]
    for market in sorted(set(markets) | {m for m in pf.markets() if pf.position(m).volume}):
        cur = market.split("-", 1)[1]
        ex = balances[cur].total if cur in balances else Decimal(0)
        rows.append(BalanceDiff(cur, ex, pf.position(market).volume))
    bad = [d for d in rows if abs(d.diff) > (krw_tolerance if d.currency == "KRW" else volume_tolerance)]
    return rows, bad


async def reconcile(
    om: OrderManager,
    repo: Any,
    *,
    markets: Iterable[str],
    clock: Callable[[], int] = wall_ms,
    grace_s: float = 2.0,
    krw_tolerance: Decimal = KRW_TOLERANCE,
    volume_tolerance: Decimal = VOLUME_TOLERANCE,
    raise_on_mismatch: bool = True,
) -> tuple[Portfolio, EngineMeta, ReconcileReport]:
    """Steps 1–4 (module docstring). Sets `om.portfolio` and `om.namespace`; returns the ledger."""
    report = ReconcileReport()
    meta = await load_meta(repo)
    if meta is None:
        report.first_start = True
        meta = await adopt_exchange(
            om.exchange, repo, clock=clock, reason="taken from the exchange at first start"
        )
    pf = await rebuild_ledger(repo, meta, om.settings.fee_rate)
    om.portfolio = pf
    om.namespace = meta.namespace
    await resolve_unresolved(om, repo, report, grace_s=grace_s)
    balances = await _accounts(om.exchange)
    report.compared, report.mismatches = compare(
        balances, pf, markets, krw_tolerance=krw_tolerance, volume_tolerance=volume_tolerance
    )
    await asyncio.to_thread(repo.add_balance_snapshot, clock(), list(balances.values()), "exchange")
    level = "info" if report.ok else "error"
    await asyncio.to_thread(
        repo.log_event,
        clock(),
        "reconcile",
        "start-up reconciliation " + ("ok" if report.ok else "MISMATCH"),
        {
            "resolved": report.resolved_orders,
            "rejected": report.rejected_orders,
            "cancelled": report.cancelled_orders,
            "new_fills": report.new_fills,
            "differences": {d.currency: str(d.diff) for d in report.mismatches},
        },
        level,
    )
    log.info(
        "reconcile ok=%s resolved=%d new_fills=%d first_start=%s",
        report.ok,
        len(report.resolved_orders),
        report.new_fills,
        report.first_start,
    )
    if not report.ok and raise_on_mismatch:
        raise ReconcileMismatch(report)
    return pf, meta, report
