"""The Kubernetes manifests validate against the Kubernetes schemas, and they, the compose file
and the Procfile agree with each other and with the code (ports, commands, probes, secrets)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml")) + sorted((KUBERNETES / "examples").glob("*.yaml"))
# The oldest Kubernetes still commonly run, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
DEFAULTS = Settings()


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((f"{path.name}:{document['kind']}", document))
    return found


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _documents() if doc["kind"] == kind}


def _container(name: str) -> dict[str, Any]:
    deployment = _by_kind("Deployment")[f"pushwoosh-fleet-{name}"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name: shlex.split(command) for name, _, command in (line.partition(":") for line in lines)
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "document"), _documents(), ids=[n for n, _ in _documents()])
def test_each_manifest_validates_against_the_kubernetes_schema(
    name: str, document: dict[str, Any], version: str
) -> None:
    # strict: an unknown field (a typo) is an error, not silently ignored
    kubernetes_validate.validate(document, version, strict=True)


def test_there_are_deployments_for_web_and_worker_and_one_exporter() -> None:
    deployments = _by_kind("Deployment")
    assert set(deployments) == {
        "pushwoosh-fleet-web", "pushwoosh-fleet-worker", "pushwoosh-fleet-exporter"
    }  # fmt: skip
    # The fleet-wide gauges are served once: exactly one exporter, never two during a rollout
    exporter = deployments["pushwoosh-fleet-exporter"]["spec"]
    assert exporter["replicas"] == 1 and exporter["strategy"]["type"] == "Recreate"


def test_every_pod_runs_the_one_image_as_non_root_with_resources() -> None:
    images = set()
    for deployment in _by_kind("Deployment").values():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            images.add(container["image"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
    assert len(images) == 1


def test_disruption_budgets_select_the_pods_of_web_and_worker() -> None:
    budgets = _by_kind("PodDisruptionBudget")
    for name in ("web", "worker"):
        labels = _by_kind("Deployment")[f"pushwoosh-fleet-{name}"]["spec"]["template"]["metadata"]
        selector = budgets[f"pushwoosh-fleet-{name}"]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels["labels"].items()


def test_the_worker_runs_the_procfiles_command_with_a_liveness_probe_that_checks_draining() -> None:
    worker = _container("worker")
    assert worker["command"] == [*_procfile()["worker"][:-1], "--concurrency=2"]
    probe = worker["livenessProbe"]["exec"]["command"]
    assert probe[:3] == ["pushwoosh-fleet", "probe", "worker"]
    # Slower than a slow Redis round trip, and never on Redis: see worker/heartbeat.py
    assert float(probe[probe.index("--max-age") + 1]) >= 60
    grace = _by_kind("Deployment")["pushwoosh-fleet-worker"]["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] > (
        DEFAULTS.drain_slice_s + DEFAULTS.pushwoosh_timeout_s
    )


def test_web_probes_and_ports_match_the_code() -> None:
    web = _container("web")
    assert "command" not in web  # the image's default: the Procfile's web line
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"http": DEFAULTS.port, "metrics": DEFAULTS.metrics_port}
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_each_pod_is_scraped_on_its_own_metrics_port() -> None:
    expected = {
        "web": DEFAULTS.metrics_port,
        "worker": DEFAULTS.worker_metrics_port,
        "exporter": DEFAULTS.fleet_metrics_port,
    }
    for name, port in expected.items():
        template = _by_kind("Deployment")[f"pushwoosh-fleet-{name}"]["spec"]["template"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        ports = {p["name"]: p["containerPort"] for p in _container(name)["ports"]}
        assert ports["metrics"] == port
    config = _by_kind("ConfigMap")["pushwoosh-fleet"]["data"]
    assert config["METRICS_ADDRESS"] == "0.0.0.0"


def test_secrets_come_from_files_of_the_one_secret_and_the_settings_accept_them(
    tmp_path: Path,
) -> None:
    secret = _by_kind("Secret")["pushwoosh-fleet"]
    config = _by_kind("ConfigMap")["pushwoosh-fleet"]["data"]
    for name in ("web", "worker", "exporter"):
        container = _container(name)
        env = {e["name"]: e["value"] for e in container["env"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
        spec = _by_kind("Deployment")[f"pushwoosh-fleet-{name}"]["spec"]["template"]["spec"]
        volume = next(v for v in spec["volumes"] if v["name"] == "secrets")["secret"]
        mounted = {item["path"] for item in volume.get("items", [])} or set(secret["stringData"])
        files = {k: v for k, v in env.items() if k.endswith("_FILE")}
        assert files, name
        for path in files.values():
            assert path.startswith(mount["mountPath"] + "/")
            assert path.rsplit("/", 1)[1] in mounted & set(secret["stringData"]), path
        # The settings load with the ConfigMap, the variables and the secret's files
        for key, text in secret["stringData"].items():
            (tmp_path / key).write_text(text)
        values = {**config, **env}
        values.update({k: str(tmp_path / v.rsplit("/", 1)[1]) for k, v in files.items()})
        load_settings(values)


def test_compose_runs_redis_with_aof_and_noeviction_and_the_fleet_from_one_image() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "web", "worker", "flower", "exporter"} <= set(services)
    redis_args = services["redis"]["command"]
    for flag, value in (("--appendonly", "yes"), ("--maxmemory-policy", "noeviction")):
        assert redis_args[redis_args.index(flag) + 1] == value
    fleet = [services[name] for name in ("web", "worker", "flower", "exporter")]
    assert len({service["image"] for service in fleet}) == 1
    assert all(s["build"]["dockerfile"] == "deploy/Dockerfile" for s in fleet)
    procfile = _procfile()
    assert services["web"]["command"] == procfile["web"]
    assert services["worker"]["command"] == [*procfile["worker"][:-1], "--concurrency=2"]
    assert services["worker"]["healthcheck"]["test"][1:4] == ["pushwoosh-fleet", "probe", "worker"]
    assert services["exporter"]["command"] == ["pushwoosh-fleet", "metrics"]
