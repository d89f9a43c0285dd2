"""Crash-test hook: `TRADER_CRASH_AT` kills the process with SIGKILL at a named point.

The fault suite proves that a `kill -9` anywhere around an order loses nothing and doubles
nothing. It sets `TRADER_CRASH_AT=<point>:<n>` (die at the n-th time `point` is reached) or
`any:<n>` (die at the n-th crash point of any name). Unset — the normal case — every call is a
dictionary-free no-op.
"""

from __future__ import annotations

import os
import signal
import sys

POINTS: tuple[str, ...] = (
    "before_record_order",  # intent decided, nothing stored
    "before_send",  # order recorded, request not sent
    "after_send",  # request sent, response not processed
    "before_record_fill",  # fill seen, not stored
    "after_record_fill",  # fill stored, ledger not updated
    "after_apply_fill",  # ledger updated, order not marked
    "after_mark_final",  # order final, strategy not told
    "before_cancel",
    "after_cancel",
)

_spec = os.environ.get("TRADER_CRASH_AT", "")
_target: str | None = None
_count = 0
_hits: dict[str, int] = {}
if _spec:
    _name, _, _n = _spec.partition(":")
    _target = _name or "any"
    _count = int(_n or 1)


def crashpoint(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if the environment asks for it."""
    if _target is None:
        return
    key = "any" if _target == "any" else name
    if key != _target:
        return
    _hits[key] = _hits.get(key, 0) + 1
    if _hits[key] == _count:
        sys.stderr.write(f"crashpoint: killing at {name} (hit {_count})\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
