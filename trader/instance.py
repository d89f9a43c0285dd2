"""One trader per account and database: a guard taken before a run reconciles, held until it ends.

Two traders on one ledger and one exchange account sell each other's positions (issue 15), so a
run holds a lock that works across processes and machines and dies with its holder:
- PostgreSQL: a session-level `pg_advisory_lock` on a connection of its own, kept for the run.
  The key is a hash of the account's access key, the run's name (the order namespace) and the
  schema the ledger lives in (advisory locks are per database already). The holder's pid, host
  and start time ride in that connection's `application_name`, so another trader reads them from
  `pg_stat_activity` and nothing is left behind when the holder dies (no table to clean up).
- SQLite: an `fcntl.flock` on a lock file beside the database (`trader.db.<hash>.lock`), which
  the kernel drops when the process dies, even by SIGKILL; the file holds the holder's
  pid, host and start time. An in-memory database is private to its process: no guard.
The access key itself is never stored or logged: only a SHA-256 over it is used.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

KST = timezone(timedelta(hours=9), "KST")
_APP_PREFIX = "trader-guard "  # application_name of the lock connection: prefix pid host since


class InstanceHeld(RuntimeError):
    """Another trader holds this account and database; the message names it (pid, host, since)."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str  # ISO 8601 with its offset (KST)

    def describe(self) -> str:
        try:
            when = datetime.fromisoformat(self.since).astimezone(KST).strftime("%Y-%m-%d %H:%M:%S KST")
        except ValueError:
            when = self.since
        return f"pid {self.pid} on {self.host} since {when}"

    def encode(self) -> str:
        return f"{self.pid} {self.host} {self.since}"

    @classmethod
    def decode(cls, text: str) -> Holder | None:
        parts = text.strip().split(" ")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return cls(int(parts[0]), parts[1], parts[2])

    @classmethod
    def me(cls) -> Holder:
        # seconds only: application_name keeps 63 bytes, and a person reads it
        since = datetime.now(KST).replace(microsecond=0).isoformat()
        return cls(os.getpid(), socket.gethostname().split(".")[0] or "localhost", since)


def guard_key(access_key: str, name: str, scope: str = "") -> bytes:
    """SHA-256 over the account's access key, the run's name and the ledger's scope."""
    return hashlib.sha256("\0".join((access_key, name, scope)).encode()).digest()


def _refusal(holder: Holder | None) -> InstanceHeld:
    who = holder.describe() if holder else "a process whose details could not be read"
    return InstanceHeld(f"another trader holds this account and database: {who}")


class InstanceGuard:
    """Held by one run at a time per (account, name, database); `release()` frees it."""

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _NoGuard(InstanceGuard):
    def release(self) -> None:
        return None


class FileGuard(InstanceGuard):
    """`fcntl.flock` on a file beside a SQLite database (the kernel frees it with the process)."""

    def __init__(self, path: Path) -> None:
        import fcntl

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise _refusal(holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (Holder.me().encode() + "\n").encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # the file stays: unlinking it would let a waiter lock an inode nobody else opens
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> Holder | None:
    import time

    # the holder writes its line right after locking: a reader in between sees an empty file
    for _ in range(20):
        holder = Holder.decode(os.pread(fd, 512, 0).decode("utf-8", "replace"))
        if holder is not None:
            return holder
        time.sleep(0.05)
    return None


class PgGuard(InstanceGuard):
    """A session-level advisory lock on a connection kept open for the run."""

    def __init__(self, url: str, access_key: str, name: str) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        holder = Holder.me()
        self._engine = create_engine(
            url, poolclass=NullPool,
            connect_args={"application_name": (_APP_PREFIX + holder.encode())[:63]},
        )
        conn = self._engine.connect()
        try:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            schema = conn.execute(text("SELECT current_schema()")).scalar() or ""
            self.key = int.from_bytes(guard_key(access_key, name, str(schema))[:8], "big", signed=True)
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
                raise _refusal(self._holder(conn))
        except BaseException:
            conn.close()
            self._engine.dispose()
            raise
        self._conn: Any = conn

    def _holder(self, conn: Any) -> Holder | None:
        from sqlalchemy import text

        # a bigint advisory lock shows in pg_locks as classid = high 32 bits, objid = low, objsubid 1
        row = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ), {"hi": (self.key >> 32) & 0xFFFFFFFF, "lo": self.key & 0xFFFFFFFF}).first()
        name = str(row[0] or "") if row else ""
        return Holder.decode(name.removeprefix(_APP_PREFIX)) if name.startswith(_APP_PREFIX) else None

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.close()  # the session ends: the server drops its advisory locks
        finally:
            self._engine.dispose()


def acquire(db_url: str, access_key: str, name: str = "") -> InstanceGuard:
    """The guard for this database and account, or InstanceHeld naming the trader that has it."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            return _NoGuard()
        db_path = Path(database).resolve()
        digest = guard_key(access_key, name).hex()[:16]
        return FileGuard(db_path.with_name(f"{db_path.name}.{digest}.lock"))
    if backend == "postgresql":
        return PgGuard(db_url, access_key, name)
    raise ValueError(f"db_url: no single-instance guard for the {backend} backend (sqlite or postgresql)")
