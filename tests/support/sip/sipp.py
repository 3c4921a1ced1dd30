"""sipp (Debian's sip-tester, installed by `make test` when missing) on 127.0.0.1.

``Sipp`` runs one scenario of this folder (or any XML path) as a UAS or a UAC on free
ports, waits for it, and returns its exit status and message trace; leaving its
``async with`` block kills it, so no sipp outlives a test. sipp exits 0 when every call
passed, 1 when one failed.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from parley_devstack._proc import parent_death_signal
from tests.support.lifecycle import Started

HERE = Path(__file__).parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SippResult:
    returncode: int
    messages: str  # the SIP messages sipp sent and received (-trace_msg)
    errors: str  # its unexpected-message and failure log (-trace_err)
    screen: str  # its final statistics screen

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def scenario_path(name: str | Path) -> Path:
    """A scenario of this folder by name ("uas_answer") or any XML path."""
    path = Path(name)
    if path.suffix != ".xml":
        path = HERE / f"{name}.xml"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_udp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def free_media_port() -> int:
    """An even UDP port with the three above it free (sipp's RTP, RTCP and video pairs)."""
    for _ in range(200):
        port = random.randrange(20_000, 60_000, 2)
        if all(_udp_free(p) for p in range(port, port + 4)):
            return port
    raise RuntimeError("no free media port range")


class Sipp(Started):
    """One sipp process running ``scenario``.

    As a UAS (no ``remote``) it listens on ``port`` (a free one when 0); as a UAC it calls ``remote``
    ("host:port") ``calls`` times, ``limit`` at once, at ``rate`` calls a second, each
    to ``service`` (the user part) and held ``duration_ms`` (the scenario's <pause/>).
    """

    def __init__(
        self,
        scenario: str | Path,
        workdir: Path,
        *,
        remote: str | None = None,
        calls: int = 1,
        limit: int | None = None,
        rate: float | None = None,
        service: str | None = None,
        duration_ms: int | None = None,
        rtp_echo: bool = True,
        transport: str = "udp",
        trace_messages: bool = True,
        timeout_s: float = 90.0,
        extra_args: tuple[str, ...] = (),
        port: int = 0,
    ) -> None:
        binary = shutil.which("sipp")
        assert binary, "sipp is missing: `make test` installs sip-tester (apt, as root)"
        self.binary = binary
        self.scenario = scenario_path(scenario)
        self.workdir = workdir
        self.remote = remote
        self.calls = calls
        self.limit = limit
        self.rate = rate
        self.service = service
        self.duration_ms = duration_ms
        self.rtp_echo = rtp_echo
        self.transport = transport
        self.trace_messages = trace_messages
        self.timeout_s = timeout_s
        self.extra_args = extra_args
        self._fixed_port = port  # a UAS on this port (a trunk the service was told of)
        self.port = 0
        self.media_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._result: SippResult | None = None
        self._run = 0

    @property
    def is_uas(self) -> bool:
        return self.remote is None

    @property
    def running(self) -> bool:
        """sipp has not exited (a UAS still waits for its calls)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def uri(self, user: str) -> str:
        """A SIP URI that reaches this sipp (as a UAS) for ``user``."""
        return f"sip:{user}@{HOST}:{self.port};transport={self.transport}"

    def _paths(self) -> dict[str, Path]:
        base = self.workdir / f"sipp-{self.scenario.stem}-{self._run}"
        return {
            "messages": base.with_suffix(".messages.log"),
            "errors": base.with_suffix(".errors.log"),
            "screen": base.with_suffix(".screen.log"),
            "stdout": base.with_suffix(".stdout.log"),
        }

    def _command(self) -> list[str]:
        paths = self._paths()
        cmd = [
            self.binary,
            "-sf",
            str(self.scenario),
            "-i",
            HOST,
            "-p",
            str(self.port),
            "-mi",
            HOST,
            "-mp",
            str(self.media_port),
            "-t",
            "u1" if self.transport == "udp" else "t1",
            "-m",
            str(self.calls),
            "-nostdin",
            "-timeout",
            f"{int(self.timeout_s)}s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
            str(paths["errors"]),
            "-trace_screen",
            "-screen_file",
            str(paths["screen"]),
        ]
        if self.trace_messages:
            cmd += ["-trace_msg", "-message_file", str(paths["messages"])]
        if self.rtp_echo:
            cmd.append("-rtp_echo")
        if self.limit is not None:
            cmd += ["-l", str(self.limit)]
        if self.rate is not None:
            cmd += ["-r", str(self.rate)]
        if self.service is not None:
            cmd += ["-s", self.service]
        if self.duration_ms is not None:
            cmd += ["-d", str(self.duration_ms)]
        cmd += list(self.extra_args)
        if self.remote is not None:
            cmd.append(self.remote)
        return cmd

    async def start(self) -> None:
        """Start sipp; a UAS is listening when this returns (retried on another port
        when the one picked was taken meanwhile)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self._run += 1
            self.port = self._fixed_port or free_udp_port()
            self.media_port = free_media_port()
            with self._paths()["stdout"].open("wb") as out:
                self._proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                    preexec_fn=parent_death_signal(signal.SIGKILL),
                )
            if not self.is_uas:
                return
            if await self._listening():
                return
            await self._reap()
        raise RuntimeError(f"sipp did not start; see {self.workdir}")

    async def _listening(self) -> bool:
        proc = self._proc
        assert proc is not None
        for _ in range(200):
            if proc.poll() is not None:
                return False
            bound = not _udp_free(self.port) if self.transport == "udp" else _tcp_open(self.port)
            if bound:
                return True
            await asyncio.sleep(0.025)
        return False

    async def wait(self, timeout: float = 60.0) -> SippResult:
        """Wait for sipp to finish its calls; TimeoutError (and sipp killed) otherwise."""
        proc = self._proc
        assert proc is not None, "sipp was not started"
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)
        except TimeoutError:
            await self._reap()
            raise
        return self._collect()

    async def stop(self) -> SippResult | None:
        """Kill sipp if it still runs (idempotent); its result when it had one."""
        if self._proc is not None and self._proc.poll() is None:
            await self._reap()
        return self._collect() if self._proc is not None else None

    async def _reap(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGUSR1)  # sipp's "quit now": it still writes its logs
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 3)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    def _collect(self) -> SippResult:
        proc = self._proc
        assert proc is not None
        if self._result is None or self._result.returncode != proc.returncode:
            paths = self._paths()

            def text(key: str) -> str:
                path = paths[key]
                return path.read_text(errors="replace") if path.exists() else ""

            returncode = proc.returncode if proc.returncode is not None else -1
            self._result = SippResult(returncode, text("messages"), text("errors"), text("screen"))
        return self._result


def _tcp_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, port)) == 0
