"""The strategy YAML, validated by pydantic: every rule optional, every error names its field.

`load_strategy(path)` returns a `StrategyConfig` or raises `StrategyConfigError` whose message
lists each problem as `<field path>: <what is wrong>` plus the file, e.g.
`exits.take_profit.1.sell: Input should be less than or equal to 1 (in strategy.yaml)`.
Unknown keys are errors too (a typo must not silently disable a stop).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_INTERVAL_RE = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

# Exits that protect capital always go out at market (never wait on a limit that may not fill).
MARKET_ONLY_REASONS = ("stop_loss", "trailing_stop", "sharp_drop")
LIMITABLE = ("entry", "take_profit", "reversal", "max_hold")


class StrategyConfigError(ValueError):
    """A strategy file that cannot be used; the message names the field path(s) and the file."""


def interval_ms(text: str) -> int:
    """'1m' → 60000, '60m' → 3600000, '4h', '1d', '30s'."""
    m = _INTERVAL_RE.match(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad interval {text!r}: use e.g. 30s, 1m, 15m, 60m, 4h, 1d")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Interval(_Model):
    interval: str = "1m"

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, v: str) -> str:
        interval_ms(v)
        return v

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)


class VolatilityBreakout(_Model):
    """Buy when price ≥ today's open + k × (yesterday's high − low); days start 00:00 UTC."""

    k: float = Field(0.5, gt=0, le=3)


class Dip(_Model):
    """Buy when price fell at least `drop` below the highest trade of the last `lookback_s`."""

    drop: float = Field(gt=0, lt=1)
    lookback_s: float = Field(gt=0)


class TrendFilter(_Interval):
    """Buy only while price is above the `ma`-candle moving average of closed candles."""

    ma: int = Field(ge=1, le=1000)


class EntryConfig(_Model):
    volatility_breakout: VolatilityBreakout | None = None
    immediate: bool = False
    dip: Dip | None = None
    trend_filter: TrendFilter | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> EntryConfig:
        if not (self.volatility_breakout or self.immediate or self.dip or self.trend_filter):
            raise ValueError("at least one entry rule is needed (volatility_breakout, immediate, dip, "
                             "trend_filter)")
        return self


class TakeProfitStep(_Model):
    gain: float = Field(gt=0, le=100)
    sell: float = Field(gt=0, le=1)


class TrailingStop(_Model):
    activate_at: float = Field(ge=0, le=100)
    trail: float = Field(gt=0, lt=1)


class SharpDrop(_Model):
    drop: float = Field(gt=0, lt=1)
    within_s: float = Field(gt=0, le=86_400)


class Reversal(_Interval):
    """Sell all once gain ≥ min_gain while the fast MA is below the slow MA (closed candles)."""

    min_gain: float = Field(0.0, ge=0)
    fast_ma: int = Field(ge=1, le=1000)
    slow_ma: int = Field(ge=2, le=1000)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Reversal:
        if self.fast_ma >= self.slow_ma:
            raise ValueError("fast_ma must be smaller than slow_ma")
        return self


class ExitsConfig(_Model):
    take_profit: list[TakeProfitStep] = Field(default_factory=list)
    stop_loss: float | None = Field(None, gt=0, lt=1)
    trailing_stop: TrailingStop | None = None
    sharp_drop: SharpDrop | None = None
    reversal: Reversal | None = None
    max_hold_s: float | None = Field(None, gt=0)

    @field_validator("take_profit")
    @classmethod
    def _ladder(cls, steps: list[TakeProfitStep]) -> list[TakeProfitStep]:
        gains = [s.gain for s in steps]
        if gains != sorted(gains) or len(set(gains)) != len(gains):
            raise ValueError("take-profit gains must be strictly increasing")
        if sum(s.sell for s in steps) > 1 + 1e-9:
            raise ValueError("take-profit sell fractions add up to more than 1")
        return steps


class LimitOrders(_Model):
    use_for: list[Literal["entry", "take_profit", "reversal", "max_hold"]] = Field(default_factory=list)
    offset_ticks: int = Field(0, ge=0, le=100)
    timeout_s: float = Field(30, gt=0)
    on_timeout: Literal["market", "reprice", "cancel"] = "market"


class Cooldown(_Model):
    after_sell_s: float = Field(0, ge=0)
    after_stop_loss_s: float = Field(0, ge=0)  # also after a sharp-drop exit
    max_entries_per_day: int | None = Field(None, ge=1)


class StrategyConfig(_Model):
    """The whole strategy file."""

    market: str = Field(pattern=r"^KRW-[A-Z0-9]{1,15}$")
    order_krw: Decimal | None = Field(None, ge=5000)
    order_fraction: float | None = Field(None, gt=0, le=1)
    entry: EntryConfig
    exits: ExitsConfig = Field(default_factory=ExitsConfig)
    limit_orders: LimitOrders = Field(default_factory=LimitOrders)
    cooldown: Cooldown = Field(default_factory=Cooldown)

    @model_validator(mode="after")
    def _sizing(self) -> StrategyConfig:
        if (self.order_krw is None) == (self.order_fraction is None):
            raise ValueError("give exactly one of order_krw or order_fraction")
        return self


def format_errors(exc: ValidationError) -> list[str]:
    """Each pydantic error as `<field path>: <message>` (shared with the portfolio file)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return lines


def parse_strategy(data: object, source: str = "<dict>") -> StrategyConfig:
    """Validate an already-parsed mapping."""
    if not isinstance(data, dict):
        raise StrategyConfigError(f"{source}: a strategy file must be a YAML mapping")
    try:
        return StrategyConfig.model_validate(data)
    except ValidationError as exc:
        problems = format_errors(exc)
        raise StrategyConfigError(
            "; ".join(problems) + f" (in {source})"
        ) from None


def load_strategy(path: str | Path) -> StrategyConfig:
    """Read and validate a strategy YAML file."""
    path = Path(path)
    return parse_strategy(read_yaml(path), str(path))


def read_yaml(path: Path, kind: str = "strategy") -> object:
    """The parsed YAML of a `kind` file (strategy, portfolio); StrategyConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StrategyConfigError(f"cannot read {kind} file {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StrategyConfigError(f"{path}: not valid YAML: {exc}") from None
