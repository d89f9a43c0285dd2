"""The deflated Sharpe ratio (Bailey & López de Prado, 2014): is the best of N trials' Sharpe
ratios better than the best that N tries of a worthless strategy would show by luck?

With Sharpe ratios per period (here per day, not annualised):
- the expected maximum of N Sharpe ratios whose true value is 0 and whose variance across the
  trials is V:  SR0 = √V · ((1 − γ) · Z⁻¹(1 − 1/N) + γ · Z⁻¹(1 − 1/(N·e))), γ = Euler–Mascheroni;
- the probabilistic Sharpe ratio of the chosen strategy's SR over T returns with skewness g3 and
  kurtosis g4 (3 for normal returns) against SR0:
  DSR = Z( (SR − SR0) · √(T − 1) / √(1 − g3·SR + (g4 − 1)/4 · SR²) ).
DSR is a probability: near 1, the chosen strategy's Sharpe is unlikely to be luck of the search;
at 0.5 or below it is what the search alone would have produced. None when undefined (fewer than
2 trials with a Sharpe, fewer than 3 returns, zero variance of returns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_Z = NormalDist()


def expected_max_sharpe(variance: float, n_trials: int) -> float:
    """SR0: the expected best Sharpe of `n_trials` zero-skill trials with this Sharpe variance."""
    if n_trials < 2 or variance <= 0:
        return 0.0
    a = _Z.inv_cdf(1 - 1 / n_trials)
    b = _Z.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * a + EULER_GAMMA * b)


def probabilistic_sharpe(sr: float, sr0: float, t: int, skew: float, kurtosis: float) -> float | None:
    """P(true Sharpe > sr0) given the observed per-period `sr` over `t` returns."""
    if t < 2:
        return None
    denom = 1 - skew * sr + (kurtosis - 1) / 4 * sr * sr
    if denom <= 0:
        return None
    return _Z.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom))


def deflated_sharpe(sr: float, trial_sharpes: Sequence[float], t: int, skew: float,
                    kurtosis: float, n_trials: int | None = None) -> float | None:
    """DSR of per-period `sr`; `trial_sharpes` are the per-period Sharpe ratios of the trials
    (their variance is V; N is their count unless `n_trials` says how many were tried)."""
    values = [float(x) for x in trial_sharpes if x is not None and math.isfinite(x)]
    n = n_trials if n_trials is not None else len(values)
    if len(values) < 2 or n < 2:
        return None
    variance = float(np.var(values, ddof=1))
    return probabilistic_sharpe(sr, expected_max_sharpe(variance, n), t, skew, kurtosis)


def return_moments(returns: Sequence[float] | np.ndarray) -> dict[str, float] | None:
    """Per-period Sharpe (mean / std, ddof=1), skewness and (non-excess) kurtosis of returns."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3:
        return None
    sd = float(r.std(ddof=1))
    if sd < 1e-12:
        return None
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2
    return {"sharpe": float(r.mean()) / sd, "skew": skew, "kurtosis": kurt, "n": int(r.size)}
