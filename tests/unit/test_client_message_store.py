"""The message client's storage and batching: JSON-lines journals, the outbox, the ids already
shown, and coalesced id requests."""

from __future__ import annotations

import asyncio
import os
import random
import stat
from pathlib import Path

import pytest

from parley_client import ErrorType, Message, ParleyError, WritableMessage
from parley_client.id_batches import IdBatches
from parley_client.journal import Journal
from parley_client.logs import ClientLog
from parley_client.outbox import Outbox
from parley_client.seen import INCOMING, SENT, SeenIds
from parley_protocol.errors import ErrorCode

LOG = ClientLog(lambda: []).area("messaging")


def message(text: str = "hi", at: float = 1_700_000_000.0) -> Message:
    return WritableMessage(["bob", "carol"], text, {"k": "v"}).validated("alice", at)


# -- journal ---------------------------------------------------------------------------------


def test_a_journal_appends_reads_back_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "j.jsonl"
    journal = Journal(path, LOG)
    assert journal.read() == []
    journal.append({"a": 1})
    journal.append(["b", "ü"])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"torn": ')  # a crash in the middle of a line
    again = Journal(path, LOG)
    assert again.read() == [{"a": 1}, ["b", "ü"]]
    assert again.lines == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_a_journal_rewrite_replaces_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl", LOG, durable=True)
    for i in range(5):
        journal.append(i)
    journal.rewrite([10, 11])
    assert journal.lines == 2
    assert Journal(tmp_path / "j.jsonl", LOG).read() == [10, 11]
    assert [p.name for p in tmp_path.iterdir()] == ["j.jsonl"]  # no temporary file left


async def test_a_durable_journal_syncs_a_burst_with_few_fsyncs_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    journal = Journal(tmp_path / "j.jsonl", LOG, durable=True)
    for i in range(500):
        journal.append(i)
    assert synced == []  # none on the loop: a thread syncs
    await journal.flush()
    assert 1 <= len(synced) <= 2  # the burst took one sync (and perhaps one more)
    journal.append("late")
    journal.rewrite(["kept"])  # while its sync may run: the thread syncs its own copy
    await journal.flush()
    journal.append("after")
    journal.close()
    assert Journal(tmp_path / "j.jsonl", LOG).read() == ["kept", "after"]


def test_a_journal_without_an_event_loop_syncs_each_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    journal = Journal(tmp_path / "j.jsonl", LOG, durable=True)
    journal.append(1)
    journal.append(2)
    assert len(synced) == 2
    journal.close()


# -- outbox ----------------------------------------------------------------------------------


def test_the_outbox_keeps_messages_in_order_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    outbox = Outbox(path, LOG)
    first, second, third = message("1"), message("2"), message("3")
    for m in (first, second, third):
        outbox.add(m)
    outbox.remove(second.message_id)
    outbox.remove("not-there")
    again = Outbox(path, LOG)
    assert [u.message for u in again.pending()] == [first, third]
    oldest = again.oldest()
    assert oldest is not None and oldest.message == first
    assert third.message_id in again
    assert again.get(second.message_id) is None
    restored = again.pending()[0].message
    assert restored.headers == {"k": "v"} and restored.recipient_ids == ("bob", "carol")
    assert again.pending()[0].queued_at == 1_700_000_000.0


def test_the_outbox_file_is_compacted_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    outbox = Outbox(path, LOG, limit=300)
    kept = [message(str(i)) for i in range(300)]
    for m in kept:
        outbox.add(m)
    with pytest.raises(ParleyError) as caught:
        outbox.add(message("one too many"))
    assert caught.value.code == "RATE_LIMITED"
    for m in kept[:290]:
        outbox.remove(m.message_id)
    assert len(path.read_text().splitlines()) < 150
    assert [u.message for u in Outbox(path, LOG).pending()] == kept[290:]


# -- seen ids --------------------------------------------------------------------------------


def test_seen_ids_are_claimed_once_and_remembered_when_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    seen = SeenIds(path, LOG)
    assert seen.claim(INCOMING, "m1")
    assert not seen.claim(INCOMING, "m1")
    assert seen.claim(SENT, "m1")  # another kind
    seen.record(INCOMING, "m1")
    again = SeenIds(path, LOG)
    assert (INCOMING, "m1") in again
    assert (SENT, "m1") not in again  # claimed, never recorded: shown again after a crash
    assert not again.claim(INCOMING, "m1")


def test_seen_ids_keep_the_latest_within_their_limit_and_age(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    path = tmp_path / "s.jsonl"
    seen = SeenIds(path, LOG, limit=3, max_age=100.0, now=lambda: clock[0])
    for i in range(5):
        seen.claim(INCOMING, f"m{i}")
        seen.record(INCOMING, f"m{i}")
    assert len(seen) == 3 and (INCOMING, "m0") not in seen and (INCOMING, "m4") in seen
    clock[0] += 200
    again = SeenIds(path, LOG, limit=3, max_age=100.0, now=lambda: clock[0])
    assert len(again) == 0  # all older than max_age


# -- id batches ------------------------------------------------------------------------------


async def test_ids_asked_together_go_in_one_request_of_at_most_the_limit() -> None:
    sent: list[list[str]] = []

    async def send(ids: list[str]) -> None:
        sent.append(ids)

    batches = IdBatches("ack", send, LOG, keep_failed=True, limit=3)
    futures = [batches.add([f"m{i}"]) for i in range(5)] + [batches.add(["m0"])]
    await asyncio.gather(*futures)
    assert sent == [["m0", "m1", "m2"], ["m3", "m4"]]
    await batches.close(1.0)
    with pytest.raises(ParleyError, match="terminated"):
        await batches.add(["late"])


async def test_ids_of_a_request_that_failed_for_a_passing_reason_are_asked_again() -> None:
    sent: list[list[str]] = []
    errors = [
        ParleyError.network("lost"),
        ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "no"),
    ]

    async def send(ids: list[str]) -> None:
        sent.append(ids)
        if errors:
            raise errors.pop(0)

    batches = IdBatches("ack", send, LOG, keep_failed=True)
    with pytest.raises(ParleyError):
        await batches.add(["a", "b"])
    assert batches.failed == ["a", "b"]
    batches.retry()
    await asyncio.sleep(0.05)
    assert batches.failed == []  # refused for good this time: dropped
    batches.add(["c"])
    await asyncio.sleep(0.05)
    assert sent == [["a", "b"], ["a", "b"], ["c"]]
    await batches.close(1.0)


async def test_kept_ids_are_asked_again_after_a_backoff_without_a_reconnect() -> None:
    """A busy service (UNAVAILABLE) while the client stays connected: the kept ids go again
    on their own, after a backoff that grows while the failures go on."""
    sent: list[tuple[float, list[str]]] = []
    failures = 2

    async def send(ids: list[str]) -> None:
        nonlocal failures
        sent.append((asyncio.get_running_loop().time(), ids))
        if failures:
            failures -= 1
            raise ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "busy", ErrorType.NETWORK)

    batches = IdBatches("ack", send, LOG, keep_failed=True, retry_initial=0.1, rng=random.Random(1))
    with pytest.raises(ParleyError):
        await batches.add(["a", "b"])
    for _ in range(100):
        if len(sent) == 3:
            break
        await asyncio.sleep(0.02)
    assert [ids for _, ids in sent] == [["a", "b"]] * 3
    assert batches.failed == []
    first, second = sent[1][0] - sent[0][0], sent[2][0] - sent[1][0]
    assert 0.05 <= first <= 0.3 and 0.1 <= second <= 0.5
    await batches.close(1.0)
