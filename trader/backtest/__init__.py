"""Backtests: the live StrategyEngine replayed over recorded candles or ticks, in process.

Entry points: `trader.backtest.api.run_backtest` (library) and `python -m trader backtest` (CLI).
"""
