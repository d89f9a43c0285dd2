"""Parameter optimisation: spaces, cached trades, trials on the one backtest engine, studies, walk-forward."""
