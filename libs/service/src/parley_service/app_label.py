"""Bounded values for the `app` label of metrics.

Application keys are unbounded, Prometheus labels must not be: the first `limit` distinct
keys a process sees get their own label value (the key itself), every later one shares
`OTHER`. A key keeps its value for the life of the process, so a gauge raised under a key
is lowered under the same series. With a limit of 0 every key is `ALL` (no per-application
series at all). The limit is `PARLEY_METRICS_APP_LABELS` (`run()` applies it); each replica
picks its own first keys, so with more applications than the limit an application may be
named on one replica and `OTHER` on another.
"""

from __future__ import annotations

import threading

OTHER = "other"
ALL = "all"
DEFAULT_LIMIT = 50


class AppLabels:
    """Maps application keys to at most `limit` + 1 label values."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"the number of app label values must be 0 or more, not {limit}")
        self.limit = limit
        self._named: set[str] = set()
        self._lock = threading.Lock()  # mixers and SIP engines count from their own threads

    def __call__(self, application_key: str) -> str:
        if self.limit == 0:
            return ALL
        if application_key in self._named:
            return application_key
        if not application_key:
            return OTHER  # no application known: takes no place of its own
        with self._lock:
            if application_key in self._named:
                return application_key
            if len(self._named) < self.limit:
                self._named.add(application_key)
                return application_key
        return OTHER

    @property
    def named(self) -> frozenset[str]:
        """The keys that have their own label value."""
        return frozenset(self._named)


_labels = AppLabels()


def configure(limit: int) -> None:
    """Set the process's limit (`PARLEY_METRICS_APP_LABELS`). Keys already named keep their
    value unless the limit changes."""
    global _labels
    if limit != _labels.limit:
        _labels = AppLabels(limit)


def app_label(application_key: str) -> str:
    """The `app` label value of `application_key` in this process."""
    return _labels(application_key)
