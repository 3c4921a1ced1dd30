"""The Helm chart (deploy/helm/parley), offline: its values files pass yamllint, the chart
passes the Helm SDK's lint, and it renders for production and sandbox into manifests that
validate against the Kubernetes schemas and carry, for every service of services/, what a
deployment needs (probes, resources, HPA, PDB, ServiceAccount, ConfigMap, NetworkPolicy),
the migration hook, NATS as a JetStream cluster in production, and no secret in plain text.

Rendering goes through the Helm SDK in the `helm-python-sdk` wheel (a bundled native
library, no helm binary, nothing downloaded); NATS is the vendored official chart under
charts/nats, so nothing is fetched either.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import importlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from parley_conference.settings import ConferenceSettings
from parley_service.settings import ServiceSettings
from parley_sip.settings import SipSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "parley"
YAMLLINT = ROOT / "deploy" / "helm" / ".yamllint.yaml"
VALUES_FILES = ("values.yaml", "values-production.yaml", "values-sandbox.yaml")
# The Kubernetes version the manifests are validated against: the oldest the chart accepts
# (Chart.yaml's kubeVersion).
KUBE_VERSION = "1.30.0"
RELEASE = "parley"
NAMESPACE = "parley"
# What a sandbox install may give as values (the chart makes a Secret of them).
SANDBOX_SECRETS = {
    "database": {"url": "postgresql://parley:sandbox-db-pass@db.example.com:5432/parley"},
    "masterKey": {"value": "c2FuZGJveC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmch"},
    "turn": {"secret": "sandbox-turn-secret"},
}
# Names of variables that hold secrets: never a plain value in production.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|MASTER_KEY|DATABASE_URL|TOKEN|CREDENTIAL")


def service_folders() -> dict[str, dict[str, Any]]:
    """Every folder of services/ with a pyproject.toml: its [tool.parley.service] table."""
    found: dict[str, dict[str, Any]] = {}
    for pyproject in sorted((ROOT / "services").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        found[pyproject.parent.name] = data["tool"]["parley"]["service"]
    return found


SERVICES = tuple(service_folders())


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, maps merged key by key (as Helm merges values files)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_of(name: str, *extra: dict[str, Any]) -> dict[str, Any]:
    """A values file of the chart (values.yaml comes with the chart), with `extra` on top."""
    values: dict[str, Any] = yaml.safe_load((CHART / name).read_text()) if name else {}
    for more in extra:
        values = deep_merge(values, more)
    return values


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every manifest the chart renders with these values (hooks included)."""
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmError) as caught:
        render(values)
    return str(caught.value)


ENVIRONMENTS = {
    "production": values_of("values-production.yaml"),
    "sandbox": values_of("values-sandbox.yaml", SANDBOX_SECRETS),
}


@pytest.fixture(scope="module", params=sorted(ENVIRONMENTS))
def env(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def manifests(env: str) -> list[dict[str, Any]]:
    if env not in _RENDERED:
        _RENDERED[env] = render(ENVIRONMENTS[env])
    return _RENDERED[env]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind} {name}: {len(hits)} found"
    return hits[0]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def configmap(docs: list[dict[str, Any]], service: str) -> dict[str, str]:
    data: dict[str, str] = find(docs, "ConfigMap", f"{RELEASE}-{service}")["data"]
    return data


def service_values(env: str, service: str) -> dict[str, Any]:
    values = deep_merge(values_of("values.yaml"), ENVIRONMENTS[env])
    entry: dict[str, Any] = values["services"][service]
    return entry


# -- the one list of services --------------------------------------------------------------


def test_every_service_folder_has_one_entry_in_the_values() -> None:
    entries = values_of("values.yaml")["services"]
    assert set(entries) == set(service_folders()), (
        "services in values.yaml must be exactly the folders of services/ "
        "(a new service is one entry there)"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_entries_agree_with_the_services_own_tables(service: str) -> None:
    table = service_folders()[service]
    entry = values_of("values.yaml")["services"][service]
    assert bool(entry.get("database")) == bool(table.get("database", False))
    assert bool(entry.get("masterKey")) == bool(table.get("master_key", False))
    assert entry.get("publicPort") == table.get("public_port")
    assert entry.get("publicPortEnv") == table.get("public_port_env")


def test_a_new_service_is_one_entry() -> None:
    extra = copy.deepcopy(values_of("values.yaml")["services"]["stats"])
    docs = render(values_of("values-production.yaml", {"services": {"newone": extra}}))
    for kind in (
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ):
        find(docs, kind, f"{RELEASE}-newone")
    job = find(docs, "Job", f"{RELEASE}-migrate")
    assert "newone" in [c["name"] for c in job["spec"]["template"]["spec"]["containers"]]


# -- lint and schemas ----------------------------------------------------------------------


def test_the_schemas_are_those_of_the_oldest_kubernetes_the_chart_accepts() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBE_VERSION}-0"


def test_values_files_and_chart_yaml_pass_yamllint() -> None:
    config = YamlLintConfig(file=str(YAMLLINT))
    for name in (*VALUES_FILES, "Chart.yaml"):
        problems = list(linter.run((CHART / name).read_text(), config, str(CHART / name)))
        assert not problems, f"{name}: " + "; ".join(f"{p.line}: {p.message}" for p in problems)


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_the_chart_passes_helm_lint(environment: str) -> None:
    report = helm_python.lint(
        CHART,
        ENVIRONMENTS[environment],
        strict=True,
        kube_version=f"v{KUBE_VERSION}",
        with_subcharts=True,
    )
    assert not report["errors"], report
    # Severity 1 is information (e.g. "icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_every_manifest_validates_against_the_kubernetes_schemas(env: str) -> None:
    docs = manifests(env)
    assert len(docs) > 50
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")


def test_the_service_monitors_are_optional_and_scrape_the_health_port() -> None:
    assert of_kind(manifests("production"), "ServiceMonitor") == []
    docs = render(
        values_of("values-production.yaml", {"metrics": {"serviceMonitor": {"enabled": True}}})
    )
    monitors = {m["metadata"]["name"]: m for m in of_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {f"{RELEASE}-{s}" for s in SERVICES}
    for service in SERVICES:
        monitor = monitors[f"{RELEASE}-{service}"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["spec"]["endpoints"][0]["port"] == "http-health"
        assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == service
        # A CRD: the Kubernetes schemas do not have it.
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(monitor, KUBE_VERSION, strict=True)


# -- every service -------------------------------------------------------------------------


def pod_spec(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", f"{RELEASE}-{service}")["spec"]["template"][
        "spec"
    ]
    return spec


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_deployed_with_what_it_needs(env: str, service: str) -> None:
    docs = manifests(env)
    name = f"{RELEASE}-{service}"
    deployment = find(docs, "Deployment", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spec = pod_spec(docs, service)
    (container,) = spec["containers"]
    assert container["image"] == f"registry.example.com/parley/parley-{service}:0.1.0"

    # Probes: readiness on /readyz, liveness on /healthz, both on the health port, which is
    # the one the service is told to serve.
    ports = {p["name"]: p for p in container["ports"]}
    health = ports["http-health"]["containerPort"]
    assert configmap(docs, service)["PARLEY_HEALTH_PORT"] == str(health)
    assert configmap(docs, service)["PARLEY_HEALTH_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(health)

    # Resources: requests and limits of CPU and memory.
    for part in ("requests", "limits"):
        assert set(container["resources"][part]) >= {"cpu", "memory"}, (service, part)

    # ServiceAccount, ConfigMap (all of it through envFrom), Service.
    assert spec["serviceAccountName"] == name
    find(docs, "ServiceAccount", name)
    assert container["envFrom"] == [{"configMapRef": {"name": name}}]
    assert configmap(docs, service)["PARLEY_ENVIRONMENT"] == env
    svc = find(docs, "Service", name)
    assert svc["spec"]["selector"].items() <= labels.items()
    assert "http-health" in {p["name"] for p in svc["spec"]["ports"]}

    # HPA (autoscaling/v2) on the Deployment, with CPU; replicas are the HPA's.
    hpa = find(docs, "HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    metrics = hpa["spec"]["metrics"]
    cpu = [m["resource"] for m in metrics if m["type"] == "Resource"]
    assert [r["name"] for r in cpu] == ["cpu"]
    assert cpu[0]["target"]["type"] == "Utilization"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"]

    # PDB over the same pods.
    pdb = find(docs, "PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] >= 1

    # NetworkPolicy for the service's pods.
    policy = find(docs, "NetworkPolicy", name)
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings class the service reads its PARLEY_* variables into."""
    module = importlib.import_module(f"parley_{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    assert len(found) == 1, (service, found)
    return found[0]


# What the cluster fills in: a value of the right shape for each kind of reference.
SECRET_STAND_INS = {
    "PARLEY_DATABASE_URL": "postgresql://parley:pw@db.example.com:5432/parley",
    "PARLEY_AUTH_MASTER_KEY": base64.b64encode(bytes(32)).decode(),
}


def resolved_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The variables the container starts with: its ConfigMap's, then its own (references
    to Secrets and to the pod's fields given stand-in values)."""
    variables: dict[str, str] = {}
    for source in container.get("envFrom", []):
        variables.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            variables[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            variables[item["name"]] = "10.1.2.3"
        else:
            variables[item["name"]] = SECRET_STAND_INS.get(item["name"], "stand-in-secret")
    return variables


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_given_is_a_setting_the_service_reads_and_accepts(
    env: str, service: str
) -> None:
    docs = manifests(env)
    kind = settings_class(service)
    known = {f"PARLEY_{field.name.upper()}" for field in dataclasses.fields(kind)}
    containers = [pod_spec(docs, service)["containers"][0]]
    job = find(docs, "Job", f"{RELEASE}-migrate")["spec"]["template"]["spec"]
    containers += [c for c in job["containers"] if c["name"] == service]
    for container in containers:
        variables = resolved_env(docs, container)
        assert set(variables) - known == set(), f"{service}: variables it does not read"
        # The service would start with them: every value converts and passes its checks.
        kind.from_env(variables)


def test_custom_metrics_scale_the_gateway_and_conference(env: str) -> None:
    docs = manifests(env)
    for service, metric in (
        ("gateway", "parley_gateway_sessions"),
        ("conference", "parley_conference_participants"),
    ):
        hpa = find(docs, "HorizontalPodAutoscaler", f"{RELEASE}-{service}")
        pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        assert [p["metric"]["name"] for p in pods] == [metric]
        assert pods[0]["target"]["type"] == "AverageValue"


def drain_seconds(settings: ServiceSettings, data: dict[str, str], variable: str) -> float:
    default = getattr(settings, variable.removeprefix("PARLEY_").lower())
    return float(data.get(variable, default))


def test_termination_outlasts_each_services_drain(env: str) -> None:
    docs = manifests(env)
    drains = {
        "sip": ("PARLEY_SIP_DRAIN_SECONDS", SipSettings()),
        "conference": ("PARLEY_CONFERENCE_DRAIN_SECONDS", ConferenceSettings()),
    }
    for service in SERVICES:
        spec = pod_spec(docs, service)
        data = configmap(docs, service)
        # SIGTERM: the service's own drain (its calls or rooms go on), then work in flight.
        drain = drain_seconds(ServiceSettings(), data, "PARLEY_DRAIN_TIMEOUT_SECONDS")
        if service in drains:
            variable, settings = drains[service]
            drain += drain_seconds(settings, data, variable)
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[:2] == ["python", "-c"]
        sleep = re.fullmatch(r"import time; time\.sleep\((\d+)\)", pre_stop[2])
        assert sleep is not None, pre_stop
        wait = float(sleep.group(1))
        assert spec["terminationGracePeriodSeconds"] > wait + drain, service


# -- what is reachable ---------------------------------------------------------------------


def open_ports(policy: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(protocol, first, last) of the rules that admit anyone (no `from`)."""
    found: set[tuple[str, int, int]] = set()
    for rule in policy["spec"].get("ingress", []):
        if "from" in rule:
            continue
        for port in rule["ports"]:
            found.add((port["protocol"], port["port"], port.get("endPort", port["port"])))
    return found


def test_only_the_gateway_media_and_turn_ports_are_open_to_anyone(env: str) -> None:
    docs = manifests(env)
    policies = {p["metadata"]["name"]: p for p in of_kind(docs, "NetworkPolicy")}
    deny = policies.pop(f"{RELEASE}-default-deny")
    assert deny["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}},
        "policyTypes": ["Ingress"],
    }
    opened = {name: open_ports(p) for name, p in policies.items() if open_ports(p)}
    sip = service_values(env, "sip")["media"]
    conference = service_values(env, "conference")["media"]
    expected = {
        f"{RELEASE}-gateway": {("TCP", 8080, 8080)},
        f"{RELEASE}-sip": {
            ("UDP", 5060, 5060),
            ("UDP", 40000, 40015),
            ("UDP", sip["ephemeralPorts"]["start"], sip["ephemeralPorts"]["end"]),
        },
        f"{RELEASE}-conference": {
            ("UDP", conference["ephemeralPorts"]["start"], conference["ephemeralPorts"]["end"]),
        },
    }
    assert opened == expected
    # Every other rule admits the monitoring namespaces or the release's own pods only.
    monitoring = values_of("values.yaml")["networkPolicy"]["monitoringNamespaceSelector"]
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "namespaceSelector" in peer:
                    assert peer == {"namespaceSelector": monitoring}, name
                else:
                    selector = peer["podSelector"]["matchLabels"]
                    assert selector["app.kubernetes.io/instance"] == RELEASE, name
    # Every service lets Prometheus reach its health port.
    for service in SERVICES:
        health = configmap(docs, service)["PARLEY_HEALTH_PORT"]
        rules = policies[f"{RELEASE}-{service}"]["spec"]["ingress"]
        assert any(
            r.get("from") == [{"namespaceSelector": monitoring}]
            and {"protocol": "TCP", "port": int(health)} in r["ports"]
            for r in rules
        ), service


def test_turn_is_open_to_anyone_when_not_on_the_host_network() -> None:
    docs = render(values_of("values-production.yaml", {"turn": {"hostNetwork": False}}))
    policy = find(docs, "NetworkPolicy", f"{RELEASE}-turn")
    assert open_ports(policy) == {("UDP", 3478, 3478), ("TCP", 3478, 3478), ("UDP", 49152, 49407)}
    assert find(docs, "Service", f"{RELEASE}-turn")["spec"]["type"] == "LoadBalancer"


def test_the_media_services_ports_agree_with_their_settings(env: str) -> None:
    docs = manifests(env)
    media = service_values(env, "sip")["media"]
    ports = {p["name"]: p for p in media["ports"]}
    data = configmap(docs, "sip")
    assert data["PARLEY_SIP_PORT"] == str(ports["sip"]["port"])
    assert data["PARLEY_SIP_BIND_HOST"] == "0.0.0.0"
    assert data["PARLEY_SIP_RTP_PORT"] == str(ports["rtp"]["port"])
    # 4 RTP ports per call; the SIP stack of this build holds 4 calls.
    assert ports["rtp"]["endPort"] - ports["rtp"]["port"] + 1 == 16
    for service in ("sip", "conference"):
        spec = pod_spec(docs, service)
        media = service_values(env, service)["media"]
        variables = container_env(spec["containers"][0])
        ice = variables[media["iceAddressesEnv"]]
        assert ice["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        if media["hostNetwork"]:
            assert spec["hostNetwork"] is True
            assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
            assert "sysctls" not in spec["securityContext"]
        else:
            assert "hostNetwork" not in spec
            low, high = media["ephemeralPorts"]["start"], media["ephemeralPorts"]["end"]
            assert spec["securityContext"]["sysctls"] == [
                {"name": "net.ipv4.ip_local_port_range", "value": f"{low} {high}"}
            ]
    # The address in SIP Contact and SDP: the node's on its network, else the pod's (never
    # the bound 0.0.0.0).
    sip_env = container_env(pod_spec(docs, "sip")["containers"][0])
    on_host = service_values(env, "sip")["media"]["hostNetwork"]
    assert sip_env["PARLEY_SIP_PUBLIC_HOST"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "status.hostIP" if on_host else "status.podIP"}
    }
    # Services on the host's network never share a port of the node.
    host_ports: list[int] = []
    for service in SERVICES:
        for port in pod_spec(docs, service)["containers"][0]["ports"]:
            if "hostPort" in port:
                host_ports.append(port["hostPort"])
    assert len(host_ports) == len(set(host_ports)), host_ports


def test_the_gateway_is_reached_through_its_ingress_at_the_environments_host(env: str) -> None:
    docs = manifests(env)
    ingress = find(docs, "Ingress", f"{RELEASE}-gateway")
    (rule,) = ingress["spec"]["rules"]
    host = {"production": "parley.example.com", "sandbox": "sandbox.parley.example.com"}[env]
    assert rule["host"] == host
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-gateway", "port": {"name": "http"}}
    gateway = configmap(docs, "gateway")
    assert (gateway["PARLEY_GATEWAY_HOST"], gateway["PARLEY_GATEWAY_PORT"]) == ("0.0.0.0", "8080")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"


def test_calls_hands_out_the_charts_turn_with_coturns_secret(env: str) -> None:
    docs = manifests(env)
    host = {
        "production": "turn.parley.example.com",
        "sandbox": "turn.sandbox.parley.example.com",
    }[env]
    assert configmap(docs, "calls")["PARLEY_TURN_URLS"] == (
        f"turn:{host}:3478?transport=udp,turn:{host}:3478?transport=tcp"
    )
    calls = container_env(pod_spec(docs, "calls")["containers"][0])
    coturn = find(docs, "Deployment", f"{RELEASE}-turn")["spec"]["template"]["spec"]
    (turn,) = coturn["containers"]
    assert turn["image"].startswith("coturn/coturn:") and not turn["image"].endswith(":latest")
    assert "--use-auth-secret" in turn["args"]
    assert "--static-auth-secret=$(TURN_SECRET)" in turn["args"]
    assert (
        container_env(turn)["TURN_SECRET"]["valueFrom"] == calls["PARLEY_TURN_SECRET"]["valueFrom"]
    )


def test_only_production_has_a_trunk_sandbox_calls_only_the_test_number(env: str) -> None:
    data = configmap(manifests(env), "sip")
    variables = container_env(pod_spec(manifests(env), "sip")["containers"][0])
    if env == "production":
        assert data["PARLEY_SIP_TRUNK_HOST"] == "trunk.example.net"
        assert data["PARLEY_SIP_CALLER_ID"] == "+14155550100"
        assert data["PARLEY_SIP_CALLER_ID_RULES"] == "+44=+442079460000"
        SipSettings.from_env(data)  # the service takes them
        for name, key in (
            ("PARLEY_SIP_TRUNK_USERNAME", "username"),
            ("PARLEY_SIP_TRUNK_PASSWORD", "password"),
        ):
            ref = variables[name]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "parley-trunk", "key": key}
    else:
        assert "PARLEY_SIP_TRUNK_HOST" not in data
        assert "PARLEY_SIP_TRUNK_PASSWORD" not in variables
        assert "PARLEY_SIP_TEST_NUMBER" not in data  # the service's own test number


# -- migrations ----------------------------------------------------------------------------


def test_migrations_run_as_a_hook_before_install_and_upgrade(env: str) -> None:
    docs = manifests(env)
    job = find(docs, "Job", f"{RELEASE}-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    containers = {c["name"]: c for c in spec["containers"]}
    databases = {name for name, table in service_folders().items() if table.get("database")}
    assert set(containers) == databases
    for name, container in containers.items():
        assert container["image"] == f"registry.example.com/parley/parley-{name}:0.1.0"
        variables = container_env(container)
        assert variables["PARLEY_MIGRATE_ONLY"]["value"] == "true"
        assert "secretKeyRef" in variables["PARLEY_DATABASE_URL"]["valueFrom"]
        # The service's settings are checked before migrating: auth and push need the key.
        master_key = bool(service_folders()[name].get("master_key"))
        assert ("PARLEY_AUTH_MASTER_KEY" in variables) == master_key
    if env == "sandbox":
        # The Secret made from values exists before the Job (a hook of lower weight).
        secret = find(docs, "Secret", f"{RELEASE}-secrets")
        assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )


# -- NATS ----------------------------------------------------------------------------------


def test_production_runs_nats_as_three_jetstream_servers() -> None:
    docs = manifests("production")
    nats = find(docs, "StatefulSet", f"{RELEASE}-nats")
    assert nats["spec"]["replicas"] == 3
    conf = find(docs, "ConfigMap", f"{RELEASE}-nats-config")["data"]["nats.conf"]
    assert '"jetstream": {' in conf and '"store_dir": "/data"' in conf
    assert conf.count(f"nats://{RELEASE}-nats-") == 3  # routes to the three servers
    assert configmap(docs, "auth")["PARLEY_NATS_URL"] == f"nats://{RELEASE}-nats:4222"
    assert configmap(docs, "auth")["PARLEY_JETSTREAM_REPLICAS"] == "3"
    image = nats["spec"]["template"]["spec"]["containers"][0]["image"]
    major, minor = (int(x) for x in image.rsplit(":", 1)[1].split(".")[:2])
    assert (major, minor) >= (2, 11)  # what the services require


def test_an_external_nats_replaces_the_chart() -> None:
    url = "nats://nats.example.com:4222"
    external = {"nats": {"enabled": False, "url": url}}
    docs = render(values_of("values-sandbox.yaml", SANDBOX_SECRETS, external))
    assert of_kind(docs, "StatefulSet") == []
    assert configmap(docs, "gateway")["PARLEY_NATS_URL"] == url
    no_url = {"nats": {"enabled": False}}
    error = render_error(values_of("values-sandbox.yaml", SANDBOX_SECRETS, no_url))
    assert "nats.url is not set" in error


# -- secrets -------------------------------------------------------------------------------


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_production_holds_no_secret_in_plain_text() -> None:
    docs = manifests("production")
    assert of_kind(docs, "Secret") == []
    for doc in docs:
        for node in walk(doc):
            # Every container variable that names a secret is a reference to a Secret.
            variable = isinstance(node, dict) and ("value" in node or "valueFrom" in node)
            if variable and SECRET_NAME.search(str(node.get("name", ""))):
                assert "secretKeyRef" in node.get("valueFrom", {}), (doc["kind"], node)
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith(f"{RELEASE}-"):
            assert not [k for k in doc["data"] if SECRET_NAME.search(k)], doc["metadata"]["name"]
    # The secret values of the production file itself: Secret names only.
    production = values_of("values-production.yaml")
    for section in ("database", "masterKey", "turn", "trunk"):
        assert production[section]["existingSecret"]
        for key in ("url", "value", "secret", "username", "password"):
            assert not production[section].get(key), (section, key)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"database": {"url": "postgresql://u:p@db/parley"}}, "remove database.url"),
        ({"masterKey": {"value": "a2V5"}}, "remove masterKey.value"),
        ({"turn": {"secret": "s3cret"}}, "remove turn.secret"),
        ({"trunk": {"password": "s3cret"}}, "remove trunk.username/trunk.password"),
        ({"database": {"existingSecret": ""}}, "database.existingSecret is not set"),
        ({"masterKey": {"existingSecret": ""}}, "masterKey.existingSecret is not set"),
        ({"turn": {"existingSecret": ""}}, "turn.existingSecret is not set"),
        ({"trunk": {"existingSecret": ""}}, "trunk.existingSecret is not set"),
    ],
)
def test_production_refuses_secret_values_and_missing_secret_names(
    extra: dict[str, Any], says: str
) -> None:
    assert says in render_error(values_of("values-production.yaml", extra))


def test_sandbox_makes_a_secret_of_the_values_it_is_given() -> None:
    docs = manifests("sandbox")
    secret = find(docs, "Secret", f"{RELEASE}-secrets")
    assert secret["stringData"] == {
        "database-url": SANDBOX_SECRETS["database"]["url"],
        "master-key": SANDBOX_SECRETS["masterKey"]["value"],
        "turn-secret": SANDBOX_SECRETS["turn"]["secret"],
    }
    auth = container_env(pod_spec(docs, "auth")["containers"][0])
    assert auth["PARLEY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "database-url",
    }
    # Without values or Secret names the sandbox refuses too.
    assert "database.existingSecret is not set (nor database.url" in render_error(
        values_of("values-sandbox.yaml", {"masterKey": {"value": "a2V5"}, "turn": {"secret": "s"}})
    )


NEW_WITHOUT_LIMITS = {
    "enabled": True,
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {}},
    "autoscaling": {"enabled": False},
    "pdb": {},
    "terminationGracePeriodSeconds": 30,
}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            {"environment": "staging"},
            "at '/environment': value must be one of 'sandbox', 'production'",
        ),
        ({"host": ""}, "host is not set"),
        (
            {"services": {"auth": {"resources": {"limits": None}}}},
            "at '/services/auth/resources': missing property 'limits'",
        ),
        (
            {"services": {"newone": NEW_WITHOUT_LIMITS}},
            "services.newone.resources needs requests and limits",
        ),
        (
            {"services": {"gateway": {"autoscaling": {"minReplicas": 9, "maxReplicas": 3}}}},
            "services.gateway.autoscaling: minReplicas (9) is above maxReplicas (3)",
        ),
        # values.schema.json: a service entry lacking what the templates rely on, a misspelt
        # key, a bad port.
        (
            {"services": {"newone": {"enabled": True, "resources": {"requests": {}}}}},
            "at '/services/newone': missing properties 'autoscaling', 'pdb', "
            "'terminationGracePeriodSeconds'",
        ),
        (
            {"services": {"gateway": {"autoscaling": {"enable": True}}}},
            "at '/services/gateway/autoscaling': additional properties 'enable' not allowed",
        ),
        (
            {"services": {"sip": {"media": {"ports": [{"name": "sip", "port": 70000}]}}}},
            "/services/sip/media/ports/0/port",
        ),
    ],
)
def test_values_that_cannot_work_stop_the_render_saying_why(
    extra: dict[str, Any], says: str
) -> None:
    assert says in render_error(values_of("values-production.yaml", extra))
