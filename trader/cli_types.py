"""argparse `type=` validators shared by every `trader` command: a bad value is a usage error.

argparse turns the `ArgumentTypeError` raised here into `error: argument --krw: <message>` and
exit status 2, so each message says only what is wrong with the value and what to write instead.
Validators that check without converting (dates, speeds, output paths) hand back the text as
typed, so the commands (and the child commands they start) keep receiving what they did before.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

MAX_KRW = Decimal("1e15")  # 1,000조 KRW: far past any account; 1e30 is a typo
MAX_SPEED = 1e6  # market-clock speed × real time ('max' = as fast as possible)
DB_BACKENDS = ("sqlite", "postgresql")  # what trader/storage migrates and tests
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def kst_time(text: str) -> str:
    """An ISO 8601 date or date-time (KST unless it carries an offset); returned as typed."""
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date/time: write e.g. 2024-03-01 or 2024-03-01T09:00 (KST unless an offset "
            "such as +09:00 is given)") from None
    return text


def _finite(text: str) -> float:
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(maximum: float) -> Callable[[str], float]:
    """A type for a finite number > 0 and ≤ `maximum` (seconds, days, ...)."""

    def check(text: str) -> float:
        value = _finite(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is more than the largest allowed, {maximum:g}")
        return value

    check.__name__ = "positive number"
    return check


def int_range(low: int, high: int) -> Callable[[str], int]:
    """A type for a whole number in [low, high]."""

    def check(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low} and {high}")
        return value

    check.__name__ = "whole number"
    return check


def krw(text: str) -> Decimal:
    """A KRW amount > 0 (commas and underscores allowed: 10,000,000), at most MAX_KRW."""
    try:
        value = Decimal(text.replace(",", "").replace("_", "").strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a KRW amount: write e.g. 10000000") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite KRW amount")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 KRW")
    if value > MAX_KRW:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_KRW:,f} KRW")
    return value


def speed(text: str) -> float | None:
    """A replay speed: a finite number > 0 (× real time, ≤ MAX_SPEED) or 'max' (None)."""
    if text.strip().lower() == "max":
        return None
    try:
        value = _finite(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: write a speed > 0 (× real time) or 'max'") from None
    if not 0 < value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0 and ≤ {MAX_SPEED:g}, or 'max'")
    return value


def speed_text(text: str) -> str:
    """`speed`, checked but handed back as typed (for options passed on to a child command)."""
    speed(text)
    return text


port = int_range(0, 65535)
port.__name__ = "port"


def host(text: str) -> str:
    """An IP address or a host name (RFC 1123 labels); `256.1.1.1` is neither."""
    name = text.strip()
    try:
        ipaddress.ip_address(name.strip("[]"))
        return name
    except ValueError:
        pass
    labels = name.rstrip(".").split(".")
    if (not name or len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):  # all-numeric last label: a mistyped IPv4 address
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or host name")
    return name


def db_url(text: str) -> str:
    """A SQLAlchemy URL of a database the product runs on (sqlite:///var/t.db, postgresql+psycopg://…),
    with a driver installed here."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a database URL: write e.g. sqlite:///var/trader.db or "
            "postgresql+psycopg://user@host/db") from None
    if url.get_backend_name() not in DB_BACKENDS:
        raise argparse.ArgumentTypeError(f"unknown database kind {url.get_backend_name()!r}: use "
                                         "sqlite:///FILE or postgresql+psycopg://user@host/db")
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise argparse.ArgumentTypeError(f"no driver {url.drivername!r} here: use postgresql+psycopg") \
            from None
    return text


def _check_writable_parent(path: Path, text: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: folder {str(parent)!r} is not writable")


def out_file(text: str) -> str:
    """A file to write ('-' = stdout): its folder must exist and be writable; not a folder itself."""
    if text == "-":
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not writable")
    _check_writable_parent(path, text)
    return text


def out_dir(text: str) -> Path:
    """A folder to write into: an existing writable folder, or a new one whose parent can be written
    (made by the command); a file is not a folder."""
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{text!r} is not writable")
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: folder {str(ancestor)!r} is not writable")
    return path


def market(text: str) -> str:
    """An Upbit KRW market code, e.g. KRW-BTC."""
    if not re.fullmatch(r"KRW-[A-Z0-9]{1,15}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a KRW market code such as KRW-BTC")
    return text


def existing_dir(text: str) -> Path:
    """A folder that exists (to read from)."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder")
    return path


seed = int_range(0, 2**32 - 1)
seed.__name__ = "seed"
ticks_per_candle = int_range(1, 1000)
ticks_per_candle.__name__ = "ticks per candle"


def iso_date(text: str) -> date:
    """A calendar day YYYY-MM-DD (a trading day in KST)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write YYYY-MM-DD, e.g. 2024-03-01") \
            from None


def krw_or_zero(text: str) -> Decimal:
    """`krw`, but 0 allowed (a starting balance)."""
    if text.strip() in ("0", "0.0"):
        return Decimal(0)
    return krw(text)


def http_url(text: str) -> str:
    """An http(s) URL with a host (a simulator's base URL, e.g. http://127.0.0.1:8765)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http URL such as http://127.0.0.1:8765")
    return text
