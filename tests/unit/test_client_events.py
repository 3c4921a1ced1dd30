"""The ledger of a session's numbered events: duplicates, and the ack over handled events."""

from __future__ import annotations

from parley_client.events import EventLedger


def test_the_ack_moves_only_over_a_handled_prefix() -> None:
    ledger = EventLedger()
    for number in (3, 5, 9, 12):  # increasing, not contiguous
        assert ledger.receive(number)
    assert (ledger.highest_received, ledger.acked, ledger.unhandled) == (12, 0, 4)
    assert not ledger.handled(9)  # out of order: 3 and 5 are not done yet
    assert not ledger.handled(5)
    assert ledger.acked == 0
    assert ledger.handled(3)  # the head: the ack runs over 3, 5 and 9
    assert (ledger.acked, ledger.unhandled) == (9, 1)
    assert ledger.handled(12)
    assert (ledger.acked, ledger.unhandled) == (12, 0)


def test_an_event_not_above_the_highest_received_is_a_duplicate() -> None:
    ledger = EventLedger()
    assert ledger.receive(4) and ledger.receive(7)
    assert not ledger.receive(7)
    assert not ledger.receive(2)
    assert ledger.receive(8)
    assert ledger.handled(4) and ledger.acked == 4
    assert not ledger.handled(4)  # handled twice: no change
    assert not ledger.handled(1)  # never received here
    assert ledger.acked == 4
