"""The embedded stack itself: NATS JetStream, PostgreSQL, the supervisor."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from parley_devstack._proc import pid_alive, poll_until
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.stack import DevStack, StackSettings
from parley_devstack.supervisor import ServiceSpec, Supervisor


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory outside pytest's temp root (see the postgres_server fixture for why)."""
    base = Path(tempfile.mkdtemp(prefix="parley-test-pg-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


async def test_nats_jetstream_publish_and_read_back(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="DEVSTACK_TEST", subjects=["devstack.test.>"])
        ack = await js.publish("devstack.test.one", b"hello")
        assert ack.stream == "DEVSTACK_TEST"
        assert ack.seq >= 1
        stored = await js.get_msg("DEVSTACK_TEST", ack.seq)
        assert stored.data == b"hello"
        assert stored.subject == "devstack.test.one"
    finally:
        await nc.close()


async def test_postgres_write_and_read(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        await conn.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
        await conn.execute("INSERT INTO item VALUES ($1, $2)", 1, "one")
        assert await conn.fetchval("SELECT name FROM item WHERE id = 1") == "one"
    finally:
        await conn.close()


async def test_fresh_databases_are_isolated(postgres_server: EmbeddedPostgres) -> None:
    a = await postgres_server.create_database("isolation_a")
    b = await postgres_server.create_database("isolation_b")
    conn_a = await asyncpg.connect(a)
    conn_b = await asyncpg.connect(b)
    try:
        await conn_a.execute("CREATE TABLE only_in_a (x int)")
        assert await conn_a.fetchval("SELECT to_regclass('only_in_a') IS NOT NULL")
        assert not await conn_b.fetchval("SELECT to_regclass('only_in_a') IS NOT NULL")
    finally:
        await conn_a.close()
        await conn_b.close()
        await postgres_server.drop_database("isolation_a")
        await postgres_server.drop_database("isolation_b")


async def test_postgres_keeps_data_across_restarts(pg_dir: Path) -> None:
    # A second server next to the session one: different directory, different port.
    server = EmbeddedPostgres(pg_dir / "pg")
    await server.start()
    try:
        assert server.initialized_now
        dsn = await server.create_database("keep")
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        await conn.close()
        first_pid = server.pid
        assert first_pid is not None
        await server.stop()
        assert not pid_alive(first_pid)

        await server.start()
        assert not server.initialized_now
        conn = await asyncpg.connect(server.dsn_for("keep"))
        assert await conn.fetchval("SELECT v FROM kept") == "still here"
        await conn.close()
    finally:
        await server.stop()


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_supervisor_restarts_a_crashing_child() -> None:
    lines: list[tuple[str, str]] = []
    sup = Supervisor(output=lambda name, line: lines.append((name, line)))
    await sup.start(ServiceSpec("crashy", _python("print('up', flush=True); raise SystemExit(3)")))
    try:
        assert await poll_until(lambda: sup.status("crashy").starts >= 2, timeout=5)
        status = sup.status("crashy")
        assert status.last_exit_code == 3
        assert ("crashy", "up") in lines
        assert any("restarting in 0.5 s" in line for _, line in lines)
    finally:
        await sup.stop_all()
    starts = sup.status("crashy").starts
    assert not sup.status("crashy").running
    # Stopped means stopped: no restart after stop().
    assert not await poll_until(lambda: sup.status("crashy").starts > starts, timeout=0.7)


async def test_supervisor_stop_terminates_child_and_its_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor(output=lambda name, line: None)
    await sup.start(ServiceSpec("sleepy", _python(code)))
    assert await poll_until(lambda: "ready" in sup.status("sleepy").recent_output, timeout=5)
    pid = sup.status("sleepy").pid
    grandchild = int(pidfile.read_text())
    assert pid is not None and pid_alive(pid) and pid_alive(grandchild)
    await sup.stop("sleepy")
    status = sup.status("sleepy")
    assert not status.running
    assert status.last_exit_code == -signal.SIGTERM
    assert not pid_alive(pid)
    assert await poll_until(lambda: not pid_alive(grandchild), timeout=2)


async def test_supervisor_kills_a_child_that_ignores_sigterm() -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = Supervisor(output=lambda name, line: None, stop_timeout=0.3)
    await sup.start(ServiceSpec("stubborn", _python(code)))
    assert await poll_until(lambda: "ready" in sup.status("stubborn").recent_output, timeout=5)
    await sup.stop("stubborn")
    assert sup.status("stubborn").last_exit_code == -signal.SIGKILL


async def test_supervisor_kill_without_restart_and_env() -> None:
    sup = Supervisor(output=lambda name, line: None)
    spec = ServiceSpec(
        "once",
        _python("import os, time; print(os.environ['PARLEY_X'], flush=True); time.sleep(60)"),
        env={"PARLEY_X": "from-spec"},
        restart=False,
    )
    await sup.start(spec)
    assert await poll_until(lambda: "from-spec" in sup.status("once").recent_output, timeout=5)
    assert sup.kill("once", signal.SIGKILL)
    assert await poll_until(lambda: not sup.status("once").running, timeout=5)
    assert not await poll_until(lambda: sup.status("once").starts > 1, timeout=0.7)
    assert sup.status("once").last_exit_code == -signal.SIGKILL
    await sup.stop("once")  # stopping a dead child is a no-op


@pytest.mark.parametrize("name", ["bad-name", "1abc", "x" * 64, 'a"b'])
async def test_database_names_are_checked(postgres_server: EmbeddedPostgres, name: str) -> None:
    with pytest.raises(ValueError):
        await postgres_server.create_database(name)


async def test_nats_on_its_own_port_and_dir(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    other = EmbeddedNats(tmp_path / "nats2")
    await other.start()
    try:
        assert other.port != nats_server.port
        nc = await nats.connect(other.url)
        await nc.close()
    finally:
        await other.stop()
    assert not other.running
    assert (tmp_path / "nats2" / "nats-server.log").is_file()


async def test_supervisor_stops_children_on_sigterm() -> None:
    sup = Supervisor(output=lambda name, line: None)
    await sup.start(ServiceSpec("worker", _python("import time; time.sleep(60)")))
    pid = sup.status("worker").pid
    assert pid is not None
    asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
    assert await sup.run_until_signal() == signal.SIGTERM
    assert not sup.status("worker").running
    assert not pid_alive(pid)


async def test_the_sandbox_app_is_made_once_per_database(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    """`make run` creates its sandbox app once, and again only for another database."""
    first_db = await postgres_server.create_database("sandbox_once_a")
    second_db = await postgres_server.create_database("sandbox_once_b")
    key = base64.b64encode(os.urandom(32)).decode()

    async def prepared(database_url: str) -> dict[str, object]:
        settings = StackSettings(
            home=tmp_path, nats_url=nats_server.url, database_url=database_url, master_key=key
        )
        stack = DevStack(settings, services=(), out=io.StringIO())
        try:
            await stack.start()
            return dict(stack.sandbox_app)
        finally:
            await stack.stop()

    made = await prepared(first_db)
    assert made["application_key"] and made["application_secret"]
    assert await prepared(first_db) == made  # kept across restarts
    other = await prepared(second_db)  # the recorded app is not in this database
    assert other["application_key"] != made["application_key"]
