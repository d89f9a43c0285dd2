"""Start and stop the simulator: in a background thread (tests) or as a subprocess (demo, --paper).

`SimulatorThread(**opts)` runs uvicorn on 127.0.0.1 (port 0 by default) in a daemon thread and
exposes the in-process `Exchange`; `SimulatorProcess(**opts)` runs `python -m trader sim` and
waits for its ready line. Both give `base_url`, `ws_url`, `private_ws_url`, the keys, the market
and a `control` client for the /_sim/ endpoints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from trader.config import SIM_ACCESS_KEY, SIM_SECRET_KEY

READY_PREFIX = "Upbit simulator listening on "
_READY_RE = re.compile(r"Upbit simulator listening on (http://\S+)")


class SimControl:
    """A small synchronous client for the /_sim/ controls."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self._client = httpx.Client(base_url=base_url, timeout=timeout)

    def _post(self, path: str, body: dict | None = None) -> dict:
        r = self._client.post(f"/_sim/{path}", json=body or {})
        r.raise_for_status()
        return r.json()

    def state(self) -> dict:
        r = self._client.get("/_sim/state")
        r.raise_for_status()
        return r.json()

    def pause(self) -> dict:
        return self._post("pause")

    def resume(self, speed: float | str | None = None) -> dict:
        return self._post("resume", {} if speed is None else {"speed": speed})

    def step(self, n: int = 1) -> dict:
        return self._post("step", {"n": n})

    def push_prices(self, prices: list[float], volumes: list[float] | None = None,
                    timestamps: list[int] | None = None, *, mode: str | None = None,
                    market: str | None = None, interval_ms: int = 1000) -> dict:
        body: dict[str, Any] = {"prices": list(prices), "interval_ms": interval_ms}
        if volumes is not None:
            body["volumes"] = list(volumes)
        if timestamps is not None:
            body["timestamps"] = list(timestamps)
        if mode is not None:
            body["mode"] = mode
        if market is not None:
            body["market"] = market
        return self._post("path", body)

    def drop_websockets(self) -> dict:
        return self._post("drop_websockets")

    def fail_next(self, n: int = 1, status: int = 500) -> dict:
        return self._post("fail", {"n": n, "status": status})

    def set_latency(self, ms: float) -> dict:
        return self._post("latency", {"ms": ms})

    def reset(self, krw: float | int | str | Decimal | None = None) -> dict:
        return self._post("reset", {} if krw is None else {"krw": str(krw)})

    def fund(self, currency: str, amount: float | str | Decimal,
             avg_buy_price: float | str | None = None) -> dict:
        body: dict[str, Any] = {"currency": currency, "amount": str(amount)}
        if avg_buy_price is not None:
            body["avg_buy_price"] = str(avg_buy_price)
        return self._post("fund", body)

    def set_rate_limit(self, enabled: bool) -> dict:
        return self._post("rate_limit", {"enabled": enabled})

    def close(self) -> None:
        self._client.close()


class _Endpoints:
    host: str
    port: int
    access_key: str
    secret_key: str
    market: str
    control: SimControl

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/websocket/v1"

    @property
    def private_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/websocket/v1/private"

    @property
    def ws_base_url(self) -> str:
        """What the official SDK takes as `websocket_base_url` (it appends /websocket/v1)."""
        return f"ws://{self.host}:{self.port}"


class SimulatorThread(_Endpoints):
    """The simulator served by uvicorn in a daemon thread of this process.

    Keyword options are `SimConfig` fields (speed=None means max). Use as a context manager, or
    call start()/stop().
    """

    def __init__(self, **opts: Any) -> None:
        from trader.sim.app import SimConfig, Simulator

        names = {f.name for f in fields(SimConfig)}
        unknown = set(opts) - names
        if unknown:
            raise TypeError(f"unknown simulator options: {sorted(unknown)}")
        opts.setdefault("port", 0)
        if str(opts.get("speed")) == "max":
            opts["speed"] = None
        if "krw" in opts:
            opts["krw"] = Decimal(str(opts["krw"]))
        if opts.get("data") is not None:
            opts["data"] = Path(opts["data"])
        self.config = SimConfig(**opts)
        self.sim = Simulator(self.config)
        self.exchange = self.sim.exchange
        self.market = self.sim.market
        self.host = self.config.host
        self.port = self.config.port
        self.access_key = self.config.access_key
        self.secret_key = self.config.secret_key
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> SimulatorThread:
        import uvicorn

        config = uvicorn.Config(self.sim.asgi(), host=self.host, port=self.port, log_level="warning",
                                lifespan="on", ws_ping_interval=None, access_log=False,
                                ws="websockets-sansio")
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, name="upbit-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("simulator thread died during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("simulator did not start in time")
            time.sleep(0.01)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self.control = SimControl(self.base_url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if getattr(self, "control", None) is not None:
            self.control.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorProcess(_Endpoints):
    """`python -m trader sim` as a subprocess; `args` are extra CLI flags (e.g. ["--speed", "max"])."""

    def __init__(self, args: list[str] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 access_key: str = SIM_ACCESS_KEY, secret_key: str = SIM_SECRET_KEY,
                 python: str | None = None, cwd: str | Path | None = None) -> None:
        self.args = list(args or [])
        self.host = host
        self.port = port
        self.access_key = access_key
        self.secret_key = secret_key
        self.market = "KRW-ETH"
        self.python = python or sys.executable
        self.cwd = cwd or Path(__file__).resolve().parents[2]
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> SimulatorProcess:
        cmd = [self.python, "-m", "trader", "sim", "--host", self.host, "--port", str(self.port),
               "--access-key", self.access_key, "--secret-key", self.secret_key, *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=self.cwd, env=env)
        assert self.proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        result: list[str] = []

        def reader() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                m = _READY_RE.search(line)
                if m and not result:
                    result.append(m.group(1))
            # keep draining so the child never blocks on a full pipe

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        while not result:
            if self.proc.poll() is not None:
                raise RuntimeError("simulator exited during start-up:\n" + "".join(lines[-20:]))
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("simulator did not print its ready line in time")
            time.sleep(0.02)
        url = result[0]
        hostport = url.split("://", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        for line in lines:
            m = re.search(r"market (\S+)", line)
            if m:
                self.market = m.group(1).rstrip(",")
        self.control = SimControl(self.base_url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        if getattr(self, "control", None) is not None:
            self.control.close()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
