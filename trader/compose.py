"""The composition root of a trading run: the one place that builds a `TradingLoop` and its parts.

`python -m trader run` (trader/run_cli.py) and the Prefect `trading` flow (flows/trading.py) both
call `open_run`; the flow adds only Prefect things (observers and artifact, tags, retries,
place-order subflows, hooks). What it builds, in order:
- the venue: paper trades on a simulator (one started here from `PaperSim`, or the one at a
  URL) with its development keys; live trades on Upbit with the keys from the environment, or
  from the caller's secret store (the flow's Secret blocks). Simulator options on a live run are
  refused (`paper_only_problem`): ignoring them would trade real money instead;
- the database and repository, the REST client (`direct_orders` from the caller or
  TRADER_DIRECT_ORDERS), the public and private WebSocket streams;
- paper lockstep: the `LockstepAck` the loop awaits after each trade (the simulator must be in
  lockstep mode: checked against GET /_sim/state), so a paper run fills exactly as the backtest;
- the stop conditions: market time `until_ms`, `max_runtime_s`, and for paper the end of the
  replay (`watch_replay_end`), so a replay that runs out of data stops the run.

A replay window `[start, end)` is cut from the data by the backtest's own `slice_time`, so
`PaperSim(start=A, end=B, lockstep=True)` meets exactly the trades of `backtest --from A --to B`
and the run's `fingerprint()` (trader/fingerprint.py, over the fills this run recorded) equals
the backtest's. No Prefect import here (`trader/` never imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.timeutil import datetime_to_ms

KST = timezone(timedelta(hours=9), "KST")
FREE_RUNNING_WARNING = (
    "the simulator replays at speed max without lockstep: the market moves on while an order is on "
    "its way, so fills will not match a backtest (use lockstep for the exact mode)"
)


class ComposeError(ValueError):
    """A run that must not start (a bad or contradictory option); the message names the option."""


def parse_market_time(text: str, option: str = "until") -> int:
    """ISO 8601 → UTC epoch ms; a time without an offset is KST (Asia/Seoul)."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        problem = f"{option}: {text!r} is not an ISO 8601 time (e.g. 2024-01-22T09:00, KST)"
        raise ComposeError(problem) from None
    return datetime_to_ms(dt if dt.tzinfo is not None else dt.replace(tzinfo=KST))


def paper_only_problem(given: Sequence[str], paper_option: str = "--paper") -> str | None:
    """The refusal for simulator options given to a live run (None when there are none)."""
    if not given:
        return None
    verb = "is" if len(given) == 1 else "are"
    return (
        f"{', '.join(given)} {verb} for paper runs on the simulator; without {paper_option} this runs "
        f"LIVE on Upbit with your keys (add {paper_option}, or drop the option)"
    )


# ---- venue ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperSim:
    """A simulator to start for a paper run. None keeps the simulator's default, which is the
    backtest's: 10,000,000 KRW, seed 0, 8 trades per candle, data/KRW-ETH_15m_2024.parquet."""

    market: str
    data: str | Path | None = None
    speed: str | None = None  # × real time or "max"; default 1, or max in lockstep
    lockstep: bool = False
    seed: int | None = None
    ticks_per_candle: int | None = None
    start: str | None = None  # replay from (inclusive), as `backtest --from`; KST unless an offset
    end: str | None = None  # replay up to (exclusive), as `backtest --to`
    krw: Decimal | None = None
    # start paused: a free-running replay at speed would otherwise run ahead before the loop has
    # connected; the run resumes it once its sockets are up (`open_run(resume_sim=True)`)
    paused: bool = False

    @property
    def replay_speed(self) -> str:
        # lockstep paces the feed by the loop's acks: real-time pacing on top would only slow it
        return str(self.speed or ("max" if self.lockstep else "1"))

    @property
    def free_running_at_max(self) -> bool:
        return self.replay_speed.lower() == "max" and not self.lockstep


@dataclass
class Venue:
    """Where to trade: URLs, keys, and a simulator process when this run started one."""

    rest_url: str
    ws_url: str
    private_ws_url: str
    keys: tuple[str, str] = field(repr=False)
    paper: bool
    sim: Any = None  # a SimulatorProcess started for this run: close() stops it

    def close(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


def ws_urls(rest_url: str) -> tuple[str, str]:
    ws = rest_url.rstrip("/").replace("https://", "wss://").replace("http://", "ws://") + "/websocket/v1"
    return ws, ws + "/private"


def paper_venue(sim_url: str, sim: Any = None) -> Venue:
    from trader.config import SIM_ACCESS_KEY, SIM_SECRET_KEY

    return Venue(sim_url, *ws_urls(sim_url), (SIM_ACCESS_KEY, SIM_SECRET_KEY), paper=True, sim=sim)


def live_venue(
    settings: Any,
    secret: Callable[[str], str | None] | None = None,
    *,
    where: str = " (or .env), or trade on the simulator (paper)",
) -> Venue:
    """Upbit with the keys from the environment, else from `secret(name)` (e.g. Prefect blocks)."""
    keys = []
    for name, value in (("upbit-access-key", settings.upbit_access_key),
                        ("upbit-secret-key", settings.upbit_secret_key)):
        keys.append(value.get_secret_value() if value else (secret(name) if secret else None))
    if not all(keys):
        raise ComposeError(
            f"live trading needs Upbit API keys: set UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY in the environment"
            f"{where}"
        )
    ws = settings.upbit_ws_url.rstrip("/")
    return Venue(settings.upbit_base_url, ws, ws + "/private", (keys[0], keys[1]), paper=False)


def replay_window(data: str | Path, start: str | None, end: str, workdir: Path) -> Path:
    """[start, end) of `data`, cut by the backtest's `slice_time`, in a file for the simulator."""
    from trader.marketdata.candles import infer_interval_ms, load_frame, slice_time

    kind, frame = load_frame(data)
    part = slice_time(frame, start, end)
    if len(part) == 0:
        raise ComposeError(f"sim_end: no market data in [{start or 'start'}, {end}) of {data}")
    # the simulator synthesizes a candle's trades with the interval it infers from its file, the
    # backtest with the whole file's: a window too short (or gappy) to show it would differ
    if kind == "candles" and infer_interval_ms(part) != infer_interval_ms(frame):
        raise ComposeError(f"sim_end: [{start or 'start'}, {end}) holds too few candles of {data} to replay "
                           "it as the backtest does; widen the window")
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{Path(data).stem}.window-", suffix=".parquet", dir=workdir)
    os.close(fd)
    part.to_parquet(name, index=False)
    return Path(name)


def start_simulator(opts: PaperSim, workdir: Path) -> Any:
    """Start `python -m trader sim` for `opts` (a SimulatorProcess, started)."""
    from trader.sim.app import DEFAULT_DATA
    from trader.sim.server import SimulatorProcess

    args = ["--speed", opts.replay_speed, "--market", opts.market]
    if opts.lockstep:
        args.append("--lockstep")
    if opts.paused:
        args.append("--paused")
    for flag, value in (("--seed", opts.seed), ("--ticks-per-candle", opts.ticks_per_candle),
                        ("--krw", opts.krw)):
        if value is not None:
            args += [flag, str(value)]
    window = None
    if opts.end is not None:
        window = replay_window(opts.data or DEFAULT_DATA, opts.start, opts.end, workdir)
        args += ["--data", str(window)]
    else:
        if opts.data is not None:
            args += ["--data", str(opts.data)]
        if opts.start is not None:
            args += ["--start", opts.start]
    try:
        return SimulatorProcess(args=args).start()
    finally:
        if window is not None:
            window.unlink(missing_ok=True)  # the simulator read it at start-up


def default_db_url(settings: Any, *, paper: bool, fresh: bool, run_name: str | None = None) -> str:
    """Live: the configured database. Paper: var/paper.db for a simulator at a URL; a simulator
    started for this run is a brand-new account, so it gets a brand-new ledger."""
    if not paper:
        return str(settings.db_url)
    var = Path(settings.var_dir)
    if not fresh:
        return f"sqlite:///{(var / 'paper.db').as_posix()}"
    name = run_name or time.strftime("%Y%m%d-%H%M%S")
    return f"sqlite:///{(var / f'paper-{name}.db').as_posix()}"


async def simulator_state(rest_url: str) -> dict[str, Any] | None:
    """GET /_sim/state, or None when the simulator does not answer (the loop reports that)."""
    import httpx

    try:
        async with httpx.AsyncClient(base_url=rest_url, timeout=5.0) as http:
            r = await http.get("/_sim/state")
            r.raise_for_status()
            return dict(r.json())
    except (httpx.HTTPError, ValueError):
        return None


# ---- the run ----------------------------------------------------------------------------------
@dataclass
class TradingRun:
    """A built trading run: `await run()` trades, `fingerprint()` names its fills, `close()`."""

    config: Any
    venue: Venue
    db_url: str
    db: Any
    repo: Any
    rest: Any
    public: Any
    private: Any
    loop: Any
    ack: Any = None  # the LockstepAck of a lockstep paper run
    watch_end: bool = False
    resume_sim: bool = False
    baseline_fill_id: int = 0
    guard: Any = None  # the InstanceGuard (trader/instance.py) this run holds until close()
    _closed: bool = False

    async def run(self) -> Any:
        """The loop until it stops (the replay's end stops a paper run); returns its stats."""
        helpers: list[asyncio.Task[Any]] = []
        if self.watch_end:
            from trader.sim.lockstep import watch_replay_end

            helpers.append(asyncio.create_task(watch_replay_end(self.venue.rest_url, self._replay_ended)))
        if self.resume_sim:
            helpers.append(asyncio.create_task(self._resume_when_subscribed()))
        try:
            return await self.loop.run()
        finally:
            for task in helpers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _resume_when_subscribed(self, every_s: float = 0.02) -> None:
        """Resume the paused simulator once the loop trades on it: its first tick (the trade
        stream's snapshot) has arrived and the private socket is up, so no trade is missed."""
        import httpx

        while not (self.loop.stats.ticks and self.private.connected):
            await asyncio.sleep(every_s)
        async with httpx.AsyncClient(base_url=self.venue.rest_url, timeout=10.0) as http:
            (await http.post("/_sim/resume", json={})).raise_for_status()

    def _replay_ended(self) -> None:
        if self.ack is not None:
            # lockstep settles every order before each ack and a finished replay fills no resting
            # order: waiting the shutdown grace for one would only cost time
            self.loop.shutdown_grace_s = min(self.loop.shutdown_grace_s, 1.0)
        self.loop.stop("replay ended")

    def fingerprint(self) -> str:
        """sha256 over the fills this run recorded (trader/fingerprint.py), as the backtest's."""
        from trader.fingerprint import fingerprint

        return fingerprint(self.repo.fingerprint_fills(self.config.market, after_id=self.baseline_fill_id))

    async def close(self) -> None:
        """Close the streams, the REST client, the database; stop a simulator started here."""
        if self._closed:
            return
        self._closed = True
        try:
            for closer in (self.public.close, self.private.close, self.rest.close):
                with contextlib.suppress(Exception):
                    await closer()
            if self.ack is not None:
                with contextlib.suppress(Exception):
                    await self.ack.close()
            self.db.close()
        finally:
            if self.guard is not None:
                self.guard.release()
            self.venue.close()  # never leave a simulator we started behind


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


async def open_run(
    config: Any,
    venue: Venue,
    db_url: str,
    *,
    settings: Any,
    direct_orders: bool = False,
    lockstep: bool = False,
    until_ms: int | None = None,
    max_runtime_s: float | None = None,
    namespace: str | None = None,
    stream: Callable[[AsyncIterable[Any]], AsyncIterable[Any]] | None = None,
    confirm_with: Callable[[Any, Any], Awaitable[Any]] | None = None,
    resume_sim: bool = False,
    warn: Callable[[str], None] = _warn,
    **loop_options: Any,
) -> TradingRun:
    """Build the run on `venue` (closed again if building fails). `resume_sim`: the simulator
    was started paused (`PaperSim.paused`): resume it once the loop is subscribed. `stream` wraps
    the public trade stream the loop reads (fault injection); `confirm_with(order_manager, order)` replaces
    the loop's own fill confirmation (the flow's place-order subflows); `loop_options` go to
    `TradingLoop` (observers, status_every_s, shutdown_grace_s, equity_every_ms, ...)."""
    from trader.engine import TradingLoop, trading_streams
    from trader.portfolio import Portfolio
    from trader.storage.db import Database
    from trader.storage.repository import Repository
    from trader.upbit.ratelimit import Unpaced
    from trader.upbit.rest import UpbitRestClient

    if lockstep and not venue.paper:
        venue.close()
        raise ComposeError("lockstep is for paper runs on the simulator")
    guard = None
    try:
        if venue.paper:
            await _check_replay(venue.rest_url, lockstep, warn)
        # before the database is opened and the loop reconciles: a second trader on this account
        # and ledger would sell the first one's positions (issue 15)
        guard = await asyncio.to_thread(take_guard, db_url, venue.keys[0], namespace or "")
        db = Database.open(db_url)
    except BaseException:
        if guard is not None:
            guard.release()
        venue.close()
        raise
    repo = Repository(db)
    direct = bool(direct_orders or settings.direct_orders)
    # lockstep compresses days of market time into seconds of wall time and its simulator limits
    # nothing (`sim --lockstep`): pacing requests by Upbit's per-second limits would only pace the
    # replay. Live and free-running paper keep the limits.
    limiter = Unpaced() if lockstep and venue.paper else None
    rest = UpbitRestClient(*venue.keys, venue.rest_url, direct_orders=direct, limiter=limiter)
    public, private = trading_streams(config.market, venue.ws_url, venue.private_ws_url, venue.keys, rest)
    ack = None
    if lockstep:
        from trader.sim.lockstep import LockstepAck

        ack = LockstepAck(public, venue.rest_url)
    run = TradingRun(config, venue, db_url, db, repo, rest, public, private, loop=None, ack=ack,
                     watch_end=venue.paper, resume_sim=resume_sim and venue.paper, guard=guard)
    try:
        await check_listed(rest, config.market, venue.rest_url, warn)
        confirm = None
        if confirm_with is not None:
            async def confirm(order: Any) -> Any:
                return await confirm_with(run.loop.om, order)

        run.loop = TradingLoop(
            config,
            rest,
            public if stream is None else stream(public),
            repo,
            Portfolio(),
            namespace=namespace,
            order_events=private,
            stop_at_ms=until_ms,
            max_runtime_s=max_runtime_s,
            after_tick=ack,
            confirm=confirm,
            **loop_options,
        )
        existing = await asyncio.to_thread(repo.fingerprint_fills, config.market)
        run.baseline_fill_id = max((f.id for f in existing), default=0)
    except BaseException:
        await run.close()
        raise
    return run


def take_guard(db_url: str, access_key: str, name: str) -> Any:
    """The single-instance guard of this account and database; ComposeError naming the holder."""
    from trader.instance import InstanceHeld, acquire

    try:
        return acquire(db_url, access_key, name)
    except (InstanceHeld, ValueError) as exc:
        raise ComposeError(str(exc)) from None


async def check_listed(rest: Any, market: str, rest_url: str, warn: Callable[[str], None]) -> None:
    """Refuse a market the exchange does not list (it would run forever with no ticks)."""
    from trader.upbit.errors import UpbitError

    try:
        rows = await rest.markets()
    except UpbitError as exc:  # unreachable now: the loop's own connection handling takes over
        warn(f"could not check that {market} is listed at {rest_url}: {exc}")
        return
    listed = [str(row.get("market")) for row in rows if isinstance(row, dict)]
    if market in listed:
        return
    quote = market.split("-", 1)[0] + "-"
    same = [m for m in listed if m.startswith(quote)] or listed
    shown = ", ".join(same[:10]) + (f" and {len(same) - 10} more" if len(same) > 10 else "")
    shown = shown or "nothing"
    raise ComposeError(f"{market} is not listed by the exchange at {rest_url} (it lists {shown})")


async def _check_replay(rest_url: str, lockstep: bool, warn: Callable[[str], None]) -> None:
    """Lockstep needs a lockstep simulator; a free-running one at speed max gets a warning."""
    state = await simulator_state(rest_url)
    if state is None:
        return  # not up (yet): the loop's connection errors say so
    if lockstep and "lockstep" not in state:
        raise ComposeError(
            f"lockstep: the simulator at {rest_url} is not in lockstep mode (start it with "
            "`python -m trader sim --lockstep`, or let the run start one)"
        )
    if not lockstep and str(state.get("speed")) == "max":
        warn(FREE_RUNNING_WARNING)
