"""The device credential: kept once per (hosts, application, user), reused, replaced if refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.unit.client_double import harness


def credential_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "credentials").glob("*.json"))


async def test_credential_is_persisted_and_reused(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        first, _ = h.client()
        await first.start()
        await first.terminate()

        [path] = credential_files(tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = json.loads(path.read_text())
        [device] = h.backend.devices.values()
        assert stored["instance_id"] == device.instance_id
        assert stored["instance_secret"] == device.instance_secret
        assert (stored["application_key"], stored["user_id"]) == (
            h.backend.application_key,
            "alice",
        )
        assert not list((tmp_path / "credentials").glob(".credential-*"))  # no temp file left

        second, recorder = h.client()
        await second.start()
        assert second.is_started and recorder.started == 1
        assert h.gateways[0].http_requests == ["register", "token"]  # no second registration
        [token_request] = h.backend.token_requests
        assert token_request.credential.instance_id == device.instance_id


async def test_refused_credential_is_dropped_and_the_device_registers_again(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        first, _ = h.client()
        await first.start()
        await first.terminate()
        old_id = json.loads(credential_files(tmp_path)[0].read_text())["instance_id"]
        h.backend.revoke_all()

        second, recorder = h.client()
        await second.start()
        assert h.gateways[0].http_requests == ["register", "token", "register"]
        [path] = credential_files(tmp_path)
        new_id = json.loads(path.read_text())["instance_id"]
        assert new_id != old_id and not h.backend.devices[new_id].revoked
        assert recorder.logged("was refused")
        assert not recorder.failed


async def test_unreadable_credential_file_means_registering_again(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        first, _ = h.client()
        await first.start()
        await first.terminate()
        [path] = credential_files(tmp_path)
        path.write_text("{not json")

        second, recorder = h.client()
        await second.start()
        assert h.gateways[0].http_requests == ["register", "register"]
        assert recorder.logged("not a valid credential file")
        json.loads(path.read_text())  # replaced by a good one


async def test_credentials_are_kept_per_user(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, _ = h.client(h.builder("alice"))
        bob, _ = h.client(h.builder("bob"))
        await alice.start()
        await bob.start()
        assert len(credential_files(tmp_path)) == 2
        assert [r.user_id for r in h.backend.register_requests] == ["alice", "bob"]
