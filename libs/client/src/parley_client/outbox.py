"""The outbox: messages the app sent that the messaging service has not accepted yet, kept on
disk (per application and user) so that a process restart loses none of them.

`send()` writes a message here before it returns (it survives the process being killed;
it is synced to disk a moment later, with whatever else was written meanwhile, so that it
survives a power cut too); it leaves once accepted or failed. The file is a journal of "add" and "done" lines, rewritten with only the messages
still waiting once the others are the greater part; the outbox holds at most MAX_OUTBOX.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley_client.errors import ErrorType, ParleyError
from parley_client.journal import Journal
from parley_client.logs import AreaLog
from parley_client.message import Message
from parley_protocol.errors import ErrorCode

# Enough for bursts of thousands of sends while disconnected.
MAX_OUTBOX = 100_000
# The file is rewritten when it has this many lines beyond twice the messages it keeps.
SLACK = 100


@dataclass(frozen=True)
class Unsent:
    """A message in the outbox."""

    message: Message

    @property
    def queued_at(self) -> float:
        """When `send()` took it (seconds since the epoch): the message's own timestamp."""
        return self.message.timestamp


class Outbox:
    """The unsent messages, oldest first, in memory and in `path`."""

    def __init__(self, path: Path, log: AreaLog, *, limit: int = MAX_OUTBOX) -> None:
        self._journal = Journal(path, log, durable=True)
        self._log = log
        self._limit = limit
        self._unsent: dict[str, Unsent] = {}
        self._loaded = False

    @property
    def path(self) -> Path:
        return self._journal.path

    def __len__(self) -> int:
        self.load()
        return len(self._unsent)

    def __contains__(self, message_id: str) -> bool:
        self.load()
        return message_id in self._unsent

    def pending(self) -> list[Unsent]:
        """The messages waiting, oldest first."""
        self.load()
        return list(self._unsent.values())

    def get(self, message_id: str) -> Unsent | None:
        self.load()
        return self._unsent.get(message_id)

    def oldest(self) -> Unsent | None:
        """The message queued first (None if there is none)."""
        self.load()
        return next(iter(self._unsent.values()), None)

    def load(self) -> None:
        """Read the file (once): what an earlier run left unsent."""
        if self._loaded:
            return
        self._loaded = True
        try:
            values = self._journal.read()
        except OSError as exc:
            self._log.error(f"cannot read the outbox {self.path}: {exc}")
            return
        for value in values:
            if isinstance(value, dict) and "done" in value:
                self._unsent.pop(str(value["done"]), None)
                continue
            unsent = _unsent_of(value)
            if unsent is None:
                self._log.warning(f"{self.path}: an unreadable entry was skipped")
                continue
            self._unsent[unsent.message.message_id] = unsent
        if self._unsent:
            self._log.info(f"{len(self._unsent)} message(s) left unsent by an earlier run")
        self._maybe_compact()

    def add(self, message: Message) -> Unsent:
        """Keep `message` (written at once, synced soon after). ParleyError if the outbox is full or cannot be
        written: then nothing was kept."""
        self.load()
        if len(self._unsent) >= self._limit:
            raise ParleyError(
                ErrorCode.ERROR_CODE_RATE_LIMITED,
                f"{len(self._unsent)} messages wait to be sent already (the limit); send "
                "again once some were sent or failed",
                ErrorType.OTHER,
            )
        unsent = Unsent(message)
        try:
            self._journal.append(_entry_of(unsent))
        except OSError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL,
                f"cannot keep the message in the outbox {self.path}: {exc}",
                ErrorType.OTHER,
            ) from exc
        self._unsent[message.message_id] = unsent
        return unsent

    def remove(self, message_id: str) -> None:
        """The message was accepted or failed: it leaves the outbox."""
        if self._unsent.pop(message_id, None) is None:
            return
        try:
            self._journal.append({"done": message_id})
        except OSError as exc:  # it is sent again after a restart: the service ignores it
            self._log.warning(f"cannot write to the outbox {self.path}: {exc}")
            return
        self._maybe_compact()

    def close(self) -> None:
        """Sync what is not on disk yet and let go of the file (a later use opens it again)."""
        self._journal.close()

    def _maybe_compact(self) -> None:
        if self._journal.lines <= 2 * len(self._unsent) + SLACK:
            return
        try:
            self._journal.rewrite(_entry_of(unsent) for unsent in self._unsent.values())
        except OSError as exc:
            self._log.warning(f"cannot rewrite the outbox {self.path}: {exc}")


def _entry_of(unsent: Unsent) -> dict[str, Any]:
    message = unsent.message
    return {
        "id": message.message_id,
        "sender": message.sender_id,
        "recipients": list(message.recipient_ids),
        "text": message.text_body,
        "headers": dict(message.headers),
        "queued_at": message.timestamp,
        "trace_id": message.trace_id,
    }


def _unsent_of(value: Any) -> Unsent | None:
    try:
        message = Message(
            message_id=str(value["id"]),
            sender_id=str(value["sender"]),
            recipient_ids=tuple(str(r) for r in value["recipients"]),
            text_body=str(value["text"]),
            headers={str(k): str(v) for k, v in dict(value["headers"]).items()},
            timestamp=float(value["queued_at"]),
            trace_id=str(value.get("trace_id", "")),  # none in an outbox of an older client
        )
        return Unsent(message)
    except (TypeError, ValueError, KeyError):
        return None
