"""The bounded `app` label of metrics (parley_service.app_label) and its setting."""

from __future__ import annotations

import threading

import pytest

from parley_service import app_label
from parley_service.app_label import ALL, OTHER, AppLabels
from parley_service.settings import ServiceSettings, SettingsError

KEYS = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(6)]


def test_the_first_keys_seen_are_named_and_later_ones_are_other() -> None:
    labels = AppLabels(3)
    assert [labels(k) for k in KEYS] == [KEYS[0], KEYS[1], KEYS[2], OTHER, OTHER, OTHER]
    assert labels.named == frozenset(KEYS[:3])


def test_a_key_keeps_its_value_whatever_comes_after() -> None:
    labels = AppLabels(2)
    first = labels(KEYS[0])
    for key in KEYS[1:]:
        labels(key)
    # A gauge raised under a key is lowered under the same series.
    assert labels(KEYS[0]) == first == KEYS[0]
    assert labels(KEYS[5]) == OTHER
    assert labels(KEYS[1]) == KEYS[1]


def test_a_limit_of_zero_gives_one_value_for_all() -> None:
    labels = AppLabels(0)
    assert {labels(k) for k in KEYS} == {ALL}
    assert labels.named == frozenset()


def test_an_empty_key_takes_no_place() -> None:
    labels = AppLabels(1)
    assert labels("") == OTHER
    assert labels(KEYS[0]) == KEYS[0]


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or more, not -1"):
        AppLabels(-1)


def test_threads_never_name_more_than_the_limit() -> None:
    labels = AppLabels(10)
    keys = [f"key-{n}" for n in range(200)]
    barrier = threading.Barrier(8)

    def label_all() -> None:
        barrier.wait()
        for key in keys:
            labels(key)

    threads = [threading.Thread(target=label_all) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(labels.named) == 10
    assert sum(labels(k) != OTHER for k in keys) == 10


def test_the_setting_is_read_and_checked() -> None:
    assert ServiceSettings.from_env({}).metrics_app_labels == app_label.DEFAULT_LIMIT == 50
    assert ServiceSettings.from_env({"PARLEY_METRICS_APP_LABELS": "0"}).metrics_app_labels == 0
    with pytest.raises(SettingsError, match="PARLEY_METRICS_APP_LABELS must be 0"):
        ServiceSettings.from_env({"PARLEY_METRICS_APP_LABELS": "-3"})
    with pytest.raises(SettingsError, match="PARLEY_METRICS_APP_LABELS"):
        ServiceSettings.from_env({"PARLEY_METRICS_APP_LABELS": "many"})


def test_configure_sets_the_process_limit_and_keeps_names_when_it_is_the_same() -> None:
    before = app_label._labels
    try:
        app_label.configure(1)
        assert app_label.app_label(KEYS[0]) == KEYS[0]
        assert app_label.app_label(KEYS[1]) == OTHER
        app_label.configure(1)  # the same limit: KEYS[0] stays named
        assert app_label.app_label(KEYS[0]) == KEYS[0]
        app_label.configure(0)
        assert app_label.app_label(KEYS[0]) == ALL
    finally:
        app_label._labels = before
