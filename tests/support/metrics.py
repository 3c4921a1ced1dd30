"""Reading Prometheus metrics in tests: this process's registry, and a service's /metrics
page parsed with the Prometheus text parser."""

from __future__ import annotations

import aiohttp
from prometheus_client import REGISTRY, Metric
from prometheus_client.parser import text_string_to_metric_families


def sample_sum(name: str, **labels: str) -> float:
    """The sum of this process's samples named `name` whose labels include `labels` (so a
    label left out, such as `app`, is summed over); 0 when there are none."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def exposed_name(family: Metric) -> str:
    """The name a family is exposed under: the parser drops a counter's `_total`."""
    return f"{family.name}_total" if family.type == "counter" else family.name


def parse(text: str) -> dict[str, Metric]:
    """A /metrics page's families by exposed name (the text parser raises on bad input)."""
    return {exposed_name(family): family for family in text_string_to_metric_families(text)}


async def scrape(http: aiohttp.ClientSession, port: int) -> dict[str, Metric]:
    """The families of the /metrics page on 127.0.0.1:`port`."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200, f"/metrics on port {port}: HTTP {resp.status}"
        return parse(await resp.text())
