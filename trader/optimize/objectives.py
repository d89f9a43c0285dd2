"""Objectives by name: a backtest summary → the number a study maximises (None = no score).

Every figure is the backtest summary's own (trader.metrics defines them): `return_pct` is exactly
`summary["return_pct"]`, so a backtest of the best strategy reproduces the study's best value.
None (an undefined ratio) makes the trial pruned rather than scored; so does a run with fewer
round trips than the spec's `min_trades` (checked in `trader.optimize.trial`), which is what
keeps a strategy that never trades from winning with a flat 0 %.
"""

from __future__ import annotations

from collections.abc import Callable

from trader.optimize.space import SpaceError

DRAWDOWN_PENALTY = 1.0  # profit_dd: each percent of max drawdown costs this many percent of return


def _figure(name: str) -> Callable[[dict], float | None]:
    def objective(summary: dict) -> float | None:
        value = summary.get(name)
        return None if value is None else float(value)

    objective.__name__ = name
    objective.__doc__ = f"summary[{name!r}]"
    return objective


def profit_dd(summary: dict) -> float | None:
    """return % + DRAWDOWN_PENALTY × max drawdown % (the drawdown is ≤ 0, so it subtracts)."""
    return float(summary["return_pct"]) + DRAWDOWN_PENALTY * float(summary["max_drawdown_pct"])


def total_profit_krw(summary: dict) -> float | None:
    """End equity − starting KRW (marked at the last price, net of fees paid)."""
    return float(summary["equity_end"]) - float(summary["krw_start"])


OBJECTIVES: dict[str, Callable[[dict], float | None]] = {
    "return_pct": _figure("return_pct"),
    "sharpe": _figure("sharpe"),
    "sortino": _figure("sortino"),
    "calmar": _figure("calmar"),
    "profit_factor": _figure("profit_factor"),
    "profit_dd": profit_dd,
    "total_profit_krw": total_profit_krw,
}


def objective(name: str) -> Callable[[dict], float | None]:
    """The objective called `name`; SpaceError (entry `objective`) listing the known names otherwise."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise SpaceError(f"objective: unknown name {name!r} (use one of {', '.join(OBJECTIVES)})") from None
