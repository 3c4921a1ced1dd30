"""Messaging settings: defaults, and each bad value refused naming its variable."""

from __future__ import annotations

import pytest

from parley_messaging.settings import MessagingSettings
from parley_service.settings import SettingsError


def test_defaults() -> None:
    s = MessagingSettings()
    assert s.service_name == "messaging"
    assert (s.message_max_recipients, s.message_max_text_bytes) == (10, 64 * 1024)
    assert s.retention_seconds == 30 * 86_400
    assert s.message_redeliver_seconds == 2.0
    assert s.message_redeliver_after_seconds == 10.0
    assert s.message_redeliver_max_age_seconds == 600.0


def test_read_from_the_environment() -> None:
    s = MessagingSettings.from_env(
        {
            "PARLEY_MESSAGE_REDELIVER_SECONDS": "0.5",
            "PARLEY_MESSAGE_REDELIVER_AFTER_SECONDS": "1",
            "PARLEY_MESSAGE_REDELIVER_MAX_AGE_SECONDS": "60",
            "PARLEY_MESSAGE_BATCH_MAX": "32",
        }
    )
    assert (s.message_redeliver_seconds, s.message_redeliver_after_seconds) == (0.5, 1.0)
    assert (s.message_redeliver_max_age_seconds, s.message_batch_max) == (60.0, 32)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PARLEY_MESSAGE_MAX_RECIPIENTS": "0"}, "PARLEY_MESSAGE_MAX_RECIPIENTS must be 1 to 100"),
        ({"PARLEY_MESSAGE_MAX_RECIPIENTS": "101"}, "PARLEY_MESSAGE_MAX_RECIPIENTS must be 1 to"),
        ({"PARLEY_MESSAGE_MAX_TEXT_BYTES": "140000"}, "PARLEY_MESSAGE_MAX_TEXT_BYTES must be 0 to"),
        ({"PARLEY_MESSAGE_RETENTION_DAYS": "0"}, "PARLEY_MESSAGE_RETENTION_DAYS must be 1 to"),
        ({"PARLEY_MESSAGE_PURGE_SECONDS": "0"}, "PARLEY_MESSAGE_PURGE_SECONDS must be a positive"),
        ({"PARLEY_MESSAGE_BATCH_MAX": "0"}, "PARLEY_MESSAGE_BATCH_MAX must be 1 to 10000"),
        ({"PARLEY_MESSAGE_BATCH_WINDOW_SECONDS": "2"}, "BATCH_WINDOW_SECONDS must be 0 to 1"),
        ({"PARLEY_MESSAGE_BATCH_WINDOW_SECONDS": "nan"}, "BATCH_WINDOW_SECONDS must be 0 to 1"),
        ({"PARLEY_MESSAGE_COMMIT_TIMEOUT_SECONDS": "-1"}, "COMMIT_TIMEOUT_SECONDS must be a"),
        ({"PARLEY_MESSAGE_FETCH_LIMIT": "1001"}, "PARLEY_MESSAGE_FETCH_LIMIT must be 1 to 1000"),
        ({"PARLEY_MESSAGE_REGISTERED_CACHE_SIZE": "-1"}, "REGISTERED_CACHE_SIZE must be 0 or"),
        ({"PARLEY_MESSAGE_REDELIVER_SECONDS": "0"}, "PARLEY_MESSAGE_REDELIVER_SECONDS must be"),
        ({"PARLEY_MESSAGE_REDELIVER_SECONDS": "inf"}, "PARLEY_MESSAGE_REDELIVER_SECONDS must be"),
        ({"PARLEY_MESSAGE_REDELIVER_AFTER_SECONDS": "-3"}, "REDELIVER_AFTER_SECONDS must be a"),
        ({"PARLEY_MESSAGE_REDELIVER_MAX_AGE_SECONDS": "0"}, "REDELIVER_MAX_AGE_SECONDS must be"),
        (
            {
                "PARLEY_MESSAGE_RETENTION_DAYS": "1",
                "PARLEY_MESSAGE_REDELIVER_MAX_AGE_SECONDS": "90000",
            },
            "must not exceed the retention time",
        ),
        ({"PARLEY_MESSAGE_BATCH_MAX": "many"}, "PARLEY_MESSAGE_BATCH_MAX: invalid literal"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        MessagingSettings.from_env(env)
