"""Resuming the session across reconnects: what a Hello asks for, what its Welcome answered,
and which numbered events reach the features (each one once).

A reconnect asks the gateway to resume the last session from the client's ack. RESUMED: the
session goes on and the gateway replays the events after the ack; those the client had
already received are dropped. Any other answer starts a new session, with a new ledger, and
the features hear that events may have been missed (`Connected.resumed` is False).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from parley_client.dispatcher import Handled
from parley_client.events import EventLedger
from parley_client.logs import ClientLog
from parley_protocol.pb import client as pb

# Hands a frame on; calls the Handled it got once the frame was handled.
FrameDispatch = Callable[[pb.Envelope, Handled | None], None]


@dataclass
class ResumeStats:
    """What became of the client's resumes, over its life."""

    resumed: int = 0  # reconnects that went on with the same session
    fresh_after_failed_resume: int = 0  # reconnects that asked to resume and got a new session
    duplicates_dropped: int = 0  # events received again after a resume, not handed on


class Resume:
    """The session a client's next Hello asks to resume, and the ledger of its events."""

    def __init__(
        self, stats: ResumeStats, log: ClientLog, ack_advanced: Callable[[], None]
    ) -> None:
        self._stats = stats
        self._log = log
        self._ack_advanced = ack_advanced
        self._ledger = EventLedger()
        self._session_id = ""  # what the next Hello asks to resume ("": nothing)

    @property
    def acked(self) -> int:
        """The ack of the current session: every event up to it was handled."""
        return self._ledger.acked

    def ask(self) -> tuple[str, int]:
        """The Hello's resume_session_id and resume_from_event."""
        return (self._session_id, self._ledger.acked) if self._session_id else ("", 0)

    def taken_over(self) -> None:
        """The session was resumed on another connection: the next Hello starts a new one."""
        self._session_id = ""

    def welcomed(self, welcome: pb.Welcome) -> bool:
        """Take the Welcome's answer; True if it resumed the session the Hello asked for."""
        asked = self._session_id
        resumed = (
            bool(asked)
            and welcome.resume == pb.RESUME_OUTCOME_RESUMED
            and welcome.session_id == asked
        )
        if resumed:
            self._stats.resumed += 1
            self._log.info(
                "session",
                f"session {asked} resumed after event {self._ledger.acked} "
                f"({self._ledger.unhandled} event(s) still being handled)",
            )
        else:
            if asked:
                self._stats.fresh_after_failed_resume += 1
                outcome = pb.ResumeOutcome.Name(welcome.resume).removeprefix("RESUME_OUTCOME_")
                reason = f": {welcome.resume_reason}" if welcome.resume_reason else ""
                self._log.info(
                    "session",
                    f"session {asked} was not resumed ({outcome}{reason}); "
                    f"new session {welcome.session_id}",
                )
            self._ledger = EventLedger()
        self._session_id = welcome.session_id
        return resumed

    def deliver(self, envelope: pb.Envelope, dispatch: FrameDispatch) -> None:
        """Hand a frame of the welcomed connection on, unless it is an event received already."""
        number = envelope.event
        if number == 0:  # not numbered: the gateway keeps no window
            dispatch(envelope, None)
            return
        ledger = self._ledger
        if not ledger.receive(number):
            self._stats.duplicates_dropped += 1
            self._log.debug(
                "session",
                f"dropped event {number} ({envelope.WhichOneof('body')}): received already",
            )
            return
        dispatch(envelope, functools.partial(self._handled, ledger, number))

    def _handled(self, ledger: EventLedger, number: int) -> None:
        if ledger.handled(number) and ledger is self._ledger:
            self._ack_advanced()
