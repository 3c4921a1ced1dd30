"""ICE servers and TURN credentials of the REST scheme, and the calls service's settings."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from parley_calls.settings import CallsSettings
from parley_calls.turn import IceConfig, turn_password, turn_username
from parley_service.settings import SettingsError


def test_a_turn_credential_is_the_base64_hmac_sha1_of_its_username() -> None:
    username = turn_username(1_700_003_600, "app-key", "ann: b")
    assert username == "1700003600:app-key.YW5uOiBi"  # one ':', no space (coturn checks)
    # A known answer, worked out independently of the code under test.
    expected = base64.b64encode(
        hmac.new(b"north", b"1700003600:app-key.YW5uOiBi", hashlib.sha1).digest()
    ).decode()
    assert turn_password("north", username) == expected
    assert turn_password("south", username) != expected


def test_servers_for_a_user_expire_after_the_ttl() -> None:
    ice = IceConfig(
        stun_urls=("stun:s.example:3478",),
        turn_urls=("turn:t.example:3478", "turns:t.example:5349"),
        secret="north",
        ttl_seconds=600,
    )
    found = ice.servers("app-key", "ann", 1_700_000_000.7)
    stun, turn = found.servers
    assert list(stun.urls) == ["stun:s.example:3478"] and not stun.username
    assert turn.username == "1700000600:app-key.YW5u"
    assert turn.credential == turn_password("north", turn.username)
    assert found.expires_at_ms == 1_700_000_600_000
    assert "north" not in repr(ice)


def test_no_servers_configured_gives_none() -> None:
    found = IceConfig().servers("app-key", "ann", 1_700_000_000)
    assert list(found.servers) == [] and found.expires_at_ms == 0
    only_stun = IceConfig(stun_urls=("stun:s.example",)).servers("k", "u", 0)
    assert len(only_stun.servers) == 1 and only_stun.expires_at_ms == 0


def test_settings_read_their_variables_and_split_the_urls() -> None:
    settings = CallsSettings.from_env(
        {
            "PARLEY_TURN_URLS": " stun:s.example , turn:t.example?transport=tcp,,",
            "PARLEY_TURN_SECRET": "north",
            "PARLEY_TURN_TTL_SECONDS": "900",
            "PARLEY_CALL_SETUP_TIMEOUT_SECONDS": "5",
            "PARLEY_CALL_RINGING_TIMEOUT_SECONDS": "20",
            "PARLEY_CALL_LINGER_SECONDS": "1",
        }
    )
    assert settings.service_name == "calls"
    assert settings.stun_server_urls == ["stun:s.example"]
    assert settings.turn_server_urls == ["turn:t.example?transport=tcp"]
    assert (settings.call_setup_timeout_seconds, settings.call_ringing_timeout_seconds) == (5, 20)
    assert "north" not in repr(settings)
    defaults = CallsSettings()
    assert (
        defaults.call_setup_timeout_seconds,
        defaults.call_ringing_timeout_seconds,
        defaults.call_linger_seconds,
        defaults.turn_ttl_seconds,
        defaults.ice_urls,
    ) == (30.0, 60.0, 60.0, 3600, [])


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PARLEY_CALL_SETUP_TIMEOUT_SECONDS": "0"}, "PARLEY_CALL_SETUP_TIMEOUT_SECONDS"),
        ({"PARLEY_CALL_RINGING_TIMEOUT_SECONDS": "nan"}, "PARLEY_CALL_RINGING_TIMEOUT_SECONDS"),
        ({"PARLEY_CALL_LINGER_SECONDS": "0.5"}, "PARLEY_CALL_LINGER_SECONDS"),
        ({"PARLEY_CALL_SWEEP_SECONDS": "-1"}, "PARLEY_CALL_SWEEP_SECONDS"),
        ({"PARLEY_TURN_URLS": "http://t.example"}, "PARLEY_TURN_URLS"),
        ({"PARLEY_TURN_URLS": "turn:t.example"}, "PARLEY_TURN_SECRET"),
        ({"PARLEY_TURN_TTL_SECONDS": "10"}, "PARLEY_TURN_TTL_SECONDS"),
        ({"PARLEY_TURN_TTL_SECONDS": "ten"}, "PARLEY_TURN_TTL_SECONDS"),
    ],
)
def test_a_bad_setting_names_its_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        CallsSettings.from_env(env)
