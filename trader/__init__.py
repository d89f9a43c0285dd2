"""Upbit Autotrader: the domain core (no Prefect here; see tasks/ and flows/ for orchestration)."""

__version__ = "0.1.0"
