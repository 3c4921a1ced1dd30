"""Small JSON-lines files of the client's messaging state (the outbox, the ids already shown):
one JSON value a line, appended as things happen, rewritten whole (atomically) when most of
its lines no longer matter. A line cut short by a crash is skipped when the file is read."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from parley_client.logs import AreaLog


class Journal:
    """One JSON-lines file, created (with its folder, mode 0700/0600) on the first write."""

    def __init__(self, path: Path, log: AreaLog, *, durable: bool = False) -> None:
        """`durable`: fsync every append (it survives a power cut, not only a crash of the
        process)."""
        self.path = path
        self._log = log
        self._durable = durable
        self.lines = 0  # lines in the file, as far as this object knows

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
        self._folder()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.lines += 1

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
        self.lines = body.count("\n")

    def _folder(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
