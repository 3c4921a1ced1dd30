"""Children: a metric's labelled children, each made once, counting where labels() would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from parley_service.metric_children import Children


def test_children_are_the_metrics_own_and_made_once() -> None:
    registry = CollectorRegistry()
    requests = Counter("t_requests_total", "t", ["service", "outcome"], registry=registry)
    seconds = Histogram("t_seconds", "t", ["service"], registry=registry)
    by, timed = Children(requests), Children(seconds)

    assert by("push", "ok") is by("push", "ok") is requests.labels("push", "ok")
    by("push", "ok").inc()
    by("push", "ok").inc(2)
    by("push", "UNAVAILABLE").inc()
    requests.labels("push", "ok").inc()  # the metric's own labels() reaches the same child
    timed("push").observe(0.25)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("t_requests_total", service="push", outcome="ok") == 4.0
    assert value("t_requests_total", service="push", outcome="UNAVAILABLE") == 1.0
    assert value("t_seconds_count", service="push") == 1.0
    assert value("t_seconds_sum", service="push") == 0.25
