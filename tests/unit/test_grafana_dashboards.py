"""The Grafana dashboards under deploy/grafana/dashboards: their structure (a Prometheus
data source variable, an `app` variable, panels with queries), and that every metric they
query is one a service declares (or, for a service not in the tree yet, one
tests/support/metric_families.py lists for it)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, Metric

from parley_conference.mixer_metrics import MixerCollector, MixerStats
from tests.support.metric_families import SERVICES
from tests.support.metrics import exposed_name

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
NAMES = ("parley-platform-health", "parley-call-quality")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The series names each type of family is exposed as.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


class IdleMixer:
    """A mixer that never ran: enough for its collector to name its families."""

    stats = MixerStats()

    def rooms(self) -> int:
        return 0

    def participants(self) -> int:
        return 0


def series_of(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in SUFFIXES[family.type]}


def declared_families() -> list[Metric]:
    """Every family the services' code declares: each metrics module's, the runtime's, the
    default process collector's and the mixer's (registered per mixer)."""
    for module in sorted(ROOT.glob("services/*/src/parley_*/*metrics.py")):
        importlib.import_module(f"{module.parent.name}.{module.stem}")
    importlib.import_module("parley_service.runtime")  # the bus and health families
    return [*REGISTRY.collect(), *MixerCollector(IdleMixer()).collect()]


def declared() -> set[str]:
    """Every series name the services' code declares."""
    return {name for family in declared_families() for name in series_of(family)}


def listed(service: str) -> set[str]:
    """The series of a service's families as metric_families.py lists them (histograms
    but for counters, which end in _total)."""
    found: set[str] = set()
    for name in SERVICES[service].families:
        kind = "counter" if name.endswith("_total") else "histogram"
        base = name.removesuffix("_total")
        found |= {base + suffix for suffix in SUFFIXES[kind]}
    return found


def in_tree(service: str) -> bool:
    return (ROOT / "services" / service / "pyproject.toml").is_file()


@pytest.fixture(scope="module")
def known() -> set[str]:
    """What dashboards may query: what the code declares, and the families listed for a
    service that is not in the tree yet."""
    names = declared()
    for service in SERVICES:
        if not in_tree(service):
            names |= listed(service)
    return names


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return data


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but rows (and the panels of collapsed rows)."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\$\{?\w+\}?", "", text)  # dashboard variables
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)  # label matchers, ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for found in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[found.end() :].lstrip().startswith("("):
            continue  # a function
        if found.group().lower() not in PROMQL_WORDS:
            names.add(found.group())
    return names


def exprs(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every query of a dashboard: its panels' and its variables'."""
    for panel in panels(board):
        for target in panel["targets"]:
            yield f"{panel['title']} {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            values = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
            assert values, f"variable {variable['name']}: {variable['definition']}"
            yield f"variable {variable['name']}", values.group(1)


def test_the_name_parser_finds_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(a_bucket{app=~"$app", x="b c"}'
        "[$__rate_interval]))) / on (job) group_left (service) b_info + 1e3 * c"
    )
    assert metric_names(expr) == {"a_bucket", "b_info", "c"}


@pytest.mark.parametrize("name", NAMES)
def test_a_dashboard_has_its_variables_and_panels_with_queries(name: str) -> None:
    board = load(name)
    assert board["uid"] == name and board["title"].startswith("Parley")
    assert board["schemaVersion"] >= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    app = variables["app"]
    assert app["type"] == "query" and app["datasource"] == DATASOURCE
    assert app["includeAll"] and app["multi"] and app["allValue"] == ".*"
    found = list(panels(board))
    assert len(found) >= 10
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in found:
        title = panel["title"]
        assert title and panel["description"], panel["id"]
        assert panel["datasource"] == DATASOURCE, title
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, title
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, title
        assert panel["targets"], f"{title} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title


@pytest.mark.parametrize("name", NAMES)
def test_every_metric_queried_is_declared_by_a_service(name: str, known: set[str]) -> None:
    for where, expr in exprs(load(name)):
        names = metric_names(expr)
        assert names, f"{name}: {where} selects no metric: {expr}"
        unknown = names - known
        assert not unknown, f"{name}: {where} queries {sorted(unknown)}, which no service declares"


@pytest.mark.parametrize("name", NAMES)
def test_families_by_application_are_filtered_by_the_app_variable(name: str) -> None:
    by_app = {family for exported in SERVICES.values() for family in exported.by_app}
    for where, expr in exprs(load(name)):
        if where.startswith("variable"):
            continue
        for metric in metric_names(expr):
            if metric.removesuffix("_bucket") in by_app:
                assert 'app=~"$app"' in expr, f"{name}: {where} ignores the app variable"


def test_the_families_listed_for_services_in_the_tree_are_declared() -> None:
    names = {exposed_name(family) for family in declared_families()}
    for service, exported in SERVICES.items():
        if in_tree(service):
            missing = exported.families - names
            assert not missing, f"{service}: {sorted(missing)} listed but not declared"
