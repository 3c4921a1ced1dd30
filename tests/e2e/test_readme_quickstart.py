"""The README's client quick start runs as written against a running stack."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres

from .stack import E2EStack, conference_def, messaging_def, push_def, sip_def, start_stack

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
) -> AsyncIterator[E2EStack]:
    """What `make run` starts that the quick start uses: auth, gateways, calls, messaging."""
    home = tmp_path_factory.mktemp("quickstart")
    db = await postgres_server.create_database(f"e2e_qs_{home.name.replace('-', '_')[:30]}")
    running = await start_stack(
        home, nats_server.url, db, extra=[messaging_def(), push_def(), sip_def(), conference_def()]
    )
    try:
        yield running
    finally:
        await running.devstack.stop()


def quickstart_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no python block"
    return str(blocks[0])


async def test_readme_quick_start_runs_as_written(stack: E2EStack, tmp_path: Path) -> None:
    code = quickstart_code()
    assert '"localhost:8080"' in code  # the make-run default; this stack has its own port
    script = tmp_path / "quickstart.py"
    script.write_text(code.replace('"localhost:8080"', f'"{stack.host("gateway-a")}"'))
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PARLEY_APPLICATION_KEY": stack.app_key,
        "PARLEY_APPLICATION_SECRET": stack.app_secret,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "alice started on gateway gateway-a" in text
    assert "bob started on gateway gateway-a" in text
    assert "user_id='bob', online=True, devices=1" in text
    assert "bob: incoming call from alice {'topic': 'demo'}" in text
    assert "alice: talking to bob" in text
    assert "alice: call ended HUNG_UP after" in text
    assert "alice: call quality: MOS" in text and "over opus/48000/2" in text
    assert "('app', 'hung_up'): " in text  # the first call's reports, stored and counted
    assert "app: in the room: ['alice', 'bob']" in text
    assert "alice: left the room: REMOVED" in text
    assert "bob: message from alice: Hello, Bob!" in text
    assert "alice: message sent to bob" in text
    assert "alice: message delivered to bob" in text
    assert 'alice: push to b"bob\'s phone"' in text
    assert "bob: pushed a message from alice" in text
    assert "bob: message from alice: Are you there?" in text
    # The device credential was kept, so a second run does not register again.
    assert list((tmp_path / ".local/share/parley").rglob("*.json"))
