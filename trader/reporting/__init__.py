"""Reporting: metrics, charts, HTML/e-mail reports and failure alerts.

The public names are imported lazily so `python -m trader --help` does not load pandas and
matplotlib: `from trader.reporting import build_report` works as usual.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReportInputs": "trader.reporting.inputs",
    "load_inputs_from_db": "trader.reporting.inputs",
    "load_inputs_from_snapshots": "trader.reporting.inputs",
    "report_window": "trader.reporting.periods",
    "last_complete_day": "trader.reporting.periods",
    "Report": "trader.reporting.report",
    "build_report": "trader.reporting.report",
    "build_mime": "trader.reporting.mail",
    "send_smtp": "trader.reporting.mail",
    "write_eml": "trader.reporting.mail",
    "ReportMailError": "trader.reporting.mail",
    "build_failure_alert": "trader.reporting.alerts",
    "send_failure_alert": "trader.reporting.alerts",
    "compute_metrics": "trader.reporting.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trader.reporting' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
