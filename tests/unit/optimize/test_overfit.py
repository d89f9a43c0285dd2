"""Deflated Sharpe ratio: the paper's worked example and cases computed by hand."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from trader.optimize.overfit import (
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    return_moments,
)


def test_bailey_lopez_de_prado_2014_example():
    # The Deflated Sharpe Ratio (2014), numerical example: 100 trials, variance of the trials'
    # annualised Sharpe 0.5, 5 years of daily returns (T = 1250, 250 a year), best annualised
    # Sharpe 2.5, skewness -3, kurtosis 10 → SR0 ≈ 0.1132 per day and DSR ≈ 0.9004.
    sr0 = expected_max_sharpe(0.5 / 250, 100)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_probabilistic_sharpe_by_hand():
    # sr 0.2 vs sr0 0.1 over 101 normal returns: z = 0.1 · √100 / √(1 + 2/4 · 0.04) = 1 / √1.02
    z = 1 / math.sqrt(1.02)
    assert z == pytest.approx(0.990148, abs=1e-6)
    assert probabilistic_sharpe(0.2, 0.1, 101, 0.0, 3.0) == pytest.approx(NormalDist().cdf(z), abs=1e-12)
    assert probabilistic_sharpe(0.2, 0.1, 101, 0.0, 3.0) == pytest.approx(0.8389, abs=1e-4)


def test_deflated_sharpe_by_hand():
    # two trials with per-day Sharpe 0.0 and 0.2: V = 0.02, N = 2, Z⁻¹(1 − 1/2) = 0, so
    # SR0 = √0.02 · γ · Z⁻¹(1 − 1/(2e)) = 0.141421 · 0.577216 · 0.900755 ≈ 0.073533
    z2 = NormalDist().inv_cdf(1 - 1 / (2 * math.e))
    assert z2 == pytest.approx(0.9008, abs=1e-3)
    sr0 = math.sqrt(0.02) * 0.5772156649015329 * z2
    assert expected_max_sharpe(0.02, 2) == pytest.approx(sr0, rel=1e-12)
    got = deflated_sharpe(0.2, [0.0, 0.2], 101, 0.0, 3.0)
    want = NormalDist().cdf((0.2 - sr0) * 10 / math.sqrt(1.02))
    assert got == pytest.approx(want, rel=1e-12)
    # more trials with the same spread raise the bar: the same Sharpe is less convincing
    assert deflated_sharpe(0.2, [0.0, 0.2] * 50, 101, 0.0, 3.0) < got


def test_undefined_cases_are_none():
    assert deflated_sharpe(0.2, [0.1], 100, 0.0, 3.0) is None
    assert probabilistic_sharpe(0.2, 0.1, 1, 0.0, 3.0) is None
    assert return_moments([0.01, 0.01, 0.01]) is None
    assert return_moments([0.01, 0.02]) is None


def test_return_moments_by_hand():
    # mean 0.005; deviations ±0.005, ±0.015: sample sd √(5e-4 / 3); symmetric → skew 0;
    # m2 = 1.25e-4, m4 = 2.5625e-8 → kurtosis 1.64
    m = return_moments([0.01, -0.01, 0.02, 0.0])
    assert m["sharpe"] == pytest.approx(0.005 / math.sqrt(5e-4 / 3), rel=1e-12)
    assert m["skew"] == pytest.approx(0.0, abs=1e-12)
    assert m["kurtosis"] == pytest.approx(1.64, rel=1e-12)
    assert m["n"] == 4
