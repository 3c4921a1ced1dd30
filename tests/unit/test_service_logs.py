"""Structured logs: one JSON object per line, secrets redacted, other fields kept."""

import json
import logging

from parley_service.logs import JsonFormatter, get_logger, redact


def test_secret_fields_are_redacted_and_others_kept() -> None:
    fields = redact(
        {
            "app_secret": "s",
            "access_token": "t",
            "token": "t",
            "signature": "x",
            "token_ttl_seconds": 900,
            "user": "alice",
            "instance_secret": "y",
        }
    )
    assert fields == {
        "app_secret": "[redacted]",
        "access_token": "[redacted]",
        "token": "[redacted]",
        "signature": "[redacted]",
        "token_ttl_seconds": 900,
        "user": "alice",
        "instance_secret": "[redacted]",
    }


def test_a_log_line_is_one_json_object_with_event_and_fields() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("parley.test.logs")
    logger.addHandler(keep := Keep())
    logger.setLevel(logging.INFO)
    try:
        get_logger("parley.test.logs").info("device_registered", app="k", secret="s3cr3t")
    finally:
        logger.removeHandler(keep)
    line = JsonFormatter("auth").format(records[0])
    assert "s3cr3t" not in line
    parsed = json.loads(line)
    assert parsed["event"] == "device_registered" and parsed["service"] == "auth"
    assert parsed["app"] == "k" and parsed["secret"] == "[redacted]"
