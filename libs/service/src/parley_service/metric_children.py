"""The labelled children of a Prometheus metric, each made once.

`metric.labels(*values)` checks and converts its values and takes the metric's lock at every
call: about 3 µs here, paid several times for each request and each push. `Children` keeps
every child it made, so that a hot path pays a dict lookup (0.2 µs) instead. Children are
never removed from Parley's metrics, so a kept one is always the metric's own.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    __slots__ = ("_made", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._made: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        """`metric.labels(*values)`, made at the first call for these values."""
        child = self._made.get(values)
        if child is None:
            child = self._made[values] = self._metric.labels(*values)
        return child
