"""The portfolio file (`portfolio.yaml`): which markets, which strategy each runs, how money is
allocated and the risk rules, validated like the strategy file (errors name the field path).

    markets: [KRW-BTC, KRW-ETH]            # or {top: 10, by: value_24h, min_price: 100, ...}
    strategy: default.yaml                 # relative to this file; its `market` key is ignored
    strategies: {KRW-ETH: eth.yaml}        # optional overrides
    allocation: {mode: equal}              # fixed_krw (krw) | fraction (of equity) | equal
    risk: {max_open_positions: 2, daily_loss_limit: 0.03}

`load_portfolio(path)` / `parse_portfolio(data, base_dir)` give a `PortfolioSpec`;
`PortfolioSpec.from_strategy(config)` makes a single-market strategy a portfolio of one.
`select_markets(rows, rule)` is the dynamic selection (freqtrade's VolumePairList) over Upbit's
market list joined with its tickers (`join_listing`); it is pure, the caller fetches the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from trader.risk.spec import AllocationSpec, RiskSpec
from trader.strategy.config import (
    StrategyConfig,
    StrategyConfigError,
    format_errors,
    parse_strategy,
    read_yaml,
)

_MARKET_RE = re.compile(r"^KRW-[A-Z0-9]{1,15}$")
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# a strategy file's own market is ignored in a portfolio: it is validated with this one, then replaced
_PLACEHOLDER = "KRW-BTC"


class PortfolioConfigError(StrategyConfigError):
    """A portfolio file that cannot be used; the message names the field path(s) and the file."""


def _market_code(v: object) -> object:
    if not isinstance(v, str) or not _MARKET_RE.match(v):
        raise ValueError(f"{v!r} is not a KRW market code such as KRW-BTC")
    return v


Market = Annotated[str, BeforeValidator(_market_code)]


def _no_duplicates(codes: list[str]) -> list[str]:
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise ValueError(f"{code} is listed twice")
        seen.add(code)
    return codes


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketRule(_Model):
    """Dynamic selection: the top N KRW markets by 24-hour traded value, after the filters.

    `include` markets are always selected when Upbit lists them (they count towards `top` and skip
    the price/value filters, not the warning filter); `exclude` markets never are.
    """

    top: int = Field(ge=1, le=300)
    by: Literal["value_24h"] = "value_24h"
    min_price: Decimal | None = Field(None, ge=0)
    min_value_24h: Decimal | None = Field(None, ge=0)
    exclude: list[Market] = Field(default_factory=list)
    include: list[Market] = Field(default_factory=list)
    exclude_warnings: bool = True
    refresh_s: float = Field(3600, ge=60)

    @field_validator("exclude", "include")
    @classmethod
    def _unique(cls, codes: list[str]) -> list[str]:
        return _no_duplicates(codes)

    @model_validator(mode="after")
    def _consistent(self) -> MarketRule:
        both = sorted(set(self.include) & set(self.exclude))
        if both:
            raise ValueError(f"{', '.join(both)} is in both include and exclude")
        if len(self.include) > self.top:
            raise ValueError(f"include lists {len(self.include)} markets, more than top ({self.top})")
        return self


def _markets_kind(v: Any) -> str | None:
    return "list" if isinstance(v, list) else "rule" if isinstance(v, dict) else None


Markets = Annotated[
    Annotated[list[Market], Field(min_length=1), Tag("list")] | Annotated[MarketRule, Tag("rule")],
    Discriminator(_markets_kind, custom_error_type="markets",
                  custom_error_message="should be a list of market codes or a mapping {top: N, ...}"),
]


class _PortfolioFile(_Model):
    """The file as written; paths still unresolved."""

    name: str | None = Field(None, pattern=_NAME_RE)
    markets: Markets
    strategy: str = Field(min_length=1)
    strategies: dict[Market, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    allocation: AllocationSpec | None = None
    risk: RiskSpec

    @field_validator("markets")
    @classmethod
    def _unique(cls, v: list[str] | MarketRule) -> list[str] | MarketRule:
        return _no_duplicates(v) if isinstance(v, list) else v


def _untag(line: str) -> str:
    """`markets.list.1: …` → `markets.1: …` (the discriminator's tag is not a key of the file)."""
    for tag in ("list", "rule"):
        for sep in (".", ":"):
            prefix = f"markets.{tag}{sep}"
            if line.startswith(prefix):
                return "markets" + sep + line[len(prefix):]
    return line


@dataclass(frozen=True)
class PortfolioSpec:
    """A validated portfolio: its markets (a static list, or `selection` for the dynamic rule),
    each market's strategy, the allocation (None: each strategy's own size) and the risk rules."""

    name: str
    markets: tuple[str, ...]
    selection: MarketRule | None
    default: StrategyConfig
    overrides: Mapping[str, StrategyConfig]
    risk: RiskSpec
    allocation: AllocationSpec | None = None
    source: str = "<dict>"
    strategy_files: Mapping[str, Path] = field(default_factory=dict)  # "default" / market -> path

    @property
    def is_dynamic(self) -> bool:
        return self.selection is not None

    def strategy_for(self, market: str) -> StrategyConfig:
        """The strategy `market` runs, with its market set."""
        if not self.is_dynamic and market not in self.markets:
            raise ValueError(f"{market} is not one of the portfolio's markets ({', '.join(self.markets)})")
        _market_code(market)
        config = self.overrides.get(market, self.default)
        return config if config.market == market else config.model_copy(update={"market": market})

    @classmethod
    def from_strategy(cls, config: StrategyConfig, source: str = "<strategy>") -> PortfolioSpec:
        """A single-market strategy file as a portfolio of one: one position, no other risk rule."""
        return cls(name=config.market, markets=(config.market,), selection=None, default=config,
                   overrides={}, risk=RiskSpec(max_open_positions=1), source=source)


def _load_strategy(path: Path, where: str, problems: list[str]) -> StrategyConfig | None:
    try:
        data = read_yaml(path)
        if isinstance(data, dict):
            data = {**data, "market": _PLACEHOLDER}
        return parse_strategy(data, str(path))
    except StrategyConfigError as exc:
        problems.append(f"{where}: {exc}")
        return None


def parse_portfolio(data: object, base_dir: str | Path, source: str = "<dict>") -> PortfolioSpec:
    """Validate an already-parsed mapping; strategy paths are relative to `base_dir`."""
    if not isinstance(data, dict):
        raise PortfolioConfigError(f"{source}: a portfolio file must be a YAML mapping")
    try:
        raw = _PortfolioFile.model_validate(data)
    except ValidationError as exc:
        raise PortfolioConfigError("; ".join(_untag(line) for line in format_errors(exc))
                                   + f" (in {source})") from None
    base = Path(base_dir)
    problems: list[str] = []
    static = tuple(raw.markets) if isinstance(raw.markets, list) else ()
    rule = raw.markets if isinstance(raw.markets, MarketRule) else None
    for market in raw.strategies:
        if rule is None and market not in static:
            problems.append(f"strategies.{market}: not one of markets ({', '.join(static)})")
        elif rule is not None and market in rule.exclude:
            problems.append(f"strategies.{market}: excluded by markets.exclude")
    files = {"default": base / raw.strategy, **{m: base / p for m, p in raw.strategies.items()}}
    default = _load_strategy(files["default"], "strategy", problems)
    overrides = {m: _load_strategy(files[m], f"strategies.{m}", problems) for m in raw.strategies}
    if problems or default is None:
        raise PortfolioConfigError("; ".join(problems) + f" (in {source})")
    name = raw.name or (Path(source).stem if source != "<dict>" else "portfolio")
    return PortfolioSpec(name=name, markets=static, selection=rule, default=default,
                         overrides={m: c for m, c in overrides.items() if c is not None},
                         risk=raw.risk, allocation=raw.allocation, source=source, strategy_files=files)


def load_portfolio(path: str | Path) -> PortfolioSpec:
    """Read and validate a portfolio YAML file (and the strategy files it names)."""
    path = Path(path)
    try:
        data = read_yaml(path, "portfolio")
    except StrategyConfigError as exc:
        raise PortfolioConfigError(str(exc)) from None
    return parse_portfolio(data, path.parent, str(path))


# -- dynamic selection ------------------------------------------------------------------------

def join_listing(markets: Iterable[Mapping[str, Any]],
                 tickers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`/v1/market/all?is_details=true` rows with their `/v1/ticker` fields added (by market)."""
    by_code = {t["market"]: t for t in tickers}
    return [{**by_code.get(m["market"], {}), **m} for m in markets]


def has_warning(row: Mapping[str, Any]) -> bool:
    """Upbit's investment warning or any caution flag, in the old or the new listing format."""
    if str(row.get("market_warning") or "NONE").upper() != "NONE":
        return True
    event = row.get("market_event") or {}
    caution = event.get("caution") or {}
    return bool(event.get("warning")) or any(bool(v) for v in caution.values())


def _number(v: object) -> Decimal | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        d = Decimal(str(v))
    except ArithmeticError:
        return None
    return d if d.is_finite() else None


def select_markets(rows: Iterable[Mapping[str, Any]], rule: MarketRule) -> list[str]:
    """The markets the rule selects, highest 24-hour traded value first (ties by code).

    A row needs `market`; `trade_price` and `acc_trade_price_24h` come from the ticker (a market
    without them can only be selected through `include`). Only KRW markets are considered.
    """
    values: dict[str, Decimal] = {}
    eligible: list[str] = []
    included: list[str] = []
    exclude, include = set(rule.exclude), set(rule.include)
    for row in rows:
        code = row.get("market")
        if not isinstance(code, str) or not _MARKET_RE.match(code) or code in exclude or code in values:
            continue
        if rule.exclude_warnings and has_warning(row):
            continue
        value = _number(row.get("acc_trade_price_24h"))
        price = _number(row.get("trade_price"))
        values[code] = value if value is not None else Decimal(0)
        if code in include:
            included.append(code)
        elif (value is not None and price is not None
              and (rule.min_price is None or price >= rule.min_price)
              and (rule.min_value_24h is None or value >= rule.min_value_24h)):
            eligible.append(code)

    def rank(code: str) -> tuple[Decimal, str]:
        return -values[code], code

    chosen = included + sorted(eligible, key=rank)[: rule.top - len(included)]
    return sorted(chosen, key=rank)
