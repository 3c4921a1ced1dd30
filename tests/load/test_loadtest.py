"""parley-loadtest against the embedded stack (auth, two gateway replicas, calls, stats and
messaging as processes on free ports): the smoke scenario through the command, a bad
scenario that starts nothing, and a small reconnect storm with a replica killed by the
stack's handle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_loadtest.cli import make_report, write_reports
from parley_loadtest.engine import run_scenario
from parley_loadtest.validate import build
from tests.e2e.stack import E2EStack, messaging_def, running_stack
from tests.support.wire import bounded

REPO = Path(__file__).resolve().parents[2]
COMMAND = str(Path(sys.executable).parent / "parley-loadtest")
QUIET = {"PARLEY_LOG_LEVEL": "WARNING"}


def load_stack(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> contextlib.AbstractAsyncContextManager[E2EStack]:
    """The stack a load test runs against: auth, a gateway and the messaging service."""
    return running_stack(
        tmp_path / f"load_{tmp_path.name}",
        nats_server.url,
        postgres_server,
        extra=[messaging_def()],
        env=QUIET,
    )


async def command(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        COMMAND,
        *args,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@bounded(110)
async def test_the_smoke_scenario_delivers_everything_once(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    async with load_stack(tmp_path, nats_server, postgres_server) as stack:
        status, out, err = await command(
            "run",
            "scenarios/smoke.yaml",
            "--host",
            stack.host("gateway-a"),
            "--host",
            stack.host("gateway-b"),
            "--state-dir",
            str(tmp_path / "state"),
            "--out",
            str(tmp_path / "reports"),
            "--quiet",
            env={
                "PARLEY_APPLICATION_KEY": stack.app_key,
                "PARLEY_APPLICATION_SECRET": stack.app_secret,
            },
        )
    assert status == 0, out + err
    (json_file,) = (tmp_path / "reports").glob("smoke-*.json")
    (html_file,) = (tmp_path / "reports").glob("smoke-*.html")
    report = json.loads(json_file.read_text())
    figures, planned = report["figures"], report["planned"]
    assert planned == {
        "clients": 20,
        "media_clients": 3,
        "calls": 6,
        "media_calls": 2,
        "messages": 40,
        "conference_joins": 0,
        "phone_calls": 0,
    }
    assert figures["clients_started"] == 20 and figures["clients_not_connected"] == 0
    assert figures["messages_sent"] == 40
    assert figures["messages_accepted"] == 40
    assert figures["messages_delivered"] == 40
    assert figures["messages_lost"] == 0 and figures["messages_duplicates"] == 0
    assert figures["calls_set_up"] == planned["calls"] and figures["calls_failed"] == 0
    assert figures["media_calls_set_up"] == planned["media_calls"]
    assert figures["calls_incoming"] == planned["calls"] + planned["media_calls"]
    assert figures["loss"] == 0 and figures["duplicates"] == 0 and figures["errors"] == 0
    assert figures["message_latency_p99_ms"] > 0 and figures["call_setup_p99_ms"] > 0
    assert report["slo_met"] is True and len(report["slo"]) == 8
    assert report["scenario"]["target"]["hosts"] == [
        stack.host("gateway-a"),
        stack.host("gateway-b"),
    ]
    page = html_file.read_text()
    assert page.count("<svg") == 4 and "Latency percentiles over time" in page
    assert "<script" not in page
    assert f"report: {json_file}" in out


@bounded(30)
async def test_a_bad_field_is_named_and_nothing_starts(tmp_path: Path) -> None:
    connections = 0

    def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        f"name: bad\ntarget:\n  hosts: [127.0.0.1:{port}]\nusers: 4\n"
        "calls:\n  per_second: 1\n  media_share: 1.5\n"
    )
    async with server:
        status, out, err = await command(
            "run",
            str(scenario),
            "--state-dir",
            str(tmp_path / "state"),
            "--out",
            str(tmp_path / "reports"),
            env={"PARLEY_APPLICATION_KEY": "key", "PARLEY_APPLICATION_SECRET": "secret"},
        )
        await asyncio.sleep(0.5)
    assert status == 2
    assert "calls.media_share: must be between 0 and 1, got 1.5" in err
    assert connections == 0
    assert not (tmp_path / "state").exists() and not (tmp_path / "reports").exists()
    assert out == ""


@bounded(110)
async def test_a_storm_brings_every_client_back_on_the_other_replica(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    users = 250
    async with load_stack(tmp_path, nats_server, postgres_server) as stack:
        scenario = build(
            {
                "name": "storm-small",
                "target": {
                    "hosts": [stack.host("gateway-a"), stack.host("gateway-b")],
                    "state_dir": str(tmp_path / "state"),
                },
                "users": users,
                "workers": 2,
                "ramp_up_per_second": 125,
                "duration_seconds": 10,
                "grace_seconds": 20,
                "messages": {"per_second": 10},
                "storm": {"after_seconds": 2, "timeout_seconds": 40},
                "slo": {"gave_up": 0, "loss": 0, "duplicates": 0, "not_connected": 0},
            },
            {
                "PARLEY_APPLICATION_KEY": stack.app_key,
                "PARLEY_APPLICATION_SECRET": stack.app_secret,
            },
            kill_given=True,
        )
        run = await run_scenario(scenario, kill=lambda: stack.kill("gateway-a"))
    report = make_report(run)
    json_file, _ = write_reports(report, tmp_path / "reports")
    figures, storm = report["figures"], report["storm"]
    print(json.dumps({k: v for k, v in figures.items() if k.startswith(("storm", "messages"))}))
    assert storm["gateways_at_kill"] == {"gateway-a": users}
    assert figures["storm_clients_affected"] == users
    assert figures["storm_clients_back"] == users
    assert figures["storm_gave_up"] == 0
    assert storm["gateways_at_end"] == {"gateway-b": users}
    assert figures["storm_clients_on_killed_replica"] == 0
    reconnect = figures["storm_reconnect_seconds_max"]
    assert isinstance(reconnect, float) and reconnect > 0
    assert figures["storm_reconnect_seconds_p50"] <= reconnect
    assert figures["clients_not_connected"] == 0
    # the messages sent to and from the storm's users arrive, once each
    assert figures["messages_sent"] == 100
    assert figures["messages_delivered"] == 100
    assert figures["loss"] == 0 and figures["duplicates"] == 0
    assert report["slo_met"] is True
    assert json.loads(json_file.read_text())["figures"]["storm_reconnect_seconds_max"] == reconnect
