"""The strategy YAML, validated by pydantic: every rule optional, every error names its field.

`load_strategy(path)` returns a `StrategyConfig` or raises `StrategyConfigError` whose message
lists each problem as `<field path>: <what is wrong>` plus the file, e.g.
`exits.take_profit.1.sell: Input should be less than or equal to 1 (in strategy.yaml)`.
Unknown keys are errors too (a typo must not silently disable a stop), and so are a key given
twice (last-wins once backtested a KRW-ETH file as KRW-BTC), a file over 1 MiB (refused before it
is read), text that is not UTF-8, nesting past 32 levels, an order above Upbit's 1,000,000,000 KRW
and a duration above 10 years; a fraction written as a percent (`stop_loss: 3`) names 0.03.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trader.upbit.rules import MAX_ORDER_KRW, MIN_ORDER_KRW

_INTERVAL_RE = re.compile(r"^(\d{1,12})\s*(s|m|h|d)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_FILE_BYTES = 1 << 20  # a strategy is a few hundred bytes; 1 MiB is far past any real one
MAX_DEPTH = 32  # nesting levels of mappings/lists; the schema needs 4
MAX_DURATION_S = 10 * 365 * 86_400  # 10 years: past it a duration is a typo (and overflows later)
MAX_INTERVAL_MS = 366 * 86_400_000  # a candle interval of at most a year


def check_fraction(v: object) -> object:
    """Refuse a percent written where a fraction is expected, naming the fraction to write."""
    if isinstance(v, bool):
        raise ValueError("should be a fraction such as 0.05, not true/false")
    if isinstance(v, Decimal) and not v.is_finite():
        return v  # a NaN Decimal cannot be compared; the field's own bounds refuse it
    if isinstance(v, int | float | Decimal) and 1 < v <= 100:
        percent = Decimal(str(v)).normalize()
        raise ValueError(f"{percent:f} looks like a percent: write {percent / 100:f} for {percent:f} %")
    return v


# a fraction of 1 (stop_loss: 0.03); a percent written instead (3) is refused naming 0.03
Fraction = Annotated[float, BeforeValidator(check_fraction)]
Seconds = Annotated[float, Field(le=MAX_DURATION_S, allow_inf_nan=False)]

# Exits that protect capital always go out at market (never wait on a limit that may not fill).
MARKET_ONLY_REASONS = ("stop_loss", "trailing_stop", "sharp_drop")
LIMITABLE = ("entry", "take_profit", "reversal", "max_hold")


class StrategyConfigError(ValueError):
    """A strategy file that cannot be used; the message names the field path(s) and the file."""


def interval_ms(text: str) -> int:
    """'1m' → 60000, '60m' → 3600000, '4h', '1d', '30s'."""
    m = _INTERVAL_RE.match(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad interval {text[:40]!r}: use e.g. 30s, 1m, 15m, 60m, 4h, 1d")
    ms = int(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms > MAX_INTERVAL_MS:
        raise ValueError(f"interval {text!r} is longer than a year")
    return ms


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

    drop: Fraction = Field(gt=0, lt=1)
    lookback_s: Seconds = Field(gt=0)


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
    sell: Fraction = Field(gt=0, le=1)


class TrailingStop(_Model):
    activate_at: float = Field(ge=0, le=100)
    trail: Fraction = Field(gt=0, lt=1)


class SharpDrop(_Model):
    drop: Fraction = Field(gt=0, lt=1)
    within_s: float = Field(gt=0, le=86_400)


class Reversal(_Interval):
    """Sell all once gain ≥ min_gain while the fast MA is below the slow MA (closed candles)."""

    min_gain: float = Field(0.0, ge=0, le=100)
    fast_ma: int = Field(ge=1, le=1000)
    slow_ma: int = Field(ge=2, le=1000)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Reversal:
        if self.fast_ma >= self.slow_ma:
            raise ValueError("fast_ma must be smaller than slow_ma")
        return self


class ExitsConfig(_Model):
    take_profit: list[TakeProfitStep] = Field(default_factory=list)
    stop_loss: Fraction | None = Field(None, gt=0, lt=1)
    trailing_stop: TrailingStop | None = None
    sharp_drop: SharpDrop | None = None
    reversal: Reversal | None = None
    max_hold_s: Seconds | None = Field(None, gt=0)

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
    timeout_s: Seconds = Field(30, gt=0)
    on_timeout: Literal["market", "reprice", "cancel"] = "market"


class Cooldown(_Model):
    after_sell_s: Seconds = Field(0, ge=0)
    after_stop_loss_s: Seconds = Field(0, ge=0)  # also after a sharp-drop exit
    max_entries_per_day: int | None = Field(None, ge=1)


class StrategyConfig(_Model):
    """The whole strategy file."""

    market: str = Field(pattern=r"^KRW-[A-Z0-9]{1,15}$")
    # Upbit's bounds on one order's total (trader/upbit/rules.py)
    order_krw: Decimal | None = Field(None, ge=MIN_ORDER_KRW, le=MAX_ORDER_KRW, allow_inf_nan=False)
    order_fraction: Fraction | None = Field(None, gt=0, le=1)
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
    if _depth(data) > MAX_DEPTH:
        raise StrategyConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep")
    try:
        return StrategyConfig.model_validate(data)
    except ValidationError as exc:
        problems = format_errors(exc)
        raise StrategyConfigError(
            "; ".join(problems) + f" (in {source})"
        ) from None


def _depth(data: object, level: int = 0) -> int:
    """How deep mappings and lists nest, stopping once past MAX_DEPTH (no recursion limit hit)."""
    if level > MAX_DEPTH or not isinstance(data, dict | list):
        return level
    items = data.values() if isinstance(data, dict) else data
    return max((_depth(v, level + 1) for v in items), default=level + 1)


def load_strategy(path: str | Path) -> StrategyConfig:
    """Read and validate a strategy YAML file."""
    path = Path(path)
    return parse_strategy(read_yaml(path), str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class names it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key}: key given twice (lines {first} and {line}); keep one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> object:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[no-untyped-call]
        except (ValueError, OverflowError) as exc:  # 2024-13-45 looks like a date and is none
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a date ({exc})", node.start_mark) from None


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _UniqueKeyLoader.construct_yaml_timestamp)


def read_yaml(path: Path, kind: str = "strategy") -> object:
    """The parsed YAML of a `kind` file (strategy, portfolio); StrategyConfigError naming the file.

    Refused before parsing: a file over MAX_FILE_BYTES, bytes that are not UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StrategyConfigError(f"{path}: {kind} file of {size:,} bytes; at most {MAX_FILE_BYTES:,} "
                                      "(1 MiB) are read")
        raw = path.read_bytes()
    except OSError as exc:
        raise StrategyConfigError(f"cannot read {kind} file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StrategyConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                  f"offset {exc.start}); save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        where = str(exc).replace('"<unicode string>"', str(path))
        raise StrategyConfigError(f"{path}: not valid YAML: {where}") from None
    except RecursionError:
        raise StrategyConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2024-13-45 PyYAML builds
        raise StrategyConfigError(f"{path}: not valid YAML: {exc}") from None
