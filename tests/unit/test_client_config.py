"""The client's configuration: builder, check_configuration, hosts, errors, backoff."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import pytest

from parley_client import (
    ConfigurationError,
    ErrorType,
    ParleyClient,
    ParleyClientBuilder,
    ParleyError,
)
from parley_client.backoff import backoff_delay
from parley_client.config import parse_host, parse_hosts
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError

KEY = "196087a1-e815-4bc4-8984-60d8d8a43f1d"


def good_builder(tmp_path: Path) -> ParleyClientBuilder:
    return (
        ParleyClient.builder()
        .application_key(KEY)
        .application_secret("oYdgGRXoxEuJhGDY2KQ/HQ==")
        .user_id("alice")
        .environment_host("localhost:8080")
        .persistence_dir(tmp_path)
    )


def check(builder: ParleyClientBuilder, messaging: bool = True) -> ConfigurationError:
    client = builder.build()
    client.set_support_messaging(messaging)
    with pytest.raises(ConfigurationError) as caught:
        client.check_configuration()
    return caught.value


def test_a_complete_configuration_passes(tmp_path: Path) -> None:
    client = good_builder(tmp_path).media(False).device_name("bench").build()
    client.set_support_calling(True)
    client.check_configuration()
    assert client.media is False
    assert client.capabilities.calling and not client.capabilities.messaging


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.application_key(123), "application_key"),
        (lambda b: b.user_id(None), "user_id"),
        (lambda b: b.environment_hosts(["localhost:1", 2]), "environment_host"),
        (lambda b: b.heartbeat_interval(0), "heartbeat_interval"),
        (lambda b: b.heartbeat_interval(-1.5), "heartbeat_interval"),
        (lambda b: b.heartbeat_interval(math.nan), "heartbeat_interval"),
        (lambda b: b.heartbeat_interval(True), "heartbeat_interval"),
        (lambda b: b.request_timeout(0), "request_timeout"),
        (lambda b: b.media("no"), "media"),
        (lambda b: b.persistence_dir(""), "persistence_dir"),
        (lambda b: b.persistence_dir(42), "persistence_dir"),
    ],
)
def test_builder_rejects_values_of_the_wrong_kind(call: object, field: str) -> None:
    assert callable(call)
    with pytest.raises(ConfigurationError) as caught:
        call(ParleyClient.builder())
    assert caught.value.fields == (field,)


def test_missing_application_key(tmp_path: Path) -> None:
    client = ParleyClient(replace(good_builder(tmp_path).config, application_key=None))
    client.set_support_messaging(True)
    with pytest.raises(ConfigurationError) as caught:
        client.check_configuration()
    assert caught.value.fields == ("application_key",)
    assert "application key is missing" in caught.value.message


def test_missing_user_id(tmp_path: Path) -> None:
    error = check(good_builder(tmp_path).user_id(""))
    assert error.fields == ("user_id",)
    assert error.code == "INVALID_USER_ID"


def test_missing_environment_host(tmp_path: Path) -> None:
    builder = good_builder(tmp_path).environment_hosts([])
    error = check(builder)
    assert error.fields == ("environment_host",)
    assert "missing" in error.message


@pytest.mark.parametrize(
    "key",
    ["196087A1-E815-4BC4-8984-60D8D8A43F1D", "not-a-key", "196087a1e8154bc4898460d8d8a43f1d"],
)
def test_application_key_must_be_a_lowercase_guid(tmp_path: Path, key: str) -> None:
    error = check(good_builder(tmp_path).application_key(key))
    assert error.fields == ("application_key",)
    assert error.code == "INVALID_APPLICATION_KEY"
    assert "lowercase GUID" in error.message


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [("a" * 41, "41 characters long; the limit is 40"), ("ålice", "not printable ASCII")],
)
def test_invalid_user_id_names_the_reason(tmp_path: Path, user_id: str, reason: str) -> None:
    error = check(good_builder(tmp_path).user_id(user_id))
    assert error.fields == ("user_id",)
    assert error.code == "INVALID_USER_ID"
    assert reason in error.message


def test_user_ids_may_hold_spaces_dots_and_wildcards(tmp_path: Path) -> None:
    client = good_builder(tmp_path).user_id("a.b *>c").build()
    client.set_support_messaging(True)
    client.check_configuration()


def test_at_least_one_capability(tmp_path: Path) -> None:
    error = check(good_builder(tmp_path), messaging=False)
    assert error.fields == ("capabilities",)
    assert "at least one of calling and messaging" in error.message


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("http://", "no host name"),
        ("ftp://example.com", "scheme 'ftp'"),
        ("localhost:99999", "invalid port"),
        ("localhost:0", "invalid port"),
        ("localhost:80,,other:80", "host number 2 of 3 is empty"),
        ("exa mple.com:80", "invalid host name"),
        ("localhost:8080?x=1", "query or fragment"),
        ("user:pw@localhost:8080", "user information"),
    ],
)
def test_unparsable_host(tmp_path: Path, host: str, reason: str) -> None:
    error = check(good_builder(tmp_path).environment_host(host))
    assert error.fields == ("environment_host",)
    assert reason in error.message


def test_persistence_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    error = check(good_builder(tmp_path).persistence_dir(blocker / "parley"))
    assert error.fields == ("persistence_dir",)
    assert "is not a directory" in error.message


def test_secret_must_be_base64(tmp_path: Path) -> None:
    error = check(good_builder(tmp_path).application_secret("not base64!"))
    assert error.fields == ("application_secret",)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    builder = ParleyClient.builder().application_key("KEY").user_id("x" * 50)
    error = check(builder.persistence_dir(tmp_path), messaging=False)
    assert error.fields == ("application_key", "user_id", "environment_host", "capabilities")
    assert all(field in str(error) for field in error.fields)


async def test_start_runs_the_same_checks(tmp_path: Path) -> None:
    client = good_builder(tmp_path).build()
    failures: list[ParleyError] = []

    class Listener:
        def on_client_failed(self, client: ParleyClient, error: ParleyError) -> None:
            failures.append(error)

    client.add_client_listener(Listener())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as caught:
        await client.start()
    assert failures == [caught.value]
    assert not client.is_started


@pytest.mark.parametrize(
    ("spec", "base", "connect"),
    [
        ("localhost:8080", "http://localhost:8080", "ws://localhost:8080/v1/connect"),
        ("https://gw.example.com", "https://gw.example.com", "wss://gw.example.com/v1/connect"),
        ("gw.example.com:443", "https://gw.example.com:443", "wss://gw.example.com:443/v1/connect"),
        ("http://127.0.0.1:9/edge/", "http://127.0.0.1:9/edge", "ws://127.0.0.1:9/edge/v1/connect"),
        ("[::1]:8080", "http://[::1]:8080", "ws://[::1]:8080/v1/connect"),
        ("WSS://Example.com", "https://example.com", "wss://example.com/v1/connect"),
    ],
)
def test_host_forms(spec: str, base: str, connect: str) -> None:
    endpoint = parse_host(spec)
    assert endpoint.base_url == base
    assert endpoint.connect_url == connect


def test_several_hosts_keep_their_order_without_duplicates() -> None:
    endpoints = parse_hosts("b:2, a:1,b:2")
    assert [str(e) for e in endpoints] == ["http://b:2", "http://a:1"]


def test_from_env() -> None:
    client = ParleyClient.from_env(
        {
            "PARLEY_APPLICATION_KEY": KEY,
            "PARLEY_APPLICATION_SECRET": "oYdgGRXoxEuJhGDY2KQ/HQ==",
            "PARLEY_USER_ID": "bob",
            "PARLEY_ENVIRONMENT_HOST": "a:1,b:2",
            "PARLEY_PERSISTENCE_DIR": "/tmp/parley-test-env",
        }
    )
    config = client.config
    assert (config.application_key, config.user_id) == (KEY, "bob")
    assert config.application_secret == "oYdgGRXoxEuJhGDY2KQ/HQ=="
    assert config.environment_hosts == ("a:1", "b:2")
    assert config.persistence_dir == Path("/tmp/parley-test-env")


def test_from_env_without_secret_uses_the_app_server_scheme() -> None:
    client = ParleyClient.from_env({"PARLEY_APPLICATION_KEY": KEY, "PARLEY_USER_ID": "bob"})
    assert client.config.application_secret is None


def test_error_types_follow_codes() -> None:
    assert ParleyError("UNAVAILABLE", "down").type is ErrorType.NETWORK
    assert ParleyError("TIMEOUT", "slow").type is ErrorType.NETWORK
    assert ParleyError("INVALID_SIGNATURE", "bad").type is ErrorType.OTHER
    assert ParleyError("INVALID_ARGUMENT", "no calling", ErrorType.CAPABILITY).type is (
        ErrorType.CAPABILITY
    )
    converted = ParleyError.from_protocol(
        ProtocolError(ErrorCode.ERROR_CODE_SEQUENCE_REUSED, "sequence 3 is not greater", "sequence")
    )
    assert (converted.code, converted.message, converted.field) == (
        "SEQUENCE_REUSED",
        "sequence 3 is not greater",
        "sequence",
    )
    assert converted.to_protocol().code == ErrorCode.ERROR_CODE_SEQUENCE_REUSED
    with pytest.raises(ValueError, match=r"not a parley\.v1\.ErrorCode"):
        ParleyError("NO_SUCH_CODE", "x")


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.2), (1, 0.4), (2, 0.8), (5, 5.0), (50, 5.0), (10_000, 5.0)]:
        delays = [backoff_delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed value
