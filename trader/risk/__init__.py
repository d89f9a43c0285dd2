"""The risk layer: the portfolio's rules (`spec`) and the gate that enforces them (`gate`)."""

from trader.risk.gate import Refusal, RiskEvent, RiskGate, RiskView, Verdict
from trader.risk.spec import AllocationSpec, RiskSpec, StopLossGuard, TradingState

__all__ = ["AllocationSpec", "Refusal", "RiskEvent", "RiskGate", "RiskSpec", "RiskView", "StopLossGuard",
           "TradingState", "Verdict"]
