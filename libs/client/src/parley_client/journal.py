"""Small JSON-lines files of the client's messaging state (the outbox, the ids already shown):
one JSON value a line, appended as things happen, rewritten whole (atomically) when most of
its lines no longer matter. A line cut short by a crash is skipped when the file is read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from parley_client.logs import AreaLog


class Journal:
    """One JSON-lines file, created (with its folder, mode 0700/0600) on the first write.

    Appends go to the system at once (they survive the process being killed). A `durable`
    journal also syncs them to disk: on a thread, one fsync for every append made since
    the last one began (group commit), so a burst of appends costs a few syncs, not one
    each, and the event loop never waits for the disk. `flush()` waits for the sync."""

    def __init__(self, path: Path, log: AreaLog, *, durable: bool = False) -> None:
        """`durable`: appends are synced to disk too (they survive a power cut)."""
        self.path = path
        self._log = log
        self._durable = durable
        self.lines = 0  # lines in the file, as far as this object knows
        self._fd: int | None = None
        self._dirty = False  # appended since the last sync began
        self._syncing: asyncio.Task[None] | None = None

    def read(self) -> list[Any]:
        """Every value of the file in order (none if there is no file); broken lines are
        skipped with a warning."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.lines = 0
            return []
        values: list[Any] = []
        broken = 0
        lines = raw.splitlines()
        for line in lines:
            if not line.strip():
                continue
            try:
                values.append(json.loads(line))
            except ValueError:
                broken += 1
        if broken:
            self._log.warning(f"{self.path}: {broken} unreadable line(s) skipped")
        self.lines = len(lines)
        return values

    def append(self, value: Any) -> None:
        """Add one line; OSError if it cannot be written."""
        line = json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"
        if self._fd is None:
            self._folder()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, line.encode("utf-8"))
        self.lines += 1
        if self._durable:
            self._dirty = True
            self._sync_soon()

    def rewrite(self, values: Iterable[Any]) -> None:
        """Replace the file with `values`, atomically; OSError if it cannot be written."""
        self._folder()
        body = "".join(
            json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n" for value in values
        )
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                if self._durable:
                    os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._close_fd()  # appends go to the new file
        self.lines = body.count("\n")

    async def flush(self) -> None:
        """Return once every append so far is on disk (durable journals)."""
        while self._syncing is not None:
            await asyncio.shield(self._syncing)

    def close(self) -> None:
        """Sync what a durable journal has not synced yet, and let go of the file."""
        if self._durable and self._dirty and self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            self._dirty = False
        self._close_fd()

    def _sync_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: sync here
            self._dirty = False
            if self._fd is not None:
                os.fsync(self._fd)
            return
        if self._syncing is None:
            self._syncing = loop.create_task(self._sync(), name="parley journal sync")

    async def _sync(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._dirty and self._fd is not None:
                self._dirty = False
                # A copy of the descriptor: the file may be rewritten (and the original
                # closed) while the thread syncs.
                fd = os.dup(self._fd)
                try:
                    await loop.run_in_executor(None, os.fsync, fd)
                except OSError as exc:
                    self._log.warning(f"cannot sync {self.path}: {exc}")
                finally:
                    os.close(fd)
        finally:
            self._syncing = None

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _folder(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
