"""A reconnect storm: N idle clients on one of two gateway replicas, that replica killed
(SIGKILL), and how long until every client is back on the other, and where the time goes.

Starts NATS, PostgreSQL, auth, the messaging service (the storm's messages) and two gateway
processes, gateway-a and gateway-b (the DevStack of `make run`, free ports, temp dir), then
runs the shipped storm scenario (scenarios/storm.yaml) through the load tester's engine
(parley_loadtest) at N users over W worker processes, the hosts ordered gateway-a then
gateway-b, so every client signs in on gateway-a. `--after` seconds into the traffic phase
gateway-a gets SIGKILL; the engine measures how long until every client is connected again
(on gateway-b: the only one left), how many gave up, and whether the messages sent across
the storm arrived once each.

Where the time goes, from the kill until the engine saw every client back: CPU seconds of
gateway-b (in all, and per reconnect), auth (token renewals, registrations: its counters
say which), the messaging service, NATS, PostgreSQL (with its backends), the load tester's
workers and the whole machine; gateway-b's counters over the same window (frames in by type,
resumes, token checks, routed requests); and presence writes: the sequence of the presence
bucket's stream (every put, update and delete is one message), plus any gateway metric naming
presence.
Prints the figures, then one JSON line.

    .venv/bin/python bench/storm.py [--clients N] [--workers W] [--ramp-up R] [--report DIR]

Exit status 1 when a client gave up or was not connected at the end, a message was lost or
duplicated, or the run broke; the 10 s goal is printed with the SLO lines (MISSED or ok)
without failing the run, as the other benches treat their speed goals.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import cpu_seconds, tree_cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import aiohttp
import nats

from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from parley_loadtest.cli import make_report, write_reports
from parley_loadtest.engine import Engine, EngineError
from parley_loadtest.report import slo_results
from parley_loadtest.scenario import Scenario
from parley_loadtest.validate import build, load_file, overlay
from parley_service.presence import PRESENCE_STREAM
from tests.support.metrics import scrape

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "storm.yaml"
QUIET = {"PARLEY_LOG_LEVEL": "WARNING"}
GATEWAYS = ("gateway-a", "gateway-b")
KILLED, SURVIVOR = GATEWAYS
GOAL_SECONDS = 10.0


# -- samples of the processes, the gateways' counters and the presence stream ------------------


@dataclass
class Sample:
    at: float
    cpu: dict[str, float]  # process (or group) -> CPU seconds so far
    machine_busy: float  # CPU seconds of the whole machine, every core, not idle
    presence_seq: int | None  # last sequence of the presence bucket's stream
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> samples
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


def machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle (nor waiting for I/O) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def flat(families: dict[str, Any]) -> dict[str, float]:
    """Every sample of the families, `name{label=value,...}` -> value (buckets and the
    `_created` timestamps left out)."""
    out: dict[str, float] = {}
    for family in families.values():
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return out


class Probe:
    """Takes samples of the stack: CPU of its processes and of the engine's workers, the
    gateways' and auth's /metrics, and the presence stream's sequence."""

    def __init__(self, stack: DevStack, js: Any, http: aiohttp.ClientSession) -> None:
        self.stack, self.js, self.http = stack, js, http
        self.pids: dict[str, int] = {}
        for name in (*GATEWAYS, "auth", "messaging"):
            pid = stack.supervisor.status(name).pid
            assert pid is not None, f"{name} is not running"
            self.pids[name] = pid
        assert stack.nats is not None and stack.nats.pid is not None
        self.pids["nats"] = stack.nats.pid
        assert stack.postgres is not None and stack.postgres.pid is not None
        self.pids["postgres"] = stack.postgres.pid

    def cpu(self, alive: set[str]) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            if name in alive:
                out[name] = tree_cpu_seconds(pid) if name == "postgres" else cpu_seconds(pid)
        # the load tester: its worker processes (the engine's only multiprocessing children)
        out["loadtest_workers"] = sum(
            cpu_seconds(p.pid) for p in mp.active_children() if p.pid is not None
        )
        own = os.times()
        out["loadtest_engine"] = own.user + own.system
        return out

    async def presence_seq(self) -> int | None:
        try:
            info = await self.js.stream_info(PRESENCE_STREAM)
        except Exception:  # not made yet: no presence write so far
            return None
        return int(info.state.last_seq)

    async def metrics(self, services: list[str]) -> dict[str, dict[str, float]]:
        ports = [self.stack.ports[name].health for name in services]
        pages = await asyncio.gather(*(scrape(self.http, port) for port in ports))
        return {name: flat(page) for name, page in zip(services, pages, strict=True)}

    async def take(self, alive: set[str]) -> Sample:
        at = time.time()
        cpu = self.cpu(alive)
        busy = machine_busy_seconds()
        load = os.getloadavg()
        scraped = [s for s in (*GATEWAYS, "auth") if s in alive]
        seq, metrics = await asyncio.gather(self.presence_seq(), self.metrics(scraped))
        return Sample(at, cpu, busy, seq, metrics, load)


def changed(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The samples that moved between two scrapes (gauges and counters alike)."""
    out = {}
    for name, value in after.items():
        delta = value - before.get(name, 0.0)
        if abs(delta) > 1e-9:
            out[name] = round(delta, 6)
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = dict(p.split("=", 1) for p in rest.rstrip("}").split(",") if p)
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def load_text(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


# -- the benchmark -----------------------------------------------------------------------------


def scenario_for(
    args: argparse.Namespace, hosts: list[str], app: dict[str, Any], state: str
) -> Scenario:
    """The shipped storm scenario at this size, on these hosts; the bench kills the replica
    itself (the engine's kill hook), so the file's kill command is left out."""
    raw = overlay(
        load_file(SCENARIO),
        {
            "name": "storm-bench",
            "target.hosts": hosts,
            "target.state_dir": state,
            "users": args.clients,
            "workers": args.workers,
            "ramp_up_per_second": args.ramp_up,
            "duration_seconds": args.duration,
            "messages.per_second": args.messages_per_second,
            "storm.after_seconds": args.after,
            "storm.timeout_seconds": args.timeout,
            "storm.kill.command": "",
        },
    )
    return build(
        raw,
        {
            "PARLEY_APPLICATION_KEY": str(app["application_key"]),
            "PARLEY_APPLICATION_SECRET": str(app["application_secret"]),
        },
        kill_given=True,
        source=str(SCENARIO),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-storm-"))
    os.chmod(home, 0o755)

    def service(name: str, module: str, **extra: Any) -> ServiceDef:
        return ServiceDef(name=name, module=module, health_port=0, restart=False, **extra)

    services = [
        service("auth", "parley_auth", env=QUIET, database=True, master_key=True),
        *(
            service(
                name,
                "parley_gateway",
                env={**QUIET, "PARLEY_GATEWAY_ID": name},
                public_port=0,
                public_port_env="PARLEY_GATEWAY_PORT",
            )
            for name in GATEWAYS
        ),
        service("messaging", "parley_messaging", env=QUIET, database=True),
    ]
    settings = StackSettings(
        home=home, master_key=base64.b64encode(os.urandom(32)).decode(), nats_port=0
    )
    log = open(home / "stack.log", "w")  # noqa: ASYNC230 (once, before anything runs)
    stack = DevStack(settings, services=services, out=log)
    nc = None
    ok = False
    try:
        began = time.time()
        await stack.start()
        nc = await nats.connect(stack.nats_url)
        hosts = [f"127.0.0.1:{stack.ports[name].public}" for name in GATEWAYS]
        scenario = scenario_for(args, hosts, stack.sandbox_app, str(home / "clients"))
        print(
            f"stack up in {time.time() - began:.1f} s: {KILLED} at {hosts[0]}, {SURVIVOR} at "
            f"{hosts[1]}; {args.clients} clients over {args.workers} workers at "
            f"{args.ramp_up:g}/s; load average {load_text(os.getloadavg())}",
            flush=True,
        )
        async with aiohttp.ClientSession() as http:
            probe = Probe(stack, nc.jetstream(), http)
            figures = await storm(args, stack, probe, scenario, began)
        ok = not failed(figures)
        return figures
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        await stack.stop()
        log.close()
        if not ok:  # the services' output says why (the survivor's warnings, summed up)
            kept = Path(tempfile.gettempdir()) / f"{home.name}-stack.log"
            shutil.copyfile(home / "stack.log", kept)
            print(f"the stack's output is kept in {kept}; {SURVIVOR}'s warnings by event:")
            for event, count in warnings_of(kept, SURVIVOR).most_common(10):
                print(f"  {count:>7} {event}")
        shutil.rmtree(home, ignore_errors=True)


def warnings_of(log: Path, service: str) -> collections.Counter[str]:
    """How often `service` logged each event at WARNING or above (its JSON log lines)."""
    counts: collections.Counter[str] = collections.Counter()
    prefix = f"{service} "
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith(prefix):
            continue
        text = line.partition("| ")[2]
        try:
            entry = json.loads(text)
        except ValueError:
            counts[text[:120]] += 1  # not a log event: a traceback or a print
            continue
        if isinstance(entry, dict) and str(entry.get("level", "")).lower() != "info":
            counts[f"{entry.get('event')}: {str(entry.get('error', ''))[:100]}"] += 1
    return counts


async def storm(
    args: argparse.Namespace, stack: DevStack, probe: Probe, scenario: Scenario, began: float
) -> dict[str, Any]:
    everyone = {*GATEWAYS, "auth", "messaging", "nats", "postgres"}
    survivors = everyone - {KILLED}
    samples: dict[str, Sample] = {}

    async def kill() -> None:
        samples["kill"] = await probe.take(everyone)
        stack.supervisor.kill(KILLED)  # SIGKILL to its process group; not restarted

    engine = Engine(scenario, kill=kill)
    ramp_began = time.time()
    running = asyncio.create_task(engine.execute())
    tally = engine.tally

    # The ramp-up's end (the traffic phase) and the storm's (every client back, or the
    # engine's timeout), each sampled as soon as the engine says so.
    while engine.run.traffic_started_at is None and not running.done():  # noqa: ASYNC110 (the engine's run is plain data, polled)
        await asyncio.sleep(0.05)
    ramped_at = time.time()
    print(
        f"ramp-up: {len(tally.started)} clients started, {len(tally.start_failed)} failed, in "
        f"{ramped_at - ramp_began:.1f} s; load average {load_text(os.getloadavg())}",
        flush=True,
    )
    while tally.storm_over_at is None and not running.done():  # noqa: ASYNC110 (the tally is plain data, polled)
        await asyncio.sleep(0.02)
    if tally.storm_over_at is not None:
        samples["over"] = await probe.take(survivors)
    try:
        finished = await running
    except EngineError as exc:
        raise SystemExit(f"the run broke: {exc}") from None
    report = make_report(finished)
    if args.report:
        json_path, html_path = write_reports(report, Path(args.report))
        print(f"load tester's report: {json_path} and {html_path}")
    return figures_of(args, report, samples, time.time() - began)


def figures_of(
    args: argparse.Namespace, report: dict[str, Any], samples: dict[str, Sample], seconds: float
) -> dict[str, Any]:
    f, storm_details = report["figures"], report["storm"]
    out: dict[str, Any] = {
        "benchmark": "storm",
        "clients": args.clients,
        "workers": args.workers,
        "ramp_up_per_second": args.ramp_up,
        "messages_per_second": args.messages_per_second,
        "clients_started": f["clients_started"],
        "clients_start_failed": f["clients_start_failed"],
        "connect_p50_ms": f["connect_p50_ms"],
        "connect_p99_ms": f["connect_p99_ms"],
        "gateways_at_kill": storm_details.get("gateways_at_kill"),
        "gateways_at_end": storm_details.get("gateways_at_end"),
        "kill_error": storm_details.get("kill_error"),
        "storm_clients_affected": f.get("storm_clients_affected"),
        "storm_clients_back": f.get("storm_clients_back"),
        "storm_gave_up": f.get("storm_gave_up"),
        "clients_not_connected": f["clients_not_connected"],
        "storm_noticed_seconds_max": f.get("storm_noticed_seconds_max"),
        "storm_reconnect_seconds_p50": f.get("storm_reconnect_seconds_p50"),
        "storm_reconnect_seconds_p99": f.get("storm_reconnect_seconds_p99"),
        "storm_reconnect_seconds_max": f.get("storm_reconnect_seconds_max"),
        "storm_kill_seconds": f.get("storm_kill_seconds"),
        "messages_sent": f["messages_sent"],
        "messages_accepted": f["messages_accepted"],
        "messages_delivered": f["messages_delivered"],
        "messages_failed": f["messages_failed"],
        "messages_lost": f["messages_lost"],
        "messages_duplicates": f["messages_duplicates"],
        "message_latency_p99_ms": f["message_latency_p99_ms"],
        "message_latency_max_ms": f["message_latency_max_ms"],
        "errors": f["errors"],
        "error_samples": report["errors"]["samples"][:5],
        "slo": {s.name: s.line() for s in slo_results(report)},
        "run_seconds": round(seconds, 1),
    }
    before, after = samples.get("kill"), samples.get("over")
    if before is None or after is None:
        out["storm_window"] = None
        return out
    window = after.at - before.at
    back = f.get("storm_clients_back") or 0
    cpu = {
        name: round(after.cpu[name] - before.cpu[name], 3)
        for name in after.cpu
        if name in before.cpu
    }
    survivor = changed(before.metrics[SURVIVOR], after.metrics[SURVIVOR])
    auth = changed(before.metrics["auth"], after.metrics["auth"])
    writes = (
        after.presence_seq - before.presence_seq
        if after.presence_seq is not None and before.presence_seq is not None
        else None
    )
    hellos = metric(survivor, "parley_gateway_frames_total", direction="in", type="hello")
    families = sorted(
        {k.partition("{")[0] for k in after.metrics[SURVIVOR] if "presence" in k.lower()}
    )
    out["storm_window"] = {
        # from the kill until the engine saw every client back (events come every 0.25 s),
        # or until its storm timeout
        "seconds": round(window, 3),
        "all_back": f.get("storm_reconnect_seconds_max") is not None,
        "load_average_at_kill": load_text(before.load),
        "load_average_at_end": load_text(after.load),
        "cpu_seconds": cpu,
        "machine_busy_cores": round((after.machine_busy - before.machine_busy) / window, 2),
        "gateway_b_cpu_ms_per_reconnect": round(cpu[SURVIVOR] * 1000 / back, 3) if back else None,
        "gateway_b_cpu_percent": round(100 * cpu[SURVIVOR] / window, 1),
        "gateway_b_connections": {
            "before": metric(before.metrics[SURVIVOR], "parley_gateway_connections"),
            "after": metric(after.metrics[SURVIVOR], "parley_gateway_connections"),
        },
        "gateway_a_connections_at_kill": metric(
            before.metrics[KILLED], "parley_gateway_connections"
        ),
        "gateway_b_hellos": hellos,
        "gateway_b_cpu_ms_per_hello": round(cpu[SURVIVOR] * 1000 / hellos, 3) if hellos else None,
        "gateway_b_errors": {
            k.partition("code=")[2].rstrip("}"): v
            for k, v in survivor.items()
            if k.startswith("parley_gateway_errors_total")
        },
        "gateway_b_token_refreshes": metric(
            survivor, "parley_gateway_frames_total", direction="in", type="refresh_token"
        ),
        "gateway_b_resumes": {
            k.partition("outcome=")[2].rstrip("}"): v
            for k, v in survivor.items()
            if k.startswith("parley_gateway_resumes_total")
        },
        "gateway_b_token_checks": {
            k.partition("how=")[2].rstrip("}"): v
            for k, v in survivor.items()
            if k.startswith("parley_gateway_token_checks_total")
        },
        "auth_tokens_issued": metric(auth, "parley_auth_tokens_issued_total"),
        "auth_registrations": metric(auth, "parley_auth_registrations_total"),
        "presence_writes": writes,
        "presence_writes_per_reconnect": round(writes / back, 2) if writes and back else None,
        "gateway_presence_metric_families": families,
        "gateway_b_changed": {k: v for k, v in survivor.items() if k.startswith("parley_gateway_")},
        "auth_changed": {k: v for k, v in auth.items() if k.startswith("parley_auth_")},
    }
    return out


def show(figures: dict[str, Any]) -> None:
    f = figures
    print(
        f"clients: {f['clients_started']} started ({f['clients_start_failed']} failed), connect "
        f"p50 {f['connect_p50_ms']} ms p99 {f['connect_p99_ms']} ms; at the kill "
        f"{f['gateways_at_kill']}, at the end {f['gateways_at_end']}"
    )
    print(
        f"storm: {f['storm_clients_affected']} lost their connection (the last "
        f"{f['storm_noticed_seconds_max']} s after the kill), {f['storm_clients_back']} back, "
        f"{f['storm_gave_up']} gave up, {f['clients_not_connected']} not connected at the end"
    )
    print(
        f"back after the kill: p50 {f['storm_reconnect_seconds_p50']} s, p99 "
        f"{f['storm_reconnect_seconds_p99']} s, max {f['storm_reconnect_seconds_max']} s "
        f"(goal: all within {GOAL_SECONDS:g} s)"
    )
    print(
        f"messages: {f['messages_sent']} sent, {f['messages_accepted']} accepted, "
        f"{f['messages_delivered']} delivered, {f['messages_lost']} lost, "
        f"{f['messages_duplicates']} duplicates; latency p99 {f['message_latency_p99_ms']} ms, "
        f"max {f['message_latency_max_ms']} ms"
    )
    w = f["storm_window"]
    if w is not None:
        until = "every client back" if w["all_back"] else "the storm timeout (not all back)"
        print(
            f"the storm window: {w['seconds']} s from the kill to {until}; load "
            f"average {w['load_average_at_kill']} at the kill, {w['load_average_at_end']} at "
            f"the end; the machine {w['machine_busy_cores']} cores busy"
        )
        print(f"  CPU seconds in it: {w['cpu_seconds']}")
        print(
            f"  {SURVIVOR}: {w['gateway_b_cpu_ms_per_reconnect']} ms CPU per reconnect "
            f"({w['gateway_b_cpu_percent']} % of a core), {w['gateway_b_cpu_ms_per_hello']} ms "
            f"per hello; connections "
            f"{w['gateway_b_connections']['before']:g} -> {w['gateway_b_connections']['after']:g}"
            f" ({KILLED} had {w['gateway_a_connections_at_kill']:g}); hellos "
            f"{w['gateway_b_hellos']:g}, token refreshes {w['gateway_b_token_refreshes']:g}, "
            f"resumes {w['gateway_b_resumes']}, token checks {w['gateway_b_token_checks']} "
            f"(known: the session's own token, no signature check), errors sent "
            f"{w['gateway_b_errors']}"
        )
        print(
            f"  auth: {w['auth_tokens_issued']:g} tokens issued, {w['auth_registrations']:g} "
            f"registrations; presence writes {w['presence_writes']} "
            f"({w['presence_writes_per_reconnect']} per reconnect); gateway metric families "
            f"naming presence: {w['gateway_presence_metric_families'] or 'none'}"
        )
    for line in f["slo"].values():
        print(f"  SLO {line}")
    for sample in f["error_samples"]:
        print(f"  error: {sample}")


def failed(figures: dict[str, Any]) -> bool:
    f = figures
    return bool(
        f["storm_window"] is None
        or f["kill_error"]
        or f["clients_start_failed"]
        or f["storm_gave_up"]
        or f["clients_not_connected"]
        or f["storm_clients_back"] != f["clients"]
        or f["messages_lost"]
        or f["messages_duplicates"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="load tester processes")
    parser.add_argument("--ramp-up", type=float, default=150.0, help="clients started a second")
    parser.add_argument("--duration", type=float, default=30.0, help="traffic phase, seconds")
    parser.add_argument("--after", type=float, default=5.0, help="the kill, s into traffic")
    parser.add_argument("--timeout", type=float, default=60.0, help="longest storm, seconds")
    parser.add_argument("--messages-per-second", type=float, default=10.0)
    parser.add_argument("--report", metavar="DIR", help="also write the load tester's reports")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average at the start: {load_text(os.getloadavg())}", flush=True)
    figures = asyncio.run(run(args))
    show(figures)
    print(json.dumps(figures))
    sys.exit(1 if failed(figures) else 0)


if __name__ == "__main__":
    main()
