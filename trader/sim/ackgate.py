"""The simulator's lockstep gate: which replayed trade waits for the client's ack, and which may go.

Simulator-only protocol (Upbit's own is untouched; it exists only in lockstep mode):
- "ACK <seq>" (a text frame on the public WebSocket) or POST /_sim/ack {"seq": seq}: the client is
  done with the trade whose sequential_id is `seq` (every in-flight order settled); no band.
- "ACK <seq> <lo> <hi> <until_ms>" or {"seq", "lo", "hi", "until_ms"}: the same, plus the client's
  quiet band: for every following trade with lo < price < hi and ts < until_ms it would do nothing
  but observe the market (`StrategyEngine.quiet`, capped by its resting orders' deadlines).
  Numbers are decimal text or JSON numbers; "inf" and "-inf" are allowed.

The feed (`trader.sim.market.Feed`) asks `may_pass` before each trade. A trade passes without an
ack while it is strictly inside the band of the client's latest ack, earlier than its `until_ms`,
strictly inside the exchange's own resting band (it crosses no resting order of any client, hence
fills nothing) and not a pushed /_sim/path trade. Any other trade is a barrier: the feed first
waits until the client has acked the last trade published (it has handled every trade before this
one, so no fill can reach it ahead of the trades that precede it), asks again with that ack's band,
and if the trade still may not pass, publishes it and waits for *its* ack. The band of a trade that
did not pass is spent. Acks of older trades (the client acks every trade it handles) only record
progress; their bands are ignored. So the simulator only ever waits for the ack of the newest
published trade, which a client that acks every trade always sends.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("trader.sim.feed")


class AckError(ValueError):
    """A malformed ack; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class QuietBand:
    """Trades with lo < price < hi and ts < until_ms change nothing for the client but its view."""

    lo: float
    hi: float
    until_ms: float

    def text(self) -> str:
        """The band as the ACK frame's three fields ("inf"/"-inf" for the open ends)."""
        return f"{_num_text(self.lo)} {_num_text(self.hi)} {_num_text(self.until_ms)}"


def _num_text(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(int(x)) if x == int(x) and abs(x) < 2**53 else repr(x)


BAND_FIELDS = ("lo", "hi", "until_ms")


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AckError(field, f"expected a number, got {type(value).__name__}")
    try:
        x = float(value)
    except ValueError:
        raise AckError(field, f"not a number: {value!r}") from None
    if math.isnan(x):
        raise AckError(field, "NaN is not a bound")
    return x


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise AckError("seq", f"expected an integer sequential_id, got {type(value).__name__}")
    try:
        seq = int(value)
    except ValueError:
        raise AckError("seq", f"not an integer: {value!r}") from None
    if seq < 0:
        raise AckError("seq", "must not be negative")
    return seq


def _band(values: dict[str, Any]) -> QuietBand | None:
    given = [f for f in BAND_FIELDS if values.get(f) is not None]
    if not given:
        return None
    missing = [f for f in BAND_FIELDS if f not in given]
    if missing:
        raise AckError(missing[0], f"required with {', '.join(given)}")
    lo, hi, until = (_number(f, values[f]) for f in BAND_FIELDS)
    if lo > hi:
        raise AckError("hi", f"must not be below lo ({hi!r} < {lo!r})")
    return QuietBand(lo, hi, until)


def parse_ack_body(body: dict[str, Any]) -> tuple[int | None, QuietBand | None]:
    """POST /_sim/ack: {"seq"?, "lo"?, "hi"?, "until_ms"?} -> (seq, band); AckError if malformed."""
    seq = body.get("seq")
    band = _band(body)
    if seq is None:
        if band is not None:
            raise AckError("seq", "required with a band")
        return None, None
    return _seq(seq), band


def parse_ack_frame(raw: bytes) -> tuple[int | None, QuietBand | None]:
    """b"ACK [<seq> [<lo> <hi> <until_ms>]]" -> (seq, band); AckError if malformed."""
    parts = raw[4:].decode("ascii", "replace").split()
    if not parts:
        return None, None
    if len(parts) not in (1, 4):
        field = BAND_FIELDS[len(parts) - 1] if len(parts) < 4 else "ACK"
        raise AckError(field, "an ACK frame is 'ACK <seq>' or 'ACK <seq> <lo> <hi> <until_ms>'")
    return _seq(parts[0]), _band(dict(zip(BAND_FIELDS, parts[1:], strict=False)))


class AckGate:
    """Lockstep state of one feed: acks received, the current band, the wait for an ack."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.acks = 0  # acks that released (of the newest trade)
        self.stale = 0  # acks of older trades (progress only)
        self.timeouts = 0
        self.passed = 0  # trades released by a band, without waiting
        self.held = 0  # trades published with a wait for their ack
        self.published = 0  # sequential_id of the newest trade of the feed's market
        self.last_acked = 0  # the highest sequential_id the client acked
        self.band: QuietBand | None = None
        self.client = False  # a client has acked since the last timeout
        self.waiting = False
        self._progress = asyncio.Event()

    def ack(self, seq: int | None, band: QuietBand | None = None) -> bool:
        """The client is done with trade `seq` (None: with whatever was published last).
        Returns whether it acked the newest trade (which releases a waiting feed)."""
        top = self.published
        if seq is not None and seq < top:
            self.stale += 1
            if seq > self.last_acked:
                self.last_acked = seq
            return False
        # an id past the newest trade acks the newest (never trades not yet published)
        self.last_acked = top
        self.band = band
        self.acks += 1
        self.client = True
        self._progress.set()
        return True

    def caught_up(self) -> bool:
        return self.last_acked >= self.published

    def may_pass(self, ts_ms: int, price: float, resting: tuple[float, float]) -> bool:
        """Whether a replay trade at (ts_ms, price) may go without an ack (see the module doc)."""
        b = self.band
        return (b is not None and b.lo < price < b.hi and ts_ms < b.until_ms
                and resting[0] < price < resting[1])

    def spend(self) -> None:
        """A trade that may not pass is about to be published: it needs its own ack."""
        self.band = None
        self.held += 1

    async def wait(self) -> None:
        """Until the newest published trade is acked. Without a client, wait for one; with one,
        at most `timeout_s`: then release it, and wait for a client again."""
        self.waiting = True
        try:
            while not self.caught_up():
                self._progress.clear()
                if not self.client:
                    await self._progress.wait()
                    continue
                try:
                    await asyncio.wait_for(self._progress.wait(), timeout=self.timeout_s)
                except TimeoutError:
                    # the client is gone or stuck: release this trade, then wait for a client again
                    self.timeouts += 1
                    self.client = False
                    self.band = None
                    self.last_acked = self.published
                    log.warning("lockstep: no ack within %.1fs of sequential_id %d; waiting for a client",
                                self.timeout_s, self.published)
        finally:
            self.waiting = False

    def state(self) -> dict[str, Any]:
        return {"acks": self.acks, "stale_acks": self.stale, "timeouts": self.timeouts,
                "passed": self.passed, "held": self.held, "waiting": self.waiting, "client": self.client,
                "last_sid": self.published, "last_acked": self.last_acked,
                "band": None if self.band is None else self.band.text()}
