"""Gateway settings: defaults, PARLEY_* overrides and clear errors."""

from __future__ import annotations

import pytest

from parley_gateway.settings import GatewaySettings
from parley_service.settings import SettingsError


def test_defaults_and_the_gateway_id_of_a_dotted_hostname() -> None:
    s = GatewaySettings(instance_id="node-1.example.com-42-abc")
    assert (s.gateway_host, s.gateway_port) == ("127.0.0.1", 8080)
    assert s.gateway_id == "node-1-example-com-42-abc"
    assert s.heartbeat_interval_ms == 30_000 and s.heartbeat_timeout_seconds == 75.0
    assert (s.hello_timeout_seconds, s.presence_ttl_seconds) == (10.0, 60.0)
    assert s.rest_max_skew_seconds == 600.0
    assert s.listen_backlog == 4096


def test_environment_overrides() -> None:
    s = GatewaySettings.from_env(
        {
            "PARLEY_GATEWAY_PORT": "0",
            "PARLEY_GATEWAY_ID": "gw-7",
            "PARLEY_HEARTBEAT_INTERVAL_MS": "500",
            "PARLEY_REST_MAX_SKEW_SECONDS": "30",
            "PARLEY_LISTEN_BACKLOG": "65535",
        }
    )
    assert (s.gateway_port, s.gateway_id, s.heartbeat_timeout_seconds) == (0, "gw-7", 1.25)
    assert (s.rest_max_skew_seconds, s.listen_backlog) == (30.0, 65535)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PARLEY_GATEWAY_ID": "gw.1"}, "PARLEY_GATEWAY_ID"),
        ({"PARLEY_GATEWAY_ID": "gw *"}, "PARLEY_GATEWAY_ID"),
        ({"PARLEY_GATEWAY_PORT": "70000"}, "PARLEY_GATEWAY_PORT"),
        ({"PARLEY_HEARTBEAT_INTERVAL_MS": "0"}, "PARLEY_HEARTBEAT_INTERVAL_MS"),
        ({"PARLEY_HELLO_TIMEOUT_SECONDS": "-1"}, "PARLEY_HELLO_TIMEOUT_SECONDS"),
        ({"PARLEY_PRESENCE_TTL_SECONDS": "0.5"}, "PARLEY_PRESENCE_TTL_SECONDS"),
        ({"PARLEY_GATEWAY_PORT": "eighty"}, "PARLEY_GATEWAY_PORT"),
        ({"PARLEY_REST_MAX_SKEW_SECONDS": "0"}, "PARLEY_REST_MAX_SKEW_SECONDS"),
        ({"PARLEY_REST_MAX_SKEW_SECONDS": "nan"}, "PARLEY_REST_MAX_SKEW_SECONDS"),
        ({"PARLEY_LISTEN_BACKLOG": "0"}, "PARLEY_LISTEN_BACKLOG"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        GatewaySettings.from_env(env)
