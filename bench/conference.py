"""Conference mixing on one replica: CPU per participant, late frames, and the most
participants one core mixes in time.

Most phases load a stand-in replica: the media core alone (tests/support/conference/
replica.py: a Mixer and answering MediaLegs in one process, SDP over pipes), which can be
profiled. The last phase loads the real conference service in a stack of its own (auth, a
gateway, calls, conference as processes, embedded NATS and PostgreSQL): each participant is
a reference client that joins with `call_conference`, its call's media a light peer. The
participants live in two light client processes (tests/support/conference/client.py):
packet-level peer connections on loopback that send pre-encoded Opus, a tone or silence,
and count what they receive without decoding it, so that the machine's CPU goes to the
replica.

1. Rooms of 3, one talker each.
2. Rooms of 10, the usual pattern: one or two talkers (a tone), the others silence; then the
   worst case, everyone talking.
3. Ramp: rooms of 10 (usual pattern) added until the replica's late frames pass 5 %, its
   core is used up (95 %), or the clients' cores run out.

First, a probe of the machine itself: how often a busy process on the replica's core is
stopped for more than 5 ms while every core is busy (on a VM, the host's scheduling: such
stops make ticks late whatever the replica does, hence the ramp's 5 %).

The replica is pinned to one core, the clients and this process to the others (on this
2-core machine: one), so the replica's late frames come from its own load.

At each level, after a settle time, over a window: the replica's CPU (from /proc), its
late frames (handed to participants after the next 20 ms tick was due, or skipped), what
the clients received of what they should have, and their CPU. A ramp level with more than
1 % late frames is measured once more before the ramp stops (a window can catch a hiccup
of the machine's: this is a shared VM). The most participants one
core mixes with under 1 % late frames is the largest such level if it used (nearly) a
core, otherwise extrapolated from CPU per participant (said which; the largest level
measured in time is given too). Last, the replica is profiled
(cProfile) for a few seconds at the usual pattern, and where its time goes is printed.

Prints the figures, then one JSON line.

    .venv/bin/python bench/conference.py
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import base64
import urllib.request

from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from tests.support.conference.pipes import Helper

CLIENT_PROCESSES = 2
JOINS_IN_FLIGHT = 8
SETTLE_SECONDS = 3.0
WINDOW_SECONDS = 10.0
LATE_LIMIT = 0.01
# The ramp goes on past 1 % late (the machine's own stops cause some) up to this, or a
# core's CPU: the most participants in time is then the largest level under 1 %.
LATE_OVERLOAD = 0.05
# The replica's core counts as used up past this (pinned, it cannot use more than one).
REPLICA_FULL = 0.95
MACHINE_CORES = len(os.sched_getaffinity(0))
# The replica gets a core of its own (when there are two or more): the clients and this
# process share the others, so the replica's late frames are its own, not a neighbour's.
REPLICA_CPUS = {min(os.sched_getaffinity(0))} if MACHINE_CORES > 1 else set()
OTHER_CPUS = os.sched_getaffinity(0) - REPLICA_CPUS or os.sched_getaffinity(0)
# The ramp stops when the clients' cores are this busy: past it they, not the replica,
# fall behind.
CLIENTS_BUSY = 0.9 * len(OTHER_CPUS)
RAMP_FROM = 60
RAMP_STEP = 20
RAMP_MAX = 600
RAMP_BUDGET_SECONDS = 120.0
# The real service's levels: participants in rooms of 10 (the usual pattern).
SERVICE_LEVELS = (60, 100)
PROFILE_SECONDS = 5.0
PROFILE_PARTICIPANTS = 100


@dataclass
class Member:
    room: str
    id: str
    tone: int | None
    client: Helper


@dataclass
class Bench:
    replica: Helper
    clients: list[Helper]
    members: list[Member] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _rooms: itertools.count[int] = field(default_factory=itertools.count)

    async def add_room(self, size: int, talkers: int) -> None:
        room = f"room-{next(self._rooms)}"
        members = []
        for seat in range(size):
            index = next(self._ids)
            tone = 300 + 20 * (index % 30) if seat < talkers else None
            client = self.clients[index % len(self.clients)]
            members.append(Member(room, f"p{index}", tone, client))
        await self.join(members)

    async def join(self, members: list[Member]) -> None:
        gate = asyncio.Semaphore(JOINS_IN_FLIGHT)

        async def one(member: Member) -> None:
            async with gate:
                offer = await member.client.request("offer", id=member.id, tone=member.tone)
                answer = await self.replica.request(
                    "join", room=member.room, id=member.id, offer=offer["offer"]
                )
                done = await member.client.request("answer", id=member.id, sdp=answer["answer"])
                if not done["connected"]:
                    raise RuntimeError(f"{member.id} did not connect")
                self.members.append(member)

        await asyncio.gather(*(one(m) for m in members))

    async def clear(self) -> None:
        gate = asyncio.Semaphore(JOINS_IN_FLIGHT * 2)

        async def one(member: Member) -> None:
            async with gate:
                await member.client.request("close", id=member.id)
                await self.replica.request("leave", room=member.room, id=member.id)

        await asyncio.gather(*(one(m) for m in self.members))
        self.members.clear()

    async def sample(self) -> dict[str, Any]:
        replica = await self.replica.request("stats")
        clients = [await c.request("stats") for c in self.clients]
        return {
            "at": time.monotonic(),
            "machine_cpu": machine_cpu_seconds(),
            "bench_cpu": cpu_seconds(os.getpid()),
            "replica_cpu": cpu_seconds(self.replica.pid),
            "clients_cpu": sum(cpu_seconds(c.pid) for c in self.clients),
            "stats": replica["stats"],
            "received": sum(c["received"] for c in clients),
            "expected": sum(c["expected"] for c in clients),
        }

    async def measure(self, label: str) -> dict[str, Any]:
        """The figures of a window at the current load (after it settles)."""
        await asyncio.sleep(SETTLE_SECONDS)
        before = await self.sample()
        await asyncio.sleep(WINDOW_SECONDS)
        after = await self.sample()
        wall = after["at"] - before["at"]
        stats = {k: after["stats"][k] - before["stats"][k] for k in after["stats"]}
        participants = len(self.members)
        replica_cores = (after["replica_cpu"] - before["replica_cpu"]) / wall
        frames = stats["frames_sent"]
        expected = after["expected"] - before["expected"]
        ours = (
            after["replica_cpu"]
            + after["clients_cpu"]
            + after["bench_cpu"]
            - before["replica_cpu"]
            - before["clients_cpu"]
            - before["bench_cpu"]
        )
        others = (after["machine_cpu"] - before["machine_cpu"] - ours) / wall
        figures = {
            "label": label,
            "participants": participants,
            "talking": sum(m.tone is not None for m in self.members),
            "replica_cpu_cores": round(replica_cores, 3),
            "replica_cpu_percent_per_participant": round(100 * replica_cores / participants, 3),
            "replica_us_per_participant_frame": round(
                1e6 * replica_cores * wall / max(1, frames), 1
            ),
            "mixing_busy_percent": round(100 * stats["busy_seconds"] / wall, 1),
            "late_frames_percent": round(100 * stats["late_frames"] / max(1, frames), 3),
            "frames_sent": frames,
            "decoded_per_tick": round(stats["decoded"] / max(1, stats["ticks"]), 1),
            "encoded_per_tick": round(stats["encoded"] / max(1, stats["ticks"]), 1),
            "clients_cpu_cores": round((after["clients_cpu"] - before["clients_cpu"]) / wall, 3),
            "clients_received_percent": round(
                100 * (after["received"] - before["received"]) / max(1, expected), 1
            ),
            # Other work on the machine meanwhile (kernel and other processes): a shared
            # machine's noise, which makes a window's late frames suspect.
            "others_cpu_cores": round(max(0.0, others), 2),
        }
        print(
            f"  {label}: {participants} participants ({figures['talking']} talking): replica "
            f"{figures['replica_cpu_cores']:.2f} cores = "
            f"{figures['replica_cpu_percent_per_participant']:.3f} % of a core each "
            f"({figures['replica_us_per_participant_frame']} µs a frame; mixing "
            f"{figures['mixing_busy_percent']} % of the time), late frames "
            f"{figures['late_frames_percent']} %, decodes/encodes a tick "
            f"{figures['decoded_per_tick']}/{figures['encoded_per_tick']}; clients "
            f"{figures['clients_cpu_cores']:.2f} cores, received "
            f"{figures['clients_received_percent']} % of 50 packets/s; other work on the "
            f"machine {figures['others_cpu_cores']:.2f} cores",
            flush=True,
        )
        return figures


# A busy loop on one core, counting the times it was stopped for more than 5 ms.
PROBE = """
import json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.perf_counter() + float(sys.argv[2])
last = time.perf_counter()
gaps = []
while (now := time.perf_counter()) < end:
    if now - last > 0.005:
        gaps.append(now - last)
    last = now
print(json.dumps({"stops": len(gaps), "longest_ms": round(1000 * max(gaps, default=0), 1)}))
"""


async def machine_hiccups(seconds: float = 5.0) -> dict[str, Any]:
    """How often a process on the replica's core is stopped for more than 5 ms while every
    core is busy (the VM's own scheduling: a stop longer than a frame makes a tick late
    whatever the replica does)."""
    probes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", PROBE, str(cpu), str(seconds), stdout=asyncio.subprocess.PIPE
        )
        for cpu in sorted(os.sched_getaffinity(0))
    ]
    outputs = [json.loads((await p.communicate())[0]) for p in probes]
    replica_cpu = min(os.sched_getaffinity(0))
    return {"seconds": seconds, "replica_core": outputs[0], "cpu": replica_cpu}


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def rooms(bench: Bench, count: int, size: int, talkers: Any) -> None:
    for index in range(count):
        await bench.add_room(size, talkers(index) if callable(talkers) else talkers)


def usual(index: int) -> int:
    """Talkers in the index-th room of 10: one or two."""
    return 1 + index % 2


def where_time_goes(path: str, window: float) -> dict[str, Any]:
    """The profile's top functions by own time, and own time grouped by what it is."""
    stats = pstats.Stats(path)
    rows = []
    groups: dict[str, float] = {}
    total = 0.0
    for (filename, line, name), (_cc, _nc, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        groups[group_of(filename, name)] = groups.get(group_of(filename, name), 0.0) + tottime
        rows.append((tottime, cumtime, f"{Path(filename).name}:{line}({name})"))
    rows.sort(reverse=True)
    return {
        "profiled_cpu_percent_of_window": round(100 * total / window, 1),
        "groups_percent": {
            k: round(100 * v / total, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "top": [
            {
                "function": where,
                "own_percent": round(100 * own / total, 1),
                "cumulative_percent": round(100 * cum / total, 1),
            }
            for own, cum, where in rows[:25]
        ],
    }


def group_of(filename: str, name: str) -> str:
    if "parley_conference/opus" in filename:
        return "opus (libopus calls)"
    if "parley_conference" in filename:
        return "mixer and legs (Python)"
    if filename == "~":  # built-ins: named by what they are
        lowered = name.lower()
        if "numpy" in lowered or "ndarray" in lowered:
            return "numpy"
        if "protect" in lowered or "srtp" in lowered:
            return "SRTP"
        if "sendto" in lowered or "recv" in lowered or "poll" in lowered or "socket" in lowered:
            return "sockets and polling"
        return "other built-ins"
    for part in ("aiortc", "aioice", "pylibsrtp", "asyncio", "numpy", "pyee", "cryptography"):
        if f"/{part}/" in filename:
            return part
    return "other Python"


async def run(profile_path: str) -> dict[str, Any]:
    replica = Helper(
        "tests.support.conference.replica", env={"PARLEY_CONFERENCE_PROFILE": profile_path}
    )
    clients = [Helper("tests.support.conference.client") for _ in range(CLIENT_PROCESSES)]
    started = time.monotonic()
    figures: dict[str, Any] = {"machine_cores": MACHINE_CORES}
    await replica.start()
    for client in clients:
        await client.start()
    if REPLICA_CPUS:
        os.sched_setaffinity(replica.pid, REPLICA_CPUS)
        for pid in [0, *(c.pid for c in clients)]:
            os.sched_setaffinity(pid, OTHER_CPUS)
        figures["replica_cpus"] = sorted(REPLICA_CPUS)
    bench = Bench(replica, clients)
    try:
        hiccups = await machine_hiccups()
        figures["machine_hiccups"] = hiccups
        print(
            f"the machine itself, every core busy with a probe for {hiccups['seconds']:.0f} s: "
            f"the replica's core stopped {hiccups['replica_core']['stops']} times for more "
            f"than 5 ms (longest {hiccups['replica_core']['longest_ms']} ms)",
            flush=True,
        )
        print("phases (each: settle, then a window):", flush=True)
        await rooms(bench, 20, 3, 1)
        figures["rooms_of_3"] = await bench.measure("rooms of 3, one talking")
        await bench.clear()

        await rooms(bench, 10, 10, usual)
        figures["rooms_of_10"] = await bench.measure("rooms of 10, 1-2 talking")
        await bench.clear()
        await rooms(bench, 10, 10, 10)
        figures["rooms_of_10_all_talking"] = await bench.measure("rooms of 10, all talking")
        await bench.clear()

        print("ramp (rooms of 10, 1-2 talking):", flush=True)
        ramp: list[dict[str, Any]] = []
        stop = ""
        ramp_started = time.monotonic()
        while True:
            target = RAMP_FROM + RAMP_STEP * len(ramp)
            if target > RAMP_MAX:
                stop = f"reached {RAMP_MAX} participants"
                break
            index = len(bench.members) // 10
            while len(bench.members) < target:
                await bench.add_room(10, usual(index))
                index += 1
            level = await bench.measure("ramp")
            if level["late_frames_percent"] > 100 * LATE_LIMIT:
                # Once more: a window can catch a hiccup of the machine's.
                level = await bench.measure("ramp, again")
            ramp.append(level)
            machine = level["clients_cpu_cores"] + (
                0 if REPLICA_CPUS else level["replica_cpu_cores"]
            )
            if level["late_frames_percent"] > 100 * LATE_OVERLOAD:
                stop = f"late frames passed {100 * LATE_OVERLOAD:.0f} %"
                break
            if level["replica_cpu_cores"] > REPLICA_FULL:
                stop = "the replica's core was used up"
                break
            if machine > CLIENTS_BUSY:
                stop = (
                    f"the clients' {len(OTHER_CPUS)} core(s) ran out (the machine has "
                    f"{MACHINE_CORES}, one the replica's)"
                )
                break
            if time.monotonic() - ramp_started > RAMP_BUDGET_SECONDS:
                stop = "the ramp's time budget ran out"
                break
        figures["ramp"] = ramp
        figures["ramp_stopped"] = stop
        # The most in time, measured; and what CPU per participant says a core holds.
        in_time = [
            r
            for r in ramp
            if r["late_frames_percent"] <= 100 * LATE_LIMIT and r["replica_cpu_cores"] <= 1.0
        ]
        best = max(in_time, key=lambda r: r["participants"]) if in_time else None
        figures["participants_in_time_measured"] = best["participants"] if best else 0
        # CPU per participant from the largest level in time (else the largest in a core).
        within = in_time or [r for r in ramp if r["replica_cpu_cores"] <= 1.0] or ramp
        top = max(within, key=lambda r: r["participants"])
        by_cpu = int(top["participants"] / top["replica_cpu_cores"])
        figures["participants_per_core_by_cpu"] = by_cpu
        if best is not None and best["replica_cpu_cores"] >= 0.9:
            figures["participants_per_core"] = best["participants"]
            figures["participants_per_core_basis"] = (
                f"measured: {best['participants']} participants in time on "
                f"{best['replica_cpu_cores']} of a core"
            )
        else:
            figures["participants_per_core"] = by_cpu
            figures["participants_per_core_basis"] = (
                f"extrapolated from {top['replica_cpu_percent_per_participant']} % of a core "
                f"per participant at {top['participants']} participants "
                f"({top['late_frames_percent']} % late); the ramp stopped: {stop}; measured "
                f"in time (under 1 % late): {figures['participants_in_time_measured']}"
            )
        # Profile at the usual pattern.
        await bench.clear()
        await rooms(bench, PROFILE_PARTICIPANTS // 10, 10, usual)
        await asyncio.sleep(SETTLE_SECONDS)
        await replica.request("profile", on=True)
        await asyncio.sleep(PROFILE_SECONDS)
        await replica.request("profile", on=False)
        figures["profile"] = where_time_goes(profile_path, PROFILE_SECONDS)
        figures["profile"]["participants"] = len(bench.members)
        await bench.clear()
        print("the real conference service:", flush=True)
        figures["service"] = await service_phase(clients, Path(tempfile.mkdtemp()))
        top = figures["service"][-1]
        figures["service_participants_per_core_by_cpu"] = int(
            100 / max(top["service_cpu_percent_per_participant"], 1e-6)
        )
    finally:
        for helper in [*clients, replica]:
            await helper.stop()
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


async def service_phase(clients: list[Helper], home: Path) -> list[dict[str, Any]]:
    """The real conference service as one replica (pinned to the replica's core): rooms of
    10, 1-2 talking, joined through the gateway and the calls service by reference clients.
    Its CPU from /proc, its late frames from its metrics."""
    quiet = {"PARLEY_LOG_LEVEL": "warning"}

    def service(name: str, module: str, **extra: Any) -> ServiceDef:
        env = {**quiet, **extra.pop("env", {})}
        return ServiceDef(name=name, module=module, health_port=0, env=env, restart=False, **extra)

    services = [
        service("auth", "parley_auth", database=True, master_key=True),
        service("gateway", "parley_gateway", public_port=0, public_port_env="PARLEY_GATEWAY_PORT"),
        service("calls", "parley_calls"),
        service(
            "conference",
            "parley_conference",
            env={
                "PARLEY_CONFERENCE_ICE_HOST_ADDRESSES": "127.0.0.1",
                "PARLEY_CONFERENCE_MAX_PARTICIPANTS": "1000",
            },
        ),
    ]
    settings = StackSettings(
        home=home, master_key=base64.b64encode(os.urandom(32)).decode(), nats_port=0
    )
    with open(home / "stack.log", "w") as log:  # noqa: ASYNC230 (once, before anything runs)
        stack = DevStack(settings, services=services, out=log)
        try:
            await stack.start()
            app = {
                "host": f"127.0.0.1:{stack.ports['gateway'].public}",
                "key": str(stack.sandbox_app["application_key"]),
                "secret": str(stack.sandbox_app["application_secret"]),
            }
            pid = stack.supervisor.status("conference").pid
            assert pid is not None
            if REPLICA_CPUS:
                os.sched_setaffinity(pid, REPLICA_CPUS)
            metrics = f"http://127.0.0.1:{stack.ports['conference'].health}/metrics"
            levels = []
            joined: list[tuple[Helper, str]] = []
            index = 0
            gate = asyncio.Semaphore(JOINS_IN_FLIGHT)
            for level in SERVICE_LEVELS:

                async def one(seat: int, room: str, client: Helper, id: str, talker: bool) -> None:
                    async with gate:
                        tone = 300 + 20 * (seat % 30) if talker else None
                        done = await client.request(
                            "join", id=id, room=room, tone=tone, **app, timeout=60
                        )
                        if not done["connected"]:
                            raise RuntimeError(f"{id} did not connect")
                        joined.append((client, id))

                joins = []
                while len(joined) + len(joins) < level:
                    room = f"bench room {index // 10}.x*>"
                    talkers = usual(index // 10)
                    for seat in range(10):
                        client = clients[index % len(clients)]
                        joins.append(one(index, room, client, f"s{index}", seat < talkers))
                        index += 1
                await asyncio.gather(*joins)
                await asyncio.sleep(SETTLE_SECONDS)
                before = (time.monotonic(), cpu_seconds(pid), _mixer_counts(metrics))
                await asyncio.sleep(WINDOW_SECONDS)
                after = (time.monotonic(), cpu_seconds(pid), _mixer_counts(metrics))
                wall = after[0] - before[0]
                cores = (after[1] - before[1]) / wall
                frames = after[2]["frames_sent"] - before[2]["frames_sent"]
                late = after[2]["late_frames"] - before[2]["late_frames"]
                figures = {
                    "participants": len(joined),
                    "service_cpu_cores": round(cores, 3),
                    "service_cpu_percent_per_participant": round(100 * cores / len(joined), 3),
                    "late_frames_percent": round(100 * late / max(1, frames), 3),
                    "frames_sent": frames,
                }
                levels.append(figures)
                print(
                    f"  the conference service, {len(joined)} participants in rooms of 10: "
                    f"{cores:.2f} cores = {figures['service_cpu_percent_per_participant']} % "
                    f"of a core each, late frames {figures['late_frames_percent']} %",
                    flush=True,
                )
            for client, id in joined:
                await client.request("leave", id=id)
            return levels
        finally:
            await stack.stop()


def _mixer_counts(url: str) -> dict[str, float]:
    """The mixer's frames sent and late frames so far, from the service's metrics."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    counts = {"frames_sent": 0.0, "late_frames": 0.0}
    for line in text.splitlines():
        for name in counts:
            if line.startswith(f"parley_conference_mixer_{name}_total "):
                counts[name] = float(line.split()[-1])
    return counts


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="parley-conference-") as tmp:
        figures = asyncio.run(run(str(Path(tmp) / "replica.prof")))
    print()
    for key in ("rooms_of_3", "rooms_of_10", "rooms_of_10_all_talking"):
        f = figures[key]
        print(
            f"{key}: {f['participants']} participants, replica "
            f"{f['replica_cpu_percent_per_participant']} % of a core per participant, "
            f"{f['late_frames_percent']} % late"
        )
    print(
        f"participants one core mixes with under 1 % late frames: "
        f"{figures['participants_per_core']} ({figures['participants_per_core_basis']})"
    )
    for level in figures["service"]:
        print(
            f"the conference service itself: {level['participants']} participants, "
            f"{level['service_cpu_percent_per_participant']} % of a core each, "
            f"{level['late_frames_percent']} % late"
        )
    print(
        "participants per core by the service's CPU: "
        f"{figures['service_participants_per_core_by_cpu']}"
    )
    profile = figures["profile"]
    print(
        f"profile of the replica, {profile['participants']} participants in rooms of 10, "
        f"own time by group (% of the profiled time):"
    )
    for name, pct in profile["groups_percent"].items():
        print(f"  {pct:5.1f} %  {name}")
    print("  top functions by own time:")
    for row in profile["top"]:
        print(
            f"  {row['own_percent']:5.1f} % own, {row['cumulative_percent']:5.1f} % cum  {row['function']}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
