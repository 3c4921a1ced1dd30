"""Registration: self-signed with the secret, or signed by the app server via the listener."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from parley_client import ClientListener, ClientRegistration, ParleyClient, ParleyError
from parley_protocol import signatures
from parley_protocol.pb import auth
from tests.unit.client_double import APP_SECRET, harness


class AppServer(ClientListener):
    """Plays the app's backend: signs with the secret it keeps (as a coroutine listener)."""

    def __init__(self, sequence: int = 1, secret: str = APP_SECRET) -> None:
        self.sequence = sequence
        self.secret = secret
        self.asked: list[ClientRegistration] = []

    async def on_registration_credentials_required(
        self, client: ParleyClient, registration: ClientRegistration
    ) -> None:
        self.asked.append(registration)
        await asyncio.sleep(0.01)  # a round trip to the backend
        signature = signatures.registration_signature(
            registration.user_id, registration.application_key, self.sequence, self.secret
        )
        registration.register(signature, self.sequence)


async def test_self_signed_registration_sends_a_valid_signature(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        before = int(time.time() * 1000)
        await client.start()
        assert recorder.started == 1  # the coroutine listener ran to its end before start returned
        assert client.is_started
        assert client.gateway_id == "gw-1"
        assert client.session_id == h.gateways[0].sessions[0].session_id
        [request] = h.backend.register_requests
        assert request.scheme == auth.REGISTRATION_SCHEME_APPLICATION_SECRET
        assert before <= request.timestamp_ms <= int(time.time() * 1000)
        assert request.signature == signatures.self_signed_registration(
            "alice", h.backend.application_key, request.timestamp_ms, APP_SECRET
        )
        assert request.device_name  # a default name is always sent


async def test_app_server_scheme_uses_the_listener_signature_and_sequence(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        app = AppServer(sequence=7)
        client, recorder = h.client(h.builder(secret=None), listener=app)
        await client.start()
        assert [r.user_id for r in app.asked] == ["alice"]
        [request] = h.backend.register_requests
        assert request.scheme == auth.REGISTRATION_SCHEME_APPLICATION_SERVER
        assert request.sequence == 7
        assert request.signature == signatures.registration_signature(
            "alice", h.backend.application_key, 7, APP_SECRET
        )
        assert recorder.started == 1 and not recorder.failed


async def test_register_may_be_called_from_another_thread(tmp_path: Path) -> None:
    class Threaded(ClientListener):
        def on_registration_credentials_required(
            self, client: ParleyClient, registration: ClientRegistration
        ) -> None:
            signature = signatures.registration_signature(
                registration.user_id, registration.application_key, 3, APP_SECRET
            )
            threading.Thread(target=registration.register, args=(signature, 3)).start()

    async with harness(tmp_path) as h:
        client, _ = h.client(h.builder(secret=None), listener=Threaded())
        await client.start()
        assert client.is_started


async def test_register_failed_fails_the_client(tmp_path: Path) -> None:
    class Refuses(ClientListener):
        def on_registration_credentials_required(
            self, client: ParleyClient, registration: ClientRegistration
        ) -> None:
            registration.register_failed("user is not logged in")

    async with harness(tmp_path) as h:
        client, recorder = h.client(h.builder(secret=None), listener=Refuses())
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.code == "UNAUTHENTICATED"
        assert "user is not logged in" in caught.value.message
        assert recorder.failed == [caught.value]
        assert recorder.started == 0 and not client.is_started
        assert h.backend.register_requests == []


@pytest.mark.parametrize(
    ("app", "code", "reason"),
    [
        (AppServer(sequence=5), "SEQUENCE_REUSED", "sequence 5 is not greater than 10"),
        (AppServer(sequence=11, secret="d3Jvbmcgc2VjcmV0"), "INVALID_SIGNATURE", "does not match"),
    ],
)
async def test_registration_errors_surface_with_code_and_reason(
    tmp_path: Path, app: AppServer, code: str, reason: str
) -> None:
    async with harness(tmp_path) as h:
        h.backend.last_sequence["alice"] = 10
        client, recorder = h.client(h.builder(secret=None), listener=app)
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.code == code
        assert reason in caught.value.message
        assert recorder.failed == [caught.value]
        assert not any(h.data_dir.glob("credentials/*.json"))


async def test_unknown_application_surfaces(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        h.backend.application_key = "00000000-0000-4000-8000-000000000000"
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.code == "UNKNOWN_APPLICATION"
        assert recorder.failed == [caught.value]


async def test_no_secret_and_no_listener_fails_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client(h.builder(secret=None))
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert "on_registration_credentials_required" in caught.value.message
        assert recorder.failed == [caught.value]


async def test_a_listener_that_never_answers_times_out(tmp_path: Path) -> None:
    class Silent(ClientListener):
        def on_registration_credentials_required(
            self, client: ParleyClient, registration: ClientRegistration
        ) -> None:
            pass

    async with harness(tmp_path) as h:
        client, recorder = h.client(
            h.builder(secret=None).registration_timeout(0.2), listener=Silent()
        )
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.code == "TIMEOUT"
        assert "registration.register" in caught.value.message
        assert recorder.failed == [caught.value]


async def test_a_listener_that_raises_fails_registration(tmp_path: Path) -> None:
    class Broken(ClientListener):
        async def on_registration_credentials_required(
            self, client: ParleyClient, registration: ClientRegistration
        ) -> None:
            raise RuntimeError("backend down")

    async with harness(tmp_path) as h:
        client, recorder = h.client(h.builder(secret=None), listener=Broken())
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.code == "INTERNAL"
        assert "backend down" in caught.value.message
        assert recorder.logged("backend down")


async def test_register_rejects_bad_arguments_and_stays_open(tmp_path: Path) -> None:
    seen: list[str] = []

    class Clumsy(ClientListener):
        def on_registration_credentials_required(
            self, client: ParleyClient, registration: ClientRegistration
        ) -> None:
            for signature, sequence in [("", 1), ("sig", -1), ("sig", "2")]:
                with pytest.raises(ParleyError) as caught:
                    registration.register(signature, sequence)  # type: ignore[arg-type]
                seen.append(caught.value.field)
            assert not registration.answered
            registration.register(
                signatures.registration_signature(
                    registration.user_id, registration.application_key, 1, APP_SECRET
                ),
                1,
            )
            registration.register("again", 2)  # a second answer is ignored

    async with harness(tmp_path) as h:
        client, recorder = h.client(h.builder(secret=None), listener=Clumsy())
        await client.start()
        assert seen == ["signature", "sequence", "sequence"]
        assert [r.sequence for r in h.backend.register_requests] == [1]
        assert recorder.logged("already answered")
