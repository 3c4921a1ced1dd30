"""What a worker tells the engine, over its pipe: batches of events (tuples, cheap to pickle)
and its steps. Every time is `time.time()` on this machine.

Events (first item the kind, second the time):
    ("started", t, user, seconds)            start() and listening took `seconds`
    ("start_failed", t, user, error)
    ("connected", t, user, gateway_id, reconnected)
    ("disconnected", t, user, reason)
    ("client_failed", t, user, error)
    ("msg_sent", t, seq)                      handed to message_client.send()
    ("msg_send_failed", t, seq, error)        send() refused it at once
    ("msg_accepted", t, seq)                  on_message_sent: the service has it
    ("msg_failed", t, seq, error)             on_message_failed
    ("msg_arrived", t, seq, seconds)          the recipient's on_incoming_message
    ("stale", t, what)                        a marker of another run arrived (ignored)
    ("call_placed", t, kind, seq)
    ("call_arrived", t, seq, seconds)         the callee's on_incoming_call
    ("call_established", t, kind, seq, seconds)
    ("call_failed", t, kind, seq, error)
    ("call_ended", t, kind, seq, end_cause)
    ("error", t, text)
Call kinds: "call" (signalling only), "media_call", "conference", "phone".
"""

from __future__ import annotations

from typing import Any

Event = tuple[Any, ...]

CALL_KINDS = ("call", "media_call", "conference", "phone")

# Steps, worker -> engine
EVENTS = "events"  # ("events", [event, ...])
RAMPED = "ramped"  # ("ramped",)  every client of the worker started (or failed to)
TRAFFIC_DONE = "traffic_done"  # ("traffic_done",)  everything planned placed and settled
FINAL = "final"  # ("final", {"connected": n, "not_connected": [user, ...]})

# Orders, engine -> worker
GO = "go"  # ("go", t0)  the traffic phase starts at t0
STOP = "stop"  # ("stop",)  report and terminate the clients


def describe(exc: BaseException) -> str:
    """An error as one line: its type and message."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:300]
