"""A real TURN server (coturn's turnserver, installed by `make test` when missing) on
127.0.0.1 for tests: shared-secret credentials, loopback relays only."""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import subprocess
from pathlib import Path

from parley_devstack._proc import poll_until
from parley_devstack.ports import free_port


class Coturn:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.secret = secrets.token_hex(16)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    async def start(self) -> None:
        binary = shutil.which("turnserver")
        assert binary, "turnserver is missing: `make test` installs coturn (apt, as root)"
        self.port = free_port()
        low = random.randrange(30_000, 60_000, 100)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "turnserver.log"
        self._proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; readiness is polled)
            [
                binary,
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={self.port}",
                f"--min-port={low}",
                f"--max-port={low + 99}",
                "--use-auth-secret",
                f"--static-auth-secret={self.secret}",
                "--realm=parley",
                "--no-tls",
                "--no-dtls",
                "--allow-loopback-peers",
                "--no-cli",
                f"--log-file={log}",
                "--simple-log",
                "--verbose",  # allocations name their user: tests check who relayed
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not await poll_until(self._listening, 10.0, 0.05):
            await self.stop()
            raise RuntimeError(f"turnserver did not listen on {self.port}; see {log}")

    def _listening(self) -> bool:
        import socket

        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 5)
        except TimeoutError:
            proc.kill()
            proc.wait()
        self._proc = None
