"""Who runs what: the users of each worker process, its few media clients, and how many
calls, messages, joins and phone calls it places (exact counts: rate x duration, so a
report can say what was planned and what happened).

Users are `<prefix>-<n>`, dealt to workers in turn. Media calls, conference joins and phone
calls all run in worker 0, on a small pool of media clients (the first users of worker 0),
enough for the rate at which they are used and how long each is held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from parley_loadtest.scenario import Scenario

# A media client is busy for its hold time plus about this long (set-up, hang-up).
MEDIA_SETUP_SECONDS = 5.0
# Sequence numbers are unique in a run: worker index * SEQ_BLOCK + what it is * KIND_BLOCK
# + the worker's own count of those.
SEQ_BLOCK = 1_000_000_000
KIND_BLOCK = 100_000_000
KINDS = ("message", "call", "media_call", "conference", "phone")


def seq_of(worker: int, kind: str, k: int) -> int:
    return worker * SEQ_BLOCK + KINDS.index(kind) * KIND_BLOCK + k


class PlanError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Counts:
    """How many of each the run (or one worker) places in its traffic phase."""

    calls: int = 0  # signalling-only app-to-app calls
    media_calls: int = 0
    messages: int = 0
    conference_joins: int = 0
    phone_calls: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.calls + other.calls,
            self.media_calls + other.media_calls,
            self.messages + other.messages,
            self.conference_joins + other.conference_joins,
            self.phone_calls + other.phone_calls,
        )


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    run_id: str
    users: list[str]  # every user this worker runs (media clients first, in worker 0)
    media_users: int  # how many of `users` have media
    everyone: list[str]  # every user of the run (message recipients)
    counts: Counts
    workers: int


@dataclass(frozen=True)
class Plan:
    run_id: str
    workers: list[WorkerPlan]
    media_clients: int
    totals: Counts = field(default_factory=Counts)


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def media_clients_needed(scenario: Scenario, counts: Counts) -> int:
    """Enough media clients that each media call, join and phone call finds free ones."""
    if not (counts.media_calls or counts.conference_joins or counts.phone_calls):
        return 0
    calls = scenario.calls
    busy = (
        2 * calls.per_second * calls.media_share * (calls.hold_seconds + MEDIA_SETUP_SECONDS)
        + scenario.conferences.joins_per_second
        * (scenario.conferences.hold_seconds + MEDIA_SETUP_SECONDS)
        + scenario.phone_calls.per_second
        * (scenario.phone_calls.hold_seconds + MEDIA_SETUP_SECONDS)
    )
    least = 2 if counts.media_calls else 1
    return max(least, math.ceil(busy))


def make_plan(scenario: Scenario, run_id: str) -> Plan:
    """PlanError when the users cannot carry the traffic asked for."""
    seconds = scenario.duration_seconds
    calls_total = round(scenario.calls.per_second * seconds)
    media_calls = round(calls_total * scenario.calls.media_share)
    totals = Counts(
        calls=calls_total - media_calls,
        media_calls=media_calls,
        messages=round(scenario.messages.per_second * seconds),
        conference_joins=round(scenario.conferences.joins_per_second * seconds),
        phone_calls=round(scenario.phone_calls.per_second * seconds),
    )
    workers = scenario.workers
    problems: list[str] = []
    if workers > scenario.users:
        problems.append(f"workers: {workers} workers for {scenario.users} users; give each one")
        raise PlanError(problems)
    media = media_clients_needed(scenario, totals)
    everyone = [f"{scenario.user_prefix}-{n}" for n in range(scenario.users)]
    plans = []
    for index in range(workers):
        users = everyone[index::workers]
        signalling = len(users) - (media if index == 0 else 0)
        counts = Counts(
            calls=_share(totals.calls, workers, index),
            messages=_share(totals.messages, workers, index),
            **(
                {
                    "media_calls": totals.media_calls,
                    "conference_joins": totals.conference_joins,
                    "phone_calls": totals.phone_calls,
                }
                if index == 0
                else {}
            ),
        )
        if signalling < 0:
            problems.append(
                f"users: {scenario.users} users over {workers} workers leave worker 0 "
                f"{len(users)}, fewer than the {media} media clients its media calls, joins "
                "and phone calls need"
            )
        elif counts.calls and signalling < 2:
            media_note = f" (the other {media} are media clients)" if index == 0 and media else ""
            problems.append(
                f"users: {scenario.users} users over {workers} workers leave worker {index} "
                f"{signalling} signalling-only users{media_note}; calls need at least 2 in each"
            )
        elif counts.messages and scenario.users < 2:
            problems.append("users: messages need at least 2 users")
        plans.append(
            WorkerPlan(
                index=index,
                run_id=run_id,
                users=users,
                media_users=media if index == 0 else 0,
                everyone=everyone,
                counts=counts,
                workers=workers,
            )
        )
    if problems:
        raise PlanError(sorted(set(problems)))
    return Plan(run_id=run_id, workers=plans, media_clients=media, totals=totals)
