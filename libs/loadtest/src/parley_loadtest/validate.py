"""Read a scenario (YAML file, then flags on top) and check every field, before anything
starts: each problem is reported with the field's path (`calls.media_share: must be between
0 and 1, got 1.5`), unknown keys are refused by name, and all problems are told at once."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from parley_loadtest.scenario import SLO_FIGURES, Scenario

ENV_KEY = "PARLEY_APPLICATION_KEY"
ENV_SECRET = "PARLEY_APPLICATION_SECRET"

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_PREFIX = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_HOST = re.compile(r"^(https?://)?[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?$")


class ScenarioError(Exception):
    """The scenario cannot run; `problems` names each bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a scenario file holds (ScenarioError if it is not one)."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ScenarioError([f"{file}: cannot be read ({exc.strerror or exc})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{file}: is not valid YAML ({exc})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScenarioError([f"{file}: must hold a mapping of settings, not {_kind(data)}"])
    return dict(data)


def overlay(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each dotted path of `overrides` ("calls.per_second") set (flags win)."""
    merged: dict[str, Any] = _copy(base)
    for path, value in overrides.items():
        node = merged
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return merged


def build(
    raw: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    kill_given: bool = False,
    source: str = "",
) -> Scenario:
    """The scenario `raw` describes, every field checked; application key and secret from
    PARLEY_APPLICATION_KEY/SECRET where `raw` has none. `kill_given`: the caller kills the
    replica itself (a test's handle), so a storm needs no kill setting."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    raw = _copy(raw)
    storm = raw.get("storm")
    if isinstance(storm, dict) and "enabled" not in storm:
        storm["enabled"] = True  # a storm section means a storm
    scenario = _read(Scenario, raw, "", problems)
    assert isinstance(scenario, Scenario)
    scenario.source = source
    _check(scenario, env, kill_given, problems)
    if problems:
        raise ScenarioError(problems)
    return scenario


# -- reading by type ----------------------------------------------------------------------


def _read(kind: Any, value: Any, path: str, problems: list[str]) -> Any:
    name = path or "scenario"
    if dataclasses.is_dataclass(kind):
        assert isinstance(kind, type)
        if not isinstance(value, dict):
            problems.append(f"{name}: must be a mapping, got {_kind(value)}")
            return kind()
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind) if f.name != "source"}
        unknown = sorted(str(k) for k in value if k not in fields)
        for key in unknown:
            where = f"{path}.{key}" if path else key
            problems.append(f"{where}: unknown key (known here: {', '.join(fields)})")
        made = kind()
        for key, item in value.items():
            if key in fields:
                where = f"{path}.{key}" if path else key
                setattr(made, key, _read(hints[key], item, where, problems))
        return made
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{name}: must be a list, got {_kind(value)}")
            return []
        (item_kind,) = typing.get_args(kind)
        return [_read(item_kind, v, f"{name}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{name}: must be a mapping, got {_kind(value)}")
            return {}
        _, value_kind = typing.get_args(kind)
        return {str(k): _read(value_kind, v, f"{name}.{k}", problems) for k, v in value.items()}
    if isinstance(kind, types.UnionType):
        raise TypeError(f"no reader for {kind}")
    if kind is bool:
        if not isinstance(value, bool):
            problems.append(f"{name}: must be true or false, got {value!r}")
            return False
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name}: must be a whole number, got {value!r}")
            return 0
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name}: must be a number, got {value!r}")
            return 0.0
        if not math.isfinite(value):
            problems.append(f"{name}: must be a finite number, got {value!r}")
            return 0.0
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            problems.append(f"{name}: must be a string, got {value!r}")
            return ""
        return value
    raise TypeError(f"no reader for {kind}")


# -- what each field may be ----------------------------------------------------------------

_Rule = Callable[[Any], str | None]


def _at_least(low: float) -> _Rule:
    return lambda v: None if v >= low else f"must be at least {low:g}, got {v:g}"


def _above(low: float) -> _Rule:
    return lambda v: None if v > low else f"must be more than {low:g}, got {v:g}"


def _between(low: float, high: float) -> _Rule:
    return lambda v: (
        None if low <= v <= high else f"must be between {low:g} and {high:g}, got {v:g}"
    )


_RULES: dict[str, _Rule] = {
    "users": _between(1, 1_000_000),
    "workers": _between(1, 64),
    "ramp_up_per_second": _above(0),
    "duration_seconds": _above(0),
    "grace_seconds": _at_least(0),
    "calls.per_second": _at_least(0),
    "calls.media_share": _between(0, 1),
    "calls.hold_seconds": _at_least(0),
    "calls.timeout_seconds": _above(0),
    "messages.per_second": _at_least(0),
    "conferences.joins_per_second": _at_least(0),
    "conferences.room_size": _between(1, 100),
    "conferences.hold_seconds": _at_least(0),
    "conferences.timeout_seconds": _above(0),
    "phone_calls.per_second": _at_least(0),
    "phone_calls.hold_seconds": _at_least(0),
    "phone_calls.timeout_seconds": _above(0),
    "storm.after_seconds": _at_least(0),
    "storm.timeout_seconds": _above(0),
}


def _get(scenario: Scenario, path: str) -> Any:
    value: Any = scenario
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _check(
    scenario: Scenario, env: Mapping[str, str], kill_given: bool, problems: list[str]
) -> None:
    unreadable = {p.split(":", 1)[0] for p in problems}  # already told: wrong type
    for path, rule in _RULES.items():
        if path in unreadable:
            continue
        problem = rule(_get(scenario, path))
        if problem:
            problems.append(f"{path}: {problem}")
    if not scenario.name.strip():
        problems.append("name: must not be empty")
    if not _PREFIX.match(scenario.user_prefix):
        problems.append(
            f"user_prefix: 1 to 40 letters, digits, '.', '_' or '-', got {scenario.user_prefix!r}"
        )
    target = scenario.target
    if not target.hosts:
        problems.append("target.hosts: must name at least one host (host:port)")
    for i, host in enumerate(target.hosts):
        if not _HOST.match(host):
            problems.append(
                f"target.hosts[{i}]: must be host:port or http(s)://host[:port], got {host!r}"
            )
    if not target.application_key:
        target.application_key = env.get(ENV_KEY, "")
    if not target.application_secret:
        target.application_secret = env.get(ENV_SECRET, "")
    if not target.application_key:
        problems.append(
            f"target.application_key: missing (in the scenario, --app-key or {ENV_KEY})"
        )
    if not target.application_secret:
        problems.append(
            f"target.application_secret: missing (in the scenario, --app-secret or {ENV_SECRET})"
        )
    if "phone_calls.number" not in unreadable and not _E164.match(scenario.phone_calls.number):
        problems.append(
            f"phone_calls.number: must be an E.164 number (+ and digits), got "
            f"{scenario.phone_calls.number!r}"
        )
    for name, limit in scenario.slo.items():
        if name not in SLO_FIGURES:
            problems.append(f"slo.{name}: unknown SLO (known: {', '.join(SLO_FIGURES)})")
        elif f"slo.{name}" not in unreadable and limit < 0:
            problems.append(f"slo.{name}: must be at least 0, got {limit:g}")
    storm = scenario.storm
    if storm.enabled and not kill_given:
        kill = storm.kill
        if kill.command and kill.pid_file:
            problems.append("storm.kill: give a command or a pid_file, not both")
        elif not kill.command and not kill.pid_file:
            problems.append(
                "storm.kill: missing; give a command (e.g. kubectl delete pod ...) or a "
                "pid_file of the gateway replica to kill"
            )
    if problems:
        return
    from parley_loadtest.plan import PlanError, make_plan  # the counts the fields lead to

    try:
        make_plan(scenario, "check")
    except PlanError as exc:
        problems.extend(exc.problems)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
