"""The messages this device already handed to the app, so that none is shown twice: not when
the same event comes again, not when a fetch returns one an event brought, and not after the
process restarts (the set is kept on disk, per application and user).

Each entry is a kind and a message id: "i" for a message received (on_incoming_message), "s"
for one sent by this user (on_message_sent), so that a message to oneself is both; "d" and
"r" for a delivery or a read by one recipient (the id names the message and the recipient). The set is
bounded: the last MAX_SEEN entries, none older than SEEN_MAX_AGE. An entry is written when
the app's listener has run (a crash while it runs shows the message again on the next start,
since it was not acknowledged either); writes are flushed to the system, not synced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from parley_client.journal import Journal
from parley_client.logs import AreaLog

MAX_SEEN = 50_000
SEEN_MAX_AGE = 30 * 24 * 3600.0
# The file is rewritten when it has this many lines beyond the entries it keeps (at least).
MIN_SLACK = 1_000

INCOMING = "i"
SENT = "s"
DELIVERED = "d"  # the id is "<message id>/<recipient id>"
READ = "r"  # the id is "<message id>/<reader id>"


class SeenIds:
    """The set of seen (kind, message id), in memory and in `path`."""

    def __init__(
        self,
        path: Path,
        log: AreaLog,
        *,
        limit: int = MAX_SEEN,
        max_age: float = SEEN_MAX_AGE,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._journal = Journal(path, log)
        self._log = log
        self._limit = limit
        self._max_age = max_age
        self._now = now
        self._entries: dict[str, int] = {}  # "kind:id" -> when seen (ms), oldest first
        self._unwritten: set[str] = set()  # claimed, not recorded yet
        self._loaded = False

    @property
    def path(self) -> Path:
        return self._journal.path

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[str, str]) -> bool:
        self.load()
        return _key(*key) in self._entries

    def load(self) -> None:
        """Read the file (once); later calls do nothing."""
        if self._loaded:
            return
        self._loaded = True
        try:
            values = self._journal.read()
        except OSError as exc:
            self._log.warning(f"cannot read {self.path}: {exc}; messages may be shown again")
            return
        for value in values:
            try:
                kind, message_id, at_ms = value
                self._entries[_key(str(kind), str(message_id))] = int(at_ms)
            except (TypeError, ValueError):
                continue
        self._trim()
        if self._journal.lines > len(self._entries) + MIN_SLACK:
            self._compact()

    def claim(self, kind: str, message_id: str) -> bool:
        """True if (kind, message_id) was not seen: it is now, in memory (`record` writes it)."""
        self.load()
        key = _key(kind, message_id)
        if key in self._entries:
            return False
        self._entries[key] = int(self._now() * 1000)
        self._unwritten.add(key)
        return True

    def record(self, kind: str, message_id: str) -> None:
        """Write a claimed entry to disk (a failure to write is logged)."""
        key = _key(kind, message_id)
        self._unwritten.discard(key)
        at_ms = self._entries.get(key)
        if at_ms is None:
            at_ms = self._entries[key] = int(self._now() * 1000)
        try:
            self._journal.append([kind, message_id, at_ms])
        except OSError as exc:
            self._log.warning(f"cannot write {self.path}: {exc}; the message may be shown again")
            return
        self._trim()
        if self._journal.lines > len(self._entries) + max(MIN_SLACK, len(self._entries) // 4):
            self._compact()

    def close(self) -> None:
        """Let go of the file (a later use opens it again)."""
        self._journal.close()

    def _trim(self) -> None:
        oldest_ms = int((self._now() - self._max_age) * 1000)
        while self._entries:
            key, at_ms = next(iter(self._entries.items()))
            if len(self._entries) <= self._limit and at_ms >= oldest_ms:
                break
            del self._entries[key]

    def _compact(self) -> None:
        values = [
            [*key.split(":", 1), at_ms]
            for key, at_ms in self._entries.items()
            if key not in self._unwritten
        ]
        try:
            self._journal.rewrite(values)
        except OSError as exc:
            self._log.warning(f"cannot rewrite {self.path}: {exc}")


def _key(kind: str, message_id: str) -> str:
    return f"{kind}:{message_id}"
