"""`python -m trader doctor`: check that this machine can run the trader, and say what is missing.

Each check prints one line (ok / warn / FAIL) and never prints a secret. Exit status 1 when a
check that trading needs has failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REQUIRED_MODULES = ("numpy", "pandas", "pyarrow", "sqlalchemy", "httpx", "websockets", "orjson", "jwt",
                    "yaml", "pydantic", "matplotlib", "seaborn", "upbit")

Check = Callable[[], tuple[str, str]]  # -> (status, message)


def _python() -> tuple[str, str]:
    ok = sys.version_info[:2] >= (3, 11)
    return ("ok" if ok else "FAIL", f"Python {sys.version.split()[0]} (3.11+ needed)")


def _modules() -> tuple[str, str]:
    missing = []
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        hint = "run `make test` or pip install -r requirements.txt"
        return "FAIL", f"missing packages: {', '.join(missing)} ({hint})"
    return "ok", "required packages import"


def _data() -> tuple[str, str]:
    path = PACKAGE_ROOT / "data" / "KRW-ETH_15m_2024.parquet"
    return ("ok", f"demo data at {path}") if path.exists() else ("FAIL", f"demo data missing: {path}")


def _database() -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    from trader.config import load_settings

    settings = load_settings()
    url = settings.db_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any driver error: report it, redacted
        from trader.upbit.errors import redact

        return "FAIL", f"database {settings.describe()['database_url']}: {redact(str(exc))[:200]}"
    return "ok", f"database {settings.describe()['database_url']} reachable"


def _keys() -> tuple[str, str]:
    from trader.config import load_settings

    settings = load_settings()
    if settings.upbit_access_key and settings.upbit_secret_key:
        return "ok", "UPBIT_ACCESS_KEY / UPBIT_SECRET_KEY set (live trading possible)"
    return "warn", "UPBIT_ACCESS_KEY / UPBIT_SECRET_KEY not set: paper trading only (--paper)"


CHECKS: tuple[tuple[str, Check], ...] = (
    ("python", _python),
    ("packages", _modules),
    ("data", _data),
    ("database", _database),
    ("upbit keys", _keys),
)


def run_checks() -> int:
    failed = False
    for name, check in CHECKS:
        try:
            status, message = check()
        except Exception as exc:  # a check must never crash the doctor
            status, message = "FAIL", f"{type(exc).__name__}: {exc}"
        failed |= status == "FAIL"
        print(f"{status:>4}  {name:<11} {message}")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check that this machine can run the trader")
    parser.set_defaults(func=lambda args: run_checks())
