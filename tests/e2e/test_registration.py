"""Registration end to end: reference client -> gateway process -> auth process -> Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from parley_client import ClientListener, ConfigurationError, ParleyClient, ParleyError
from parley_protocol.signatures import registration_signature

from .stack import E2EStack, make_client


class Recorder(ClientListener):
    """Records every client event; signs registrations as an app server would."""

    def __init__(self, secret: str = "", sequence: int = 1, signature: str | None = None) -> None:
        self.secret = secret
        self.sequence = sequence
        self.signature = signature
        self.events: list[tuple[str, Any]] = []
        self.credential_requests = 0

    def on_client_started(self, client: ParleyClient) -> None:
        self.events.append(("started", client.gateway_id))

    def on_client_failed(self, client: ParleyClient, error: ParleyError) -> None:
        self.events.append(("failed", error))

    async def on_registration_credentials_required(self, client: Any, registration: Any) -> None:
        self.credential_requests += 1
        signature = self.signature or registration_signature(
            client.user_id, client.application_key, self.sequence, self.secret
        )
        registration.register(signature, self.sequence)


async def registrations_counted(stack: E2EStack) -> float:
    """parley_auth_registrations_total summed over outcomes, scraped from auth's /metrics."""
    port = stack.devstack.ports["auth"].health
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("parley_auth_registrations_total{")
    )


async def test_self_signed_registration_starts_the_client(stack: E2EStack, tmp_path: Path) -> None:
    client = make_client(stack, "self signed.user*>", tmp_path)
    rec = Recorder()
    client.add_client_listener(rec)
    client.check_configuration()
    await client.start()
    try:
        assert client.is_started
        assert rec.events == [("started", client.gateway_id)]
        assert client.gateway_id in stack.gateways
        assert rec.credential_requests == 0
    finally:
        await client.terminate()


async def test_app_server_signing_callback_registers(stack: E2EStack, tmp_path: Path) -> None:
    client = make_client(stack, "carol", tmp_path, secret=False)
    rec = Recorder(secret=stack.app_secret, sequence=5)
    client.add_client_listener(rec)
    await client.start()
    try:
        assert client.is_started and rec.credential_requests == 1
    finally:
        await client.terminate()


@pytest.mark.parametrize("sequence", [5, 4])
async def test_reused_or_lower_sequence_is_refused(
    stack: E2EStack, tmp_path: Path, sequence: int
) -> None:
    first = make_client(stack, f"dave-{sequence}", tmp_path / "one", secret=False)
    first.add_client_listener(Recorder(secret=stack.app_secret, sequence=5))
    await first.start()
    await first.terminate()

    second = make_client(stack, f"dave-{sequence}", tmp_path / "two", secret=False)
    rec = Recorder(secret=stack.app_secret, sequence=sequence)
    second.add_client_listener(rec)
    with pytest.raises(ParleyError) as info:
        await second.start()
    assert info.value.code == "SEQUENCE_REUSED"
    assert "sequence" in info.value.message
    assert [kind for kind, _ in rec.events] == ["failed"]
    assert not second.is_started
    await second.terminate()


async def test_wrong_signature_is_refused(stack: E2EStack, tmp_path: Path) -> None:
    client = make_client(stack, "erin", tmp_path, secret=False)
    rec = Recorder(secret=stack.app_secret, signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    client.add_client_listener(rec)
    with pytest.raises(ParleyError) as info:
        await client.start()
    assert info.value.code == "INVALID_SIGNATURE"
    assert rec.events and rec.events[0][0] == "failed"
    await client.terminate()


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [("u" * 41, "41 characters"), ("tab\there", "printable ASCII")],
)
async def test_bad_user_ids_are_refused_with_their_reason(
    stack: E2EStack, tmp_path: Path, user_id: str, reason: str
) -> None:
    # The SDK refuses it before sending anything ...
    client = make_client(stack, user_id, tmp_path)
    with pytest.raises(ConfigurationError) as config_info:
        client.check_configuration()
    assert "user_id" in str(config_info.value) and reason in str(config_info.value)
    # ... and the service refuses it from any other sender.
    status, body = await stack.register(user_id)
    assert status == 400
    assert body["code"] == "INVALID_USER_ID" and reason in body["detail"]
    assert body["field"] == "user_id"


async def test_second_start_of_the_same_device_does_not_register_again(
    stack: E2EStack, tmp_path: Path
) -> None:
    rec = Recorder(secret=stack.app_secret, sequence=1)
    first = make_client(stack, "frank", tmp_path, secret=False)
    first.add_client_listener(rec)
    await first.start()
    await first.terminate()
    before = await registrations_counted(stack)

    again = make_client(stack, "frank", tmp_path, secret=False)
    again.add_client_listener(rec)
    await again.start()
    try:
        assert again.is_started
        assert rec.credential_requests == 1
        assert await registrations_counted(stack) == before
    finally:
        await again.terminate()
