"""The risk rules and the allocation of a portfolio, as validated pydantic models.

They live beside the gate that enforces them (the portfolio file only reads them from YAML).
Every fraction is of equity (0.03 = 3 %); a value that looks like a percent (`3`) is refused with
the fraction to write instead, because `daily_loss_limit: 3` would otherwise never fire.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trader.strategy.config import check_fraction  # the percent hint, shared with the strategy file


class TradingState(StrEnum):
    """NautilusTrader's trading state: all orders / exits only / no new entries until reset."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StopLossGuard(_Model):
    """After `count` stop-loss exits within `window_s`, no entries for `pause_s` (freqtrade's guard)."""

    count: int = Field(ge=1)
    window_s: float = Field(gt=0)
    per_market: bool = False
    pause_s: float = Field(gt=0)


class RiskSpec(_Model):
    """The `risk:` section: only `max_open_positions` is required."""

    max_open_positions: int = Field(ge=1)
    max_exposure_per_market: Decimal | None = Field(None, gt=0, le=1)
    max_exposure_total: Decimal | None = Field(None, gt=0, le=1)
    daily_loss_limit: Decimal | None = Field(None, gt=0, lt=1)
    max_drawdown_halt: Decimal | None = Field(None, gt=0, lt=1)
    stop_loss_guard: StopLossGuard | None = None
    state: TradingState = TradingState.ACTIVE

    @field_validator("max_exposure_per_market", "max_exposure_total", "daily_loss_limit",
                     "max_drawdown_halt", mode="before")
    @classmethod
    def _fraction(cls, v: object) -> object:
        return check_fraction(v)


class AllocationSpec(_Model):
    """How much KRW an entry gets: a fixed amount, a fraction of equity, or an equal split of the
    free KRW among the position slots left (free / (max_open_positions - open))."""

    mode: Literal["fixed_krw", "fraction", "equal"]
    krw: Decimal | None = Field(None, ge=5000)
    fraction: Decimal | None = Field(None, gt=0, le=1)

    @field_validator("fraction", mode="before")
    @classmethod
    def _fraction(cls, v: object) -> object:
        return check_fraction(v)

    @model_validator(mode="after")
    def _fields_of_mode(self) -> AllocationSpec:
        need = {"fixed_krw": "krw", "fraction": "fraction", "equal": None}[self.mode]
        given = [name for name in ("krw", "fraction") if getattr(self, name) is not None]
        if need is not None and need not in given:
            raise ValueError(f"mode {self.mode} needs `{need}`")
        extra = [name for name in given if name != need]
        if extra:
            raise ValueError(f"mode {self.mode} takes no `{extra[0]}`")
        return self
