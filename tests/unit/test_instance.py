"""The single-instance guard on SQLite (trader/instance.py): a file lock beside the database that
names its holder, frees with release() or the holder's death, and never holds the access key."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trader import instance
from trader.instance import Holder, InstanceHeld, acquire

KEY = "ak-" + "x" * 40
REFUSAL = re.compile(
    r"^another trader holds this account and database: pid (\d+) on (\S+) since "
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) KST$"
)


def test_a_second_guard_on_the_same_database_and_account_is_refused_naming_the_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 't.db'}"
    first = acquire(url, KEY, "")
    try:
        with pytest.raises(InstanceHeld) as exc:
            acquire(url, KEY, "")
        m = REFUSAL.match(str(exc.value))
        assert m, str(exc.value)
        import os

        assert int(m.group(1)) == os.getpid() and m.group(2) == Holder.me().host
    finally:
        first.release()
    acquire(url, KEY, "").release()  # free again after release()


def test_other_accounts_names_and_databases_do_not_conflict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    guards = [acquire(url, KEY, ""), acquire(url, KEY + "2", ""), acquire(url, KEY, "other"),
              acquire(f"sqlite:///{tmp_path / 'u.db'}", KEY, "")]
    for g in guards:
        g.release()


def test_the_lock_file_holds_no_key_only_the_holder(tmp_path: Path) -> None:
    guard = acquire(f"sqlite:///{tmp_path / 't.db'}", KEY, "")
    try:
        [lock] = tmp_path.glob("t.db.*.lock")
        assert KEY not in lock.name and KEY.encode() not in lock.read_bytes()
        holder = Holder.decode(lock.read_text())
        assert holder is not None and holder.since.endswith("+09:00")
    finally:
        guard.release()


def test_in_memory_databases_need_no_guard(tmp_path: Path) -> None:
    a, b = acquire("sqlite://", KEY), acquire("sqlite:///:memory:", KEY)
    a.release()
    b.release()
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_backend_is_refused_naming_db_url() -> None:
    with pytest.raises(ValueError, match="db_url: no single-instance guard for the mysql backend"):
        acquire("mysql://u@h/db", KEY)


def test_the_guard_dies_with_its_process_even_by_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    code = (
        "import sys, time; from trader.instance import acquire; "
        f"g = acquire({url!r}, {KEY!r}, ''); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(InstanceHeld, match=f"pid {child.pid} on "):
            acquire(url, KEY)
        child.kill()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    acquire(url, KEY).release()


def test_holder_description_is_kst_with_its_zone() -> None:
    h = Holder(1234, "host-a", "2026-12-03T12:04:05+00:00")
    assert h.describe() == "pid 1234 on host-a since 2026-12-03 21:04:05 KST"
    assert Holder.decode(h.encode()) == h
    assert Holder.decode("") is None and Holder.decode("garbage") is None


def test_an_unreadable_holder_still_refuses_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    first = acquire(url, KEY)
    try:
        [lock] = tmp_path.glob("t.db.*.lock")
        lock.write_text("")  # as if the holder had not written its line yet
        monkeypatch.setattr(time, "sleep", lambda s: None)
        with pytest.raises(InstanceHeld, match="a process whose details could not be read"):
            acquire(url, KEY)
    finally:
        first.release()
    assert instance.KST.utcoffset(None).total_seconds() == 9 * 3600
